"""The command line as a newcomer and an operator use it: demo, serve, messages."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from click.testing import CliRunner

from gateway.cli import main
from tests.support import ack_code, mllp_exchange, siu

GATEWAY = [sys.executable, "-m", "gateway.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_AUTH"] = "off"  # tests/e2e/test_auth.py proves authentication
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    env["GATEWAY_MOCKS_PORT"] = "0"  # the built-in mocks on any free port: tests run side by side
    return env


def test_demo_pushes_a_day_over_mllp_and_shows_what_the_platform_sees(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            *GATEWAY,
            "demo",
            "--bookings",
            "15",
            "--http-port",
            str(_free_port()),
            "--mllp-port",
            str(_free_port()),
        ],
        cwd=tmp_path,
        env={k: v for k, v in _env().items() if k != "GATEWAY_AUTH"},  # as a newcomer runs it
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "gateway token --scope" in out  # how to get a token (issue 7)
    assert (tmp_path / "var" / "dev-jwt-key.pem").exists()
    assert "ACKs: {'AA':" in out and "'AE'" not in out
    assert "Tolvan Tolvansson (19121212-****)" in out
    assert "191212121212" not in out.split("Where to look")[0]  # masked in what is printed
    assert "'failed': 0" in out
    # It ends with the staff console and who can sign in (issue 19).
    assert "/console/" in out.split("Staff console")[1] and "test user olle.admin" in out
    # The letters part (issue 4): where each e-document went and why, by rule.
    letters = out.split("Where each e-document went")[1].split("Where to look")[0]
    assert "R-DOC-4" in letters and "on the staff print list" in letters
    assert "held for a staff decision" in letters
    assert "191212121212" not in letters
    # The reminders part (issue 20): the plan, by rule, numbers masked, no text or mobile.
    reminders = out.split("SMS reminders and notices planned")[1].split("Where to look")[0]
    assert "reminder" in reminders and "R-NOT-1" in reminders
    assert "191212121212" not in reminders and "+4670" not in reminders
    assert (tmp_path / "var" / "demo.db").exists()

    # The operator's commands on what the demo left, in process (the demo itself ran as a process).
    db = f"sqlite:///{(tmp_path / 'var' / 'demo.db').as_posix()}"
    runner = CliRunner()
    listing = runner.invoke(main, ["messages", "--db-url", db, "--type", "SIU", "--limit", "5"])
    assert listing.exit_code == 0, listing.output
    assert "processed" in listing.stdout and "SIU^S" in listing.stdout and "MDM" not in listing.stdout
    shown = runner.invoke(main, ["messages", "--db-url", db, "show", "1"])
    assert shown.exit_code == 0, shown.output
    assert "MSH|^~\\&|TAKECARE" in shown.stdout and "MSA|AA|" in shown.stdout
    missing = runner.invoke(main, ["messages", "--db-url", db, "show", "99999"])
    assert missing.exit_code != 0 and "99999 is not known" in missing.stderr


def test_serve_runs_http_and_mllp_in_one_process_and_stops_cleanly(tmp_path: Path) -> None:
    http_port, mllp_port = _free_port(), _free_port()
    env = _env() | {"GATEWAY_LOG_FORMAT": "json"}
    proc = subprocess.Popen(
        [*GATEWAY, "serve", "--http-port", str(http_port), "--mllp-port", str(mllp_port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{http_port}/health").json()["status"] == "ok":
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        (ack,) = mllp_exchange("127.0.0.1", mllp_port, [siu()])
        assert ack_code(ack) == "AA"
        assert (tmp_path / "var" / "gateway.db").exists()  # embedded default: SQLite under ./var/
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert '"event":"gateway.started"' in err  # JSON logs in production format
    assert "191212121212" not in err


def test_serve_explains_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = subprocess.run(
            [*GATEWAY, "serve", "--http-port", str(port), "--mllp-port", str(_free_port())],
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert run.returncode != 0
    assert "Error:" in run.stderr and "in use" in run.stderr.lower()
