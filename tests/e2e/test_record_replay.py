"""Record and replay through real ports (docs/recording.md): a recorded day replays against a
fresh gateway with no differences, online and offline; a changed mapping shows exactly the
changed fields and exits 1; the message browser reprocesses idempotently."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from click.testing import CliRunner

from gateway.cli import main as gateway_cli
from gateway.mappings import DEFAULT_DIR
from gateway.recording import fileformat
from gateway.recording import replay as rp
from gateway.recording.diff import Ignore
from gateway.settings import Settings
from gateway.store.db import make_engine
from gateway.store.recordings import ExportFilter, export_lines
from gateway.testing import GatewayThread
from mocks.journal import JournalSimulator, push
from tests.conftest import wait_processed
from tests.support import ack_code, eventually, mllp_exchange, siu

GATEWAY = [sys.executable, "-m", "gateway.cli"]


def settings(tmp: Path, **extra: object) -> Settings:
    return Settings(
        data_dir=tmp,
        http_port=0,
        mllp_port=0,
        mocks_port=0,
        mllp_idle_timeout=2.0,
        worker_poll_interval=0.2,
        log_level="WARNING",
        **extra,  # type: ignore[arg-type]
    )


def _wait_outbox(client: httpx.Client, timeout: float = 15) -> None:
    eventually(
        lambda: client.get("/outbox", params={"state": "pending", "limit": 1}).json()["total"] == 0,
        "no letter pending in the outbox",
        timeout=timeout,
        interval=0.1,
    )


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small day recorded through the built-in mocks: bookings, then letters and kallelser."""
    tmp = tmp_path_factory.mktemp("recorded")
    journal = JournalSimulator(seed=3, run_id="RR")
    with GatewayThread(settings(tmp, record=True)) as gw, httpx.Client(base_url=gw.http_url, timeout=10) as c:
        host, port = gw.mllp_address
        asyncio.run(push(journal.day(date.today(), bookings=12), host, port, connections=3))
        wait_processed(c, 30)
        asyncio.run(push(journal.letters(date.today()), host, port, connections=2))
        wait_processed(c, 30)
        _wait_outbox(c)
    engine = make_engine(settings(tmp).database_url())
    path = tmp / "day.jsonl"
    fileformat.write(path, export_lines(engine, ExportFilter()))
    engine.dispose()
    return path


def _replay(recording: Path, gw: GatewayThread) -> rp.Report:
    host, port = gw.mllp_address
    target = rp.Target("mllp", host, port, gw.http_url)
    return asyncio.run(rp.replay(fileformat.read(recording), target, ignore=Ignore(), outbox_wait=10))


def test_the_recording_holds_every_port_linked_by_message_ids(recording: Path) -> None:
    rec = fileformat.read(recording)
    assert rec.header["version"] == fileformat.VERSION
    assert {line["message_type"] for line in rec.inbound} == {"SIU", "MDM"}
    assert all(line["ack"].startswith("MSH|") and fileformat.get_bytes(line, "raw") for line in rec.inbound)
    assert any("raw_b64" in line for line in rec.inbound)  # ISO 8859-1 messages, byte for byte
    services = {line["service"] for line in rec.outbound}
    assert {"spar", "mailbox"} <= services
    ids = {line["message_id"] for line in rec.inbound}
    spar = [line for line in rec.outbound if line["service"] == "spar"]
    assert spar and all(set(line["message_ids"]) <= ids and line["message_ids"] for line in spar)
    assert all(len(line["control_ids"]) == len(line["message_ids"]) for line in spar)
    deliveries = [line for line in rec.outbound if "deliverSecure" in line["request"].get("body", "")]
    assert deliveries, "the outbox's signed deliveries are recorded too"
    assert {line["resource_type"] for line in rec.outputs} == {"Appointment", "Communication"}


def test_a_recorded_day_replays_against_a_fresh_gateway_with_no_differences(
    recording: Path, tmp_path: Path
) -> None:
    with GatewayThread(settings(tmp_path)) as gw:
        report = _replay(recording, gw)
    assert report.failures == [], rp.render(report)
    assert report.outputs_compared > 0 and len(report.cases) == len(fileformat.read(recording).inbound)


def test_offline_the_outside_calls_are_answered_from_the_recording_with_no_differences(
    recording: Path, tmp_path: Path
) -> None:
    with GatewayThread(settings(tmp_path, offline_recording=recording, mocks=False)) as gw:
        assert gw.gateway.outside.mocks is None  # nothing to call: no mock, no outside system
        report = _replay(recording, gw)
    assert report.failures == [], rp.render(report)
    assert report.notes == []  # the letters were delivered from the recorded answers too


def test_a_changed_mapping_shows_exactly_the_changed_fields_and_exits_1(
    recording: Path, tmp_path: Path
) -> None:
    mappings = tmp_path / "mappings"
    shutil.copytree(DEFAULT_DIR, mappings)
    table = mappings / "time_types.yaml"
    table.write_text(
        table.read_text(encoding="utf-8").replace('"Återbesök"', '"Uppföljning"'), encoding="utf-8"
    )
    # As a tester runs it: authentication on; the replay's own gateway trusts the token it mints.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    env["GATEWAY_MAPPINGS_DIR"] = str(mappings)
    junit = tmp_path / "replay.xml"
    run = subprocess.run(
        [
            *GATEWAY,
            "replay",
            str(recording),
            "--offline",
            "--quiet",
            "--junit",
            str(junit),
            "--outbox-wait",
            "5",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    changed = [line.strip() for line in run.stdout.splitlines() if line.strip().startswith("Appointment.")]
    assert changed, run.stdout
    paths = {line.split(":")[0] for line in changed}
    assert paths == {"Appointment.serviceType[0].coding[0].display", "Appointment.serviceType[0].text"}
    assert all('recorded "Återbesök", replayed "Uppföljning"' in line for line in changed)
    suite = ET.parse(junit).getroot()
    failures = suite.findall("testcase/failure")
    assert int(suite.get("failures", "0")) == len(failures) > 0
    assert int(suite.get("tests", "0")) == len(fileformat.read(recording).inbound)
    assert all(f.get("message") == "2 difference(s)" for f in failures)


def test_reprocessing_a_message_runs_it_again_and_changes_nothing_already_current(tmp_path: Path) -> None:
    with GatewayThread(settings(tmp_path)) as gw, httpx.Client(base_url=gw.http_url, timeout=10) as client:
        host, port = gw.mllp_address
        acks = mllp_exchange(
            host,
            port,
            [siu(booking="RP1"), b"MSH|^~\\&|X|Y|GATEWAY|REGION|2026||SIU^S12|C1|P|2.5.1\rPID|1\r"],
        )
        assert [ack_code(a) for a in acks] == ["AA", "AE"]
        wait_processed(client)
        items = client.get("/messages", params={"limit": 10}).json()["items"]
        accepted = next(m["id"] for m in items if m["state"] == "processed")
        rejected = next(m["id"] for m in items if m["state"] == "rejected")
        shown = client.get(f"/messages/{accepted}").json()
        (output,) = shown["outputs"]
        assert output["resource"].startswith("Appointment/") and output["version"] == 1
        before = client.get(f"/fhir/{output['resource']}").json()

        again = client.post(f"/messages/{accepted}/reprocess")
        assert again.status_code == 200 and again.json()["previous_state"] == "processed"
        assert again.json()["state"] == "received"
        wait_processed(client)
        after = client.get(f"/fhir/{output['resource']}").json()
        assert after == before  # same version, same lastUpdated: nothing changed
        assert client.get(f"/messages/{accepted}").json()["state"] == "processed"

        assert client.post(f"/messages/{rejected}/reprocess").status_code == 400
        assert client.post("/messages/999999/reprocess").status_code == 404

        db = gw.gateway.settings.database_url()
        cli = CliRunner()
        listed = cli.invoke(
            gateway_cli,
            [
                "messages",
                "--db-url",
                db,
                "--since",
                (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
                "--json",
            ],
        )
        assert listed.exit_code == 0 and len(listed.output.splitlines()) == 2
        done = cli.invoke(
            gateway_cli, ["messages", "--db-url", db, "reprocess", str(accepted), str(accepted)]
        )
        assert done.exit_code == 0, done.output
        assert "queued for processing" in done.output and "already waiting" in done.output
        wait_processed(client)
        assert client.get(f"/fhir/{output['resource']}").json() == before


def test_export_by_patient_import_and_prune_from_the_command_line(recording: Path, tmp_path: Path) -> None:
    rec = fileformat.read(recording)
    patient = next(line["patient"] for line in rec.inbound if line["message_type"] == "MDM")
    db = f"sqlite:///{(tmp_path / 'imported.db').as_posix()}"
    cli = CliRunner()
    imported = cli.invoke(gateway_cli, ["record", "import", str(recording), "--db-url", db, "--name", "day"])
    assert imported.exit_code == 0, imported.output
    narrow = tmp_path / "one.jsonl"
    exported = cli.invoke(
        gateway_cli,
        ["record", "export", "--db-url", db, "--source", "day", "--patient", patient, "-o", str(narrow)],
    )
    assert exported.exit_code == 0, exported.output
    one = fileformat.read(narrow)
    assert one.inbound and {line["patient"] for line in one.inbound} == {patient}
    assert len(one.inbound) < len(rec.inbound)
    ids = {line["message_id"] for line in one.inbound}
    assert all(set(line["message_ids"]) & ids or not line["message_ids"] for line in one.outbound)
    assert {line["message_id"] for line in one.outputs} <= ids
    listed = cli.invoke(gateway_cli, ["record", "list", "--db-url", db])
    assert "day" in listed.output
    pruned = cli.invoke(gateway_cli, ["record", "prune", "--db-url", db, "--source", "day"])
    assert pruned.exit_code == 0 and f"({len(list(rec.lines()))} line(s))" in pruned.output
    assert orjson.loads(narrow.read_bytes().splitlines()[0])["imported_as"] == "day"
