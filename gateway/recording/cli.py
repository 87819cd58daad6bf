"""``gateway record`` (export, import, prune, list), ``gateway replay`` and
``gateway messages reprocess`` (registered on the ``gateway`` command in ``gateway/cli.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from gateway.recording import fileformat
from gateway.recording.diff import DEFAULT_IGNORE, Ignore
from gateway.settings import AdapterSettings, Settings


def _engine(db_url: str | None) -> Any:
    from gateway.store import migrate
    from gateway.store.db import make_engine

    overrides: dict[str, Any] = {"db_url": db_url} if db_url else {}
    settings = Settings(**overrides)
    engine = make_engine(settings.database_url())
    migrate.upgrade(engine)
    return engine


def moment(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time", param_hint=name) from exc
    if parsed.tzinfo is None:
        raise click.BadParameter("needs a time zone (e.g. Z or +01:00)", param_hint=name)
    return parsed


@click.group()
def record() -> None:
    """Recordings of real traffic: export, import, prune (docs/recording.md).

    Recording is on with GATEWAY_RECORD=true: every call to an outside system is kept with its
    answer; inbound messages, ACKs and FHIR resources are the gateway's own records.
    """


@record.command("export")
@click.option("--db-url", help="Database (default: the gateway's, from GATEWAY_DB_URL or ./var/).")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The file to write (JSON Lines).",
)
@click.option("--since", help="Messages received at or after (ISO 8601 with zone).")
@click.option("--until", help="Messages received before (ISO 8601 with zone).")
@click.option("--patient", help="Only this patient's messages (and the calls made for them).")
@click.option("--type", "message_type", help="MSH-9.1, e.g. SIU or MDM.")
@click.option("--trigger", help="MSH-9.2, e.g. S12.")
@click.option(
    "--source", default="", help="Export an imported recording (its name) instead of this gateway's."
)
def export(
    db_url: str | None,
    output: Path,
    since: str | None,
    until: str | None,
    patient: str | None,
    message_type: str | None,
    trigger: str | None,
    source: str,
) -> None:
    """Write a recording file: the selected inbound messages with their ACKs, the outside calls
    made for them, and the FHIR resources they produced."""
    from gateway.store.recordings import ExportFilter, export_lines

    f = ExportFilter(moment(since, "--since"), moment(until, "--until"), patient, message_type, trigger)
    engine = _engine(db_url)
    try:
        counts = {"inbound": 0, "outbound": 0, "output": 0}

        def counted() -> Iterator[dict[str, Any]]:
            for line in export_lines(engine, f, source=source):
                if line["type"] in counts:
                    counts[line["type"]] += 1
                yield line

        fileformat.write(output, counted())
    except fileformat.RecordingFormatError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        engine.dispose()
    click.echo(
        f"{output}: {counts['inbound']} inbound message(s), {counts['outbound']} outside call(s), "
        f"{counts['output']} FHIR resource(s)"
    )


@record.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--db-url", help="Database (default: the gateway's).")
@click.option("--name", help="Name to keep it under (default: the file's name).")
def import_(file: Path, db_url: str | None, name: str | None) -> None:
    """Load a recording file into the database (replacing one of the same name); export it again
    with --source NAME, narrowed by the same filters."""
    from gateway.store.recordings import import_recording

    try:
        recording = fileformat.read(file)
    except fileformat.RecordingFormatError as exc:
        raise click.ClickException(str(exc)) from exc
    engine = _engine(db_url)
    try:
        count = import_recording(engine, recording, name or file.name)
    finally:
        engine.dispose()
    click.echo(f"imported {count} line(s) of {file} as {name or file.name!r}")


@record.command("prune")
@click.option("--db-url", help="Database (default: the gateway's).")
@click.option("--older-than-days", type=float, help="Default: GATEWAY_RECORD_RETENTION_DAYS (14).")
@click.option("--source", help="Delete an imported recording by name instead.")
def prune_command(db_url: str | None, older_than_days: float | None, source: str | None) -> None:
    """Delete recorded outside calls older than the retention (or one imported recording)."""
    from gateway.store.recordings import drop_source, prune

    engine = _engine(db_url)
    try:
        if source:
            count = drop_source(engine, source)
            click.echo(f"deleted imported recording {source!r} ({count} line(s))")
            return
        days = older_than_days if older_than_days is not None else Settings().record_retention_days
        count = prune(engine, days)
    finally:
        engine.dispose()
    click.echo(f"deleted {count} recorded call(s) older than {days:g} day(s)")


@record.command("list")
@click.option("--db-url", help="Database (default: the gateway's).")
def list_command(db_url: str | None) -> None:
    """What is recorded: this gateway's own calls and each imported recording."""
    from gateway.store.recordings import sources

    engine = _engine(db_url)
    try:
        for source, count in sorted(sources(engine).items()):
            click.echo(f"{source or '(recorded here)':<40} {count:>8} line(s)")
    finally:
        engine.dispose()


@contextlib.contextmanager
def _fresh_gateway(recording_file: Path, offline: bool) -> Iterator[Any]:
    """A new gateway in this process on an empty SQLite database and free ports."""
    from gateway import logging as gw_logging
    from gateway.testing import GatewayThread

    gw_logging.configure("console", "ERROR")
    with tempfile.TemporaryDirectory(prefix="gateway-replay-") as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            db_url=None,
            http_port=0,
            mllp_port=0,
            mocks_port=0,
            worker_poll_interval=0.2,
            record=False,
            log_level="ERROR",
            offline_recording=recording_file if offline else None,
        )
        runner = GatewayThread(settings, adapters=AdapterSettings())
        runner.start()
        try:
            yield runner
        finally:
            runner.stop()


def _token_for(runner: Any) -> str | None:
    """The fresh gateway runs on its development key: the replay mints its own token."""
    from gateway.api import auth

    settings = runner.gateway.settings
    if settings.auth == "off":
        return None
    return auth.dev_token(settings, auth.SCOPES, subject="replay")


def _progress(label: str, total: int) -> Any:
    bar = click.progressbar(length=max(total, 1), label=f"{label:<10}", file=sys.stderr, show_pos=True)
    bar.__enter__()
    state = {"done": 0}

    def advance(n: int) -> None:
        bar.update(n)
        state["done"] += n
        if state["done"] >= total:
            bar.__exit__(None, None, None)

    if total == 0:
        bar.__exit__(None, None, None)
    return advance


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--target",
    help="mllp://HOST:PORT or http://HOST:PORT of a running gateway (default: start a fresh one here).",
)
@click.option(
    "--http", "http_base", help="The target's HTTP API (default: http://HOST:8000 for an MLLP target)."
)
@click.option(
    "--offline", is_flag=True, help="Answer the outside calls from the recording (a fresh gateway here)."
)
@click.option(
    "--speed", type=float, help="Send at the recorded pace times this factor (default: as fast as possible)."
)
@click.option("--ignore", "ignores", multiple=True, help="One more path pattern not to compare (repeatable).")
@click.option(
    "--no-default-ignores", is_flag=True, help="Compare even what differs legitimately (docs/recording.md)."
)
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), help="Write JUnit XML here.")
@click.option(
    "--settle-timeout", type=float, default=120.0, show_default=True, help="Seconds to wait for processing."
)
@click.option(
    "--limit", type=int, default=50, show_default=True, help="Messages with differences shown in full."
)
@click.option(
    "--outbox-wait",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds to wait for the target's mailbox outbox to empty after processing.",
)
@click.option(
    "--token",
    envvar="GATEWAY_REPLAY_TOKEN",
    help="Bearer token for a --target with authentication (scopes journal, platform, staff, admin).",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def replay(
    file: Path,
    target: str | None,
    http_base: str | None,
    offline: bool,
    speed: float | None,
    ignores: tuple[str, ...],
    no_default_ignores: bool,
    junit: Path | None,
    settle_timeout: float,
    outbox_wait: float,
    limit: int,
    quiet: bool,
    token: str | None,
) -> None:
    """Send a recording's inbound messages again, in order, and compare every ACK, every
    message's state and every FHIR resource with the recording. Exit code 1 on any difference.

    Without --target a fresh gateway is started here on an empty database: with the built-in
    mocks, or with --offline answering every outside call from the recording. To replay offline
    into a gateway of your own, start it with GATEWAY_OFFLINE_RECORDING=FILE.
    """
    from gateway.recording import replay as rp

    try:
        recording = fileformat.read(file)
    except fileformat.RecordingFormatError as exc:
        raise click.ClickException(str(exc)) from exc
    if offline and target is not None:
        raise click.UsageError(
            "--offline starts its own gateway; to replay offline into yours, start it with "
            f"GATEWAY_OFFLINE_RECORDING={file} and give --target without --offline"
        )
    if speed is not None and speed <= 0:
        raise click.BadParameter("must be above 0", param_hint="--speed")
    ignore = Ignore((() if no_default_ignores else DEFAULT_IGNORE) + ignores)
    progress = None if quiet else _progress

    def run(where: rp.Target) -> rp.Report:
        return asyncio.run(
            rp.replay(
                recording,
                where,
                ignore=ignore,
                speed=speed,
                settle_timeout=settle_timeout,
                outbox_wait=outbox_wait,
                progress=progress,
            )
        )

    try:
        if target is not None:
            report = run(rp.parse_target(target, http_base, token))
        else:
            with _fresh_gateway(file, offline) as runner:
                host, port = runner.mllp_address
                report = run(rp.Target("mllp", host, port, runner.http_url, _token_for(runner)))
                report.notes.append(
                    "a fresh gateway on an empty database, "
                    + (
                        "offline: outside calls answered from the recording"
                        if offline
                        else "with the built-in mocks"
                    )
                )
    except rp.ReplayError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(rp.render(report, limit=limit))
    if junit is not None:
        rp.junit(report, junit)
        click.echo(f"JUnit XML: {junit}")
    if report.failures:
        sys.exit(1)


@click.command("reprocess")
@click.argument("message_ids", nargs=-1, type=int, required=True)
@click.pass_context
def reprocess(ctx: click.Context, message_ids: tuple[int, ...]) -> None:
    """Run stored messages through the pipeline again (idempotent: what is current stays)."""
    from gateway.store import browser

    engine = _engine((ctx.obj or {}).get("db_url"))
    try:
        outcomes = browser.reprocess(engine, message_ids)
    finally:
        engine.dispose()
    for o in outcomes:
        click.echo(f"{o.message_id:>6}  {o.before or '-':<9} -> {o.after or '-':<9}  {o.note}")
    if any(o.before is None for o in outcomes):
        sys.exit(1)
