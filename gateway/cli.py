"""The ``gateway`` command: serve, demo, messages."""

from __future__ import annotations

import asyncio
import errno
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import httpx
import orjson

from gateway import logging as gw_logging
from gateway.api import auth
from gateway.control_codes.lint import lint_template
from gateway.domain.identity import mask_id, mask_ids_in_text
from gateway.errors import GatewayError
from gateway.recording import cli as recording_cli
from gateway.settings import AdapterSettings, Settings
from gateway.store.inbox import STATES


def _why_not_started(exc: BaseException, *ports: int) -> str:
    """The real cause of a failed start: only a port in use suggests other ports."""
    cause = exc.__cause__ or exc
    text = f"could not start the gateway: {type(cause).__name__}: {cause}"
    if isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE:
        text += f" (is port {' or '.join(map(str, ports))} in use? Try --http-port/--mllp-port)"
    return text


def _settings(**overrides: Any) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


@click.group()
@click.version_option(package_name="gateway")
def main() -> None:
    """Integration gateway: HL7 v2 bookings from journal systems -> FHIR R4 for the citizen platform."""


@main.command()
@click.option("--http-host", help="HTTP API address (default 127.0.0.1).")
@click.option("--http-port", type=int, help="HTTP API port (default 8000).")
@click.option("--mllp-host", help="MLLP listener address (default 127.0.0.1).")
@click.option("--mllp-port", type=int, help="MLLP listener port (default 2575).")
@click.option("--db-url", help="SQLAlchemy URL (default SQLite under ./var/).")
@click.option("--mocks-port", type=int, help="Port of the built-in mocks (default 8089; 0: any free).")
@click.option("--log-format", type=click.Choice(["auto", "json", "console"]))
@click.option(
    "--worker",
    type=click.Choice(["process", "inline"]),
    default="process",
    show_default=True,
    envvar="GATEWAY_WORKER",
    help="Run the processing worker in its own OS process, or inline in the serving process.",
)
def serve(worker: str, **options: Any) -> None:
    """Run the HTTP API and the MLLP listener, and the processing worker beside them."""
    settings = _settings(**options)
    gw_logging.configure(settings.log_format, settings.log_level)
    from gateway import metrics
    from gateway.bootstrap import bind_socket, build, install_signal_handlers

    if worker == "process":  # the worker's figures reach /metrics through files (gateway/metrics.py)
        metrics.use_multiprocess()
    try:
        gateway = build(
            settings, worker="process" if worker == "process" else "inline", adapters=AdapterSettings()
        )
        sock = bind_socket(settings.http_host, settings.http_port)
    except (GatewayError, OSError) as exc:
        raise click.ClickException(_why_not_started(exc, settings.http_port, settings.mllp_port)) from exc

    async def run() -> None:
        install_signal_handlers(gateway)
        await gateway.run(http_socket=sock)

    asyncio.run(run())


@main.command()
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(list(auth.SCOPES)),
    help="platform, journal, staff or admin; repeat for several.",
)
@click.option("--subject", default="developer", show_default=True, help="Who the token is for (sub).")
@click.option("--minutes", default=60.0, show_default=True, help="How long the token is valid.")
@click.option(
    "--key", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Signing key (PEM)."
)
def token(scopes: tuple[str, ...], subject: str, minutes: float, key: Path | None) -> None:
    """Mint a bearer token: with the gateway's development key, or a key of your own (--key).

    The development key is the one `gateway serve` and `gateway demo` make under the data
    directory (GATEWAY_DATA_DIR, default ./var) when no issuer key is configured.
    """
    from cryptography.hazmat.primitives import serialization

    settings = Settings()
    if key is None:
        click.echo(auth.dev_token(settings, scopes, subject=subject, minutes=minutes))
        return
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    issuer = settings.auth_issuer or auth.DEV_ISSUER
    click.echo(
        auth.mint(
            private,
            subject=subject,
            scopes=scopes,
            audience=settings.auth_audience,
            issuer=issuer,
            minutes=minutes,
        )
    )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8089, show_default=True, help="One port for every mock.")
@click.option(
    "--persons",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Population file (default: GATEWAY_MOCK_PERSONS or the built-in mocks/persons.yaml).",
)
def mocks(host: str, port: int, persons: Path | None) -> None:
    """Run the built-in mocks standalone (SPAR, accounts, journal service, mailboxes, SMS) until Ctrl-C."""
    from pydantic import ValidationError

    from gateway.dev import MockServices, load_population

    try:
        population = load_population(persons)
    except (OSError, ValidationError) as exc:
        raise click.ClickException(f"population file: {exc}") from exc
    try:
        services = MockServices.default(population, host=host, port=port).start()
    except (OSError, RuntimeError) as exc:
        cause = exc.__cause__ or exc
        raise click.ClickException(f"could not start the mocks on {host}:{port} ({cause})") from exc
    click.echo(f"Mocks for {len(population.persons)} test persons at {services.url}:")
    for prefix in sorted(services.apps):
        click.echo(f"  {services.url}/{prefix}/")
    click.echo("Ctrl-C stops them.")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        services.stop()


@main.command()
@click.option("--bookings", default=40, show_default=True, help="New bookings in the simulated day.")
@click.option("--http-port", type=int, default=8000, show_default=True)
@click.option("--mllp-port", type=int, default=2575, show_default=True)
@click.option("--db-url", help="Database (default: a fresh SQLite file ./var/demo.db).")
@click.option("--keep-running", is_flag=True, help="Keep serving after the demo until Ctrl-C.")
@click.option("--seed", default=1, show_default=True, help="Seed of the simulated journal.")
@click.option(
    "--log-format",
    type=click.Choice(["console", "json"]),
    default="console",
    show_default=True,
    help="The gateway's log (on stderr).",
)
@click.option("--log-level", default="WARNING", show_default=True, help="e.g. INFO to see every message.")
def demo(
    bookings: int,
    http_port: int,
    mllp_port: int,
    db_url: str | None,
    keep_running: bool,
    seed: int,
    log_format: str,
    log_level: str,
) -> None:
    """Start the gateway on its embedded defaults, push a day of bookings over MLLP, show the result."""
    from gateway.dev import JournalSimulator, push
    from gateway.testing import GatewayThread

    data_dir = Path("var")
    if db_url is None:
        demo_db = data_dir / "demo.db"
        # The database and its intake journal (gateway/store/intake_journal.py), with their WALs.
        for suffix in ("", "-wal", "-shm", "-intake", "-intake-wal", "-intake-shm"):
            Path(f"{demo_db}{suffix}").unlink(missing_ok=True)
        db_url = f"sqlite:///{demo_db.as_posix()}"
    settings = Settings(
        http_port=http_port, mllp_port=mllp_port, mocks_port=0, db_url=db_url, log_level=log_level
    )
    gw_logging.configure(log_format, log_level)
    try:
        runner = GatewayThread(settings, adapters=AdapterSettings())
        runner.start()
    except (GatewayError, OSError, RuntimeError) as exc:
        raise click.ClickException(_why_not_started(exc, http_port, mllp_port)) from exc
    try:
        _run_demo(
            runner, JournalSimulator(seed=seed, run_id=datetime.now().strftime("%H%M%S")), push, bookings
        )
        if keep_running:
            click.echo("\nServing until Ctrl-C ...")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        runner.stop()


def _run_demo(runner: Any, journal: Any, push: Any, bookings: int) -> None:
    host, port = runner.mllp_address
    base = runner.http_url
    messages = journal.day(date.today(), bookings=bookings)
    click.echo(
        f"Gateway up: HTTP {base}  MLLP mllp://{host}:{port}  database {runner.gateway.settings.db_url}"
    )
    click.echo(f"Simulated journal pushes {len(messages)} SIU messages over MLLP (4 connections) ...")
    started = time.perf_counter()
    acks = asyncio.run(push(messages, host, port, connections=4))
    elapsed = time.perf_counter() - started
    codes: dict[str, int] = {}
    for ack in acks:
        code = ack.split(b"MSA|", 1)[1][:2].decode() if b"MSA|" in ack else "??"
        codes[code] = codes.get(code, 0) + 1
    click.echo(f"  ACKs: {codes} in {elapsed:.2f} s")
    headers = {}
    settings = runner.gateway.settings
    if settings.auth == "required":  # the demo is staff, platform and admin at once
        headers["Authorization"] = "Bearer " + auth.dev_token(settings, auth.SCOPES, subject="demo")
    with httpx.Client(base_url=base, timeout=10, headers=headers) as client:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            waiting = client.get("/messages", params={"state": "received", "limit": 1}).json()["total"]
            if waiting == 0:
                break
            time.sleep(0.1)
        states = {
            s: client.get("/messages", params={"state": s, "limit": 1}).json()["total"]
            for s in ("processed", "failed", "rejected", "duplicate")
        }
        click.echo(f"  Processing: {states}")
        bundle = client.get("/fhir/Appointment", params={"_count": 500}).json()
        hidden = sum(1 for m in messages if m.time_type in ("ADM", "KONF", "DOLD") and m.trigger == "S12")
        click.echo(
            f"\nThe citizen platform now sees {bundle['total']} appointments "
            f"({hidden} bookings on hidden time types are withheld, R-BK-1)."
        )
        pid = "191212121212"
        system = "http://electronichealth.se/identifier/personnummer"
        mine = client.get("/fhir/Appointment", params={"patient:identifier": f"{system}|{pid}"}).json()
        click.echo(f"\nTolvan Tolvansson (19121212-****) has {mine['total']} appointment(s):")
        for entry in mine.get("entry", []):
            _print_appointment(entry["resource"])
        by_status: dict[str, int] = {}
        for entry in bundle.get("entry", []):
            status = entry["resource"]["status"]
            by_status[status] = by_status.get(status, 0) + 1
        click.echo(f"\nAll visible appointments by status: {by_status}")
        _print_people(client, sorted({m.person_id for m in messages}))
        _letters(client, journal, push, host, port)
        from gateway import notification_demo  # the demo's part only: it imports the store

        notification_demo.show(runner, client, journal, push, host, port)
    click.echo(
        "\nWhere to look:\n"
        f"  {base}/fhir/Appointment?patient:identifier={system}|{pid}\n"
        f"  {base}/patients/{pid}                (staff view: register flags, account, bookings)\n"
        f"  {base}/fhir/Communication?subject:identifier={system}|{pid}   (e-documents)\n"
        f"  {base}/print-list                         (staff print list; /print-list/ID/document.pdf)\n"
        f"  {base}/held                               (documents held for a staff decision)\n"
        f"  {base}/reports/documents?from={date.today()}&to={date.today() + timedelta(days=1)}&format=csv\n"
        f"  {base}/documents/ID                       (one document: where it went, why, history)\n"
        f"  {base}/fhir/metadata                      (what the FHIR API supports)\n"
        f"  {base}/messages                           (every inbound message with its ACK)\n"
        f"  {base}/openapi.json                       (OpenAPI; any token)\n"
        "  gateway messages --db-url <database>         (the same from the command line)\n"
        "Every route but /health needs a bearer token; on this development key mint one with\n"
        "  gateway token --scope staff --scope platform --scope admin\n"
        '  curl -H "Authorization: Bearer $(gateway token --scope staff)" '
        f"{base}/print-list\n"
        "Run with --keep-running to keep the gateway up and explore."
    )
    _console_address(runner, base)


def _console_address(runner: Any, base: str) -> None:
    """The staff console and who can sign in to it (the mock identity provider's test users)."""
    if runner.gateway.outside.oidc is None:
        return
    from gateway.dev import TEST_USERS

    click.echo(f"\nStaff console (Swedish, sign in through the mock identity provider): {base}/console/")
    for user in TEST_USERS:
        click.echo(f"  test user {user.subject:<12} {user.name}, {user.description}")


def _wait_idle(client: httpx.Client) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if client.get("/messages", params={"state": "received", "limit": 1}).json()["total"] == 0:
            return
        time.sleep(0.1)


_WHERE = {"deliver": "delivered", "print-list": "print list", "hold": "HELD", "refuse": "not sent"}


def _letters(client: httpx.Client, journal: Any, push: Any, host: str, port: int) -> None:
    """Push a day's letters and kallelser, then show where each one went and why (R-DOC-*)."""
    letters = journal.letters(date.today())
    replacements = sum(1 for letter in letters if letter.trigger == "T10")
    click.echo(
        f"\nSimulated journal pushes {len(letters)} e-documents as MDM over MLLP "
        f"({replacements} of them T10 replacements) ..."
    )
    acks = asyncio.run(push(letters, host, port, connections=2))
    codes: dict[str, int] = {}
    for ack in acks:
        code = ack.split(b"MSA|", 1)[1][:2].decode() if b"MSA|" in ack else "??"
        codes[code] = codes.get(code, 0) + 1
    click.echo(f"  ACKs: {codes}")
    _wait_idle(client)
    today = date.today()
    report = client.get(
        "/reports/documents", params={"from": str(today), "to": str(today + timedelta(days=1))}
    ).json()
    click.echo("\nWhere each e-document went, and why (GET /documents/ID); numbers masked here:")
    for row in report["documents"]:
        doc = client.get(f"/documents/{row['document_id']}").json()
        where = _WHERE.get(doc["outcome"], doc["outcome"])
        if doc["outcome"] == "deliver":
            channels = sorted({r["provider"] or r["channel"] for r in doc["recipients"]})
            where = "to " + ", ".join(channels)
        version = f" v{doc['version']}" if doc["version"] > 1 else ""
        click.echo(
            f"  {mask_id(doc['personnummer']):<15} {doc['kind']:<20} {doc['title'][:28]:<28}{version:<4} "
            f"{where:<24} {' '.join(doc['rules'])}"
        )
        click.echo(f"  {'':<15} {mask_ids_in_text(doc['reason'])[:110]}")
    held = client.get("/held").json()["total"]
    printed = client.get("/print-list", params={"state": "open"}).json()["total"]
    click.echo(f"\n  {printed} on the staff print list, {held} held for a staff decision.")
    _release_held(client)


def _release_held(client: httpx.Client) -> None:
    """Staff decide on the held e-brev (R-ID-4): after agreeing with the person how to be reached,
    they release it; a protected guardian is still never listed beside the others (R-ID-3)."""
    held = client.get("/held").json()["items"]
    letters = [item for item in held if item["kind"] == "e-brev" and "R-ID-3" in item["rules"]]
    if not letters:
        return
    click.echo("\nStaff release the held e-brev after agreeing with each person how to be reached (R-ID-4):")
    for item in letters:
        answer = client.post(
            f"/held/{item['id']}/release",
            json={"by": "demo-ssk", "why": "agreed by phone how the person wants to be reached"},
        ).json()
        click.echo(
            f"  {mask_id(item['personnummer']):<15} {answer['outcome']:<12} {' '.join(answer['rules'])}"
        )
        click.echo(f"  {'':<15} {mask_ids_in_text(answer['reason'])[:110]}")
    deadline = time.monotonic() + 30  # the released letters' mailbox copies go out
    while client.get("/outbox", params={"state": "pending", "limit": 1}).json()["total"]:
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    delivered = client.get("/outbox", params={"state": "delivered", "limit": 1}).json()["total"]
    click.echo(f"  {delivered} letter(s) delivered to digital mailboxes in all.")


def _print_people(client: httpx.Client, person_ids: list[str]) -> None:
    """What the register and the account service said of each patient, and what was withheld."""
    click.echo("\nEach patient as staff see them (GET /patients/{id}); numbers masked here:")
    for person_id in person_ids:
        view = client.get(f"/patients/{person_id}").json()
        flags = view["flags"]
        marks = [
            name
            for name, on in (
                (str(flags["protection"]), flags["protected"]),
                ("deceased", flags["deceased"]),
                ("emigrated", flags["emigrated"]),
                ("reservnummer", flags["reservnummer"]),
                ("changed number", flags["changed_number"]),
                ("not in SPAR", not flags["in_register"] and not flags["reservnummer"]),
            )
            if on
        ]
        shown = sum(1 for b in view["bookings"] if b["shown_to_citizen"])
        reasons = {b["withheld_reason"].split(":")[0] for b in view["bookings"] if b["withheld_reason"]}
        withheld = sorted(reasons)
        click.echo(
            f"  {mask_id(person_id):<15} {view['name'] or '-':<24} {', '.join(marks) or 'ordinary':<26} "
            f"account {view['account']['status']:<7} bookings shown {shown}, withheld "
            f"{len(view['bookings']) - shown}{' (' + ', '.join(withheld) + ')' if withheld else ''}"
        )


def _print_appointment(resource: dict[str, Any]) -> None:
    start = datetime.fromisoformat(resource["start"])
    service = resource.get("serviceType", [{}])[0].get("text", "")
    where = next(
        (
            p["actor"].get("display", "")
            for p in resource["participant"]
            if p["actor"].get("type") == "Location"
        ),
        "",
    )
    click.echo(
        f"  {start:%Y-%m-%d %H:%M}  {resource['minutesDuration']:>3} min  {resource['status']:<9}  "
        f"{service:<12} {resource.get('description', ''):<40} {where}"
    )


@main.group(invoke_without_command=True)
@click.option("--db-url", help="Database (default: the gateway's, from GATEWAY_DB_URL or ./var/).")
@click.option("--state", type=click.Choice(list(STATES)))
@click.option("--type", "message_type", help="MSH-9.1, e.g. SIU.")
@click.option("--trigger", help="MSH-9.2, e.g. S12.")
@click.option("--control-id", help="MSH-10.")
@click.option("--patient", help="Patient identifier.")
@click.option("--since", help="Received at or after (ISO 8601 with zone).")
@click.option("--until", help="Received before (ISO 8601 with zone).")
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@click.pass_context
def messages(ctx: click.Context, /, db_url: str | None, **filters: Any) -> None:
    """List stored inbound messages (newest first) and their processing state."""
    ctx.ensure_object(dict)
    ctx.obj["db_url"] = db_url
    if ctx.invoked_subcommand is not None:
        return
    from gateway.store import queries

    as_json = filters.pop("as_json")
    engine = _engine(db_url)
    f = queries.MessageFilter(
        state=filters["state"],
        message_type=filters["message_type"],
        trigger=filters["trigger"],
        control_id=filters["control_id"],
        patient=filters["patient"],
        since=recording_cli.moment(filters["since"], "--since"),
        until=recording_cli.moment(filters["until"], "--until"),
        limit=filters["limit"],
    )
    with engine.connect() as conn:
        total, rows = queries.list_messages(conn, f)
        counts = queries.count_by_state(conn)
    if as_json:
        for row in rows:
            # SQLAlchemy's column names are a str subclass, which orjson takes as keys only so.
            click.echo(orjson.dumps(row, default=str, option=orjson.OPT_NON_STR_KEYS).decode())
        return
    click.echo(f"{total} message(s) match; all by state: {counts}")
    click.echo(
        f"{'id':>6}  {'received (UTC)':<19}  {'via':<4}  {'type':<7}  "
        f"{'control id':<22}  {'state':<9}  ack  error"
    )
    for r in rows:
        click.echo(
            f"{r['id']:>6}  {r['received_at']:%Y-%m-%d %H:%M:%S}  {r['transport']:<4}  "
            f"{(r['message_type'] + '^' + r['trigger']):<7}  {r['control_id'][:22]:<22}  {r['state']:<9}  "
            f"{r['ack_code']:<3}  {r['error'] or ''}"
        )


@messages.command("show")
@click.argument("message_id", type=int)
@click.pass_context
def messages_show(ctx: click.Context, message_id: int) -> None:
    """Show one message: metadata, raw text, ACK and error."""
    from gateway.journal_adapter.redaction import message_view
    from gateway.store import queries

    engine = _engine(ctx.obj.get("db_url"))
    from gateway.store.browser import outputs

    with engine.connect() as conn:
        row = queries.get_message(conn, message_id)
        produced = outputs(conn, message_id)
    if row is None:
        raise click.ClickException(f"message {message_id} is not known")
    row = message_view(row)
    text = row["raw"]
    for key in (
        "id",
        "received_at",
        "transport",
        "peer",
        "sending_application",
        "sending_facility",
        "control_id",
        "message_type",
        "trigger",
        "version",
        "charset",
        "state",
        "error",
        "duplicate_of",
        "processed_at",
        "restricted",
    ):
        click.echo(f"{key:>20}: {row[key]}")
    click.echo("\n--- message ---\n" + text.replace("\r", "\n"))
    click.echo("--- ack ---\n" + row["ack"].replace("\r", "\n"))
    click.echo("--- outputs (resources this message last changed) ---")
    for out in produced:
        click.echo("  " + "  ".join(f"{k}={v}" for k, v in out.items() if v is not None))


def _engine(db_url: str | None) -> Any:
    from gateway.store import migrate
    from gateway.store.db import make_engine

    settings = _settings(db_url=db_url)
    engine = make_engine(settings.database_url())
    migrate.upgrade(engine)
    return engine


@main.group()
def db() -> None:
    """The database schema (Alembic): what it is at, and upgrading it."""


@db.command("current")
@click.option("--db-url", help="Database (default: GATEWAY_DB_URL or SQLite under ./var/).")
def db_current(db_url: str | None) -> None:
    """Print the schema revision of the database and of this code; exit 1 when they differ."""
    from gateway.store import migrate
    from gateway.store.db import make_engine

    engine = make_engine(_settings(db_url=db_url).database_url())
    try:
        with engine.connect() as conn:
            current = migrate.current(conn)
    except Exception as exc:
        raise click.ClickException(f"cannot read the database: {type(exc).__name__}: {exc}") from exc
    finally:
        engine.dispose()
    head = migrate.head()
    click.echo(f"database {current or 'empty'}, code {head}: {'current' if current == head else 'behind'}")
    if current != head:
        sys.exit(1)


@db.command("upgrade")
@click.option("--db-url", help="Database (default: GATEWAY_DB_URL or SQLite under ./var/).")
def db_upgrade(db_url: str | None) -> None:
    """Migrate to this code's schema. Safe beside serving instances: on PostgreSQL the upgrade
    holds an advisory lock, and a current schema is left alone."""
    from gateway.store import migrate
    from gateway.store.db import make_engine

    engine = make_engine(_settings(db_url=db_url).database_url())
    try:
        changed = migrate.upgrade(engine)
        with engine.connect() as conn:
            current = migrate.current(conn)
    except Exception as exc:
        raise click.ClickException(f"upgrade failed: {type(exc).__name__}: {exc}") from exc
    finally:
        engine.dispose()
    click.echo(f"upgraded to {current}" if changed else f"already current at {current}")


main.add_command(lint_template, "lint-template")
main.add_command(recording_cli.record, "record")
main.add_command(recording_cli.replay, "replay")
messages.add_command(recording_cli.reprocess, "reprocess")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
