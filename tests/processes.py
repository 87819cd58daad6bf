"""Gateway and mock processes for end-to-end tests that start, kill and restart them.

Each process gets a session (and so a process group) of its own: ``gateway serve`` and every
child it spawns (the processing worker, multiprocessing's resource tracker) share that group,
so a test kills the whole gateway with one signal to the group and checks nothing is left. The
standalone mocks are another group and outlive the gateway, as an outside system does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from gateway.dev import mock_env

ROOT = Path(__file__).resolve().parents[1]
GATEWAY = [sys.executable, "-m", "gateway.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any GATEWAY_ setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env["GATEWAY_AUTH"] = "off"  # tests/e2e/test_auth.py proves authentication
    env["PYTHONPATH"] = str(ROOT)
    return env | extra


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Wait until ``url`` answers 200; fail early if ``process`` died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise AssertionError(f"{process.args!r} exited with {process.returncode} before {url} answered")
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer within {timeout} s")
        time.sleep(0.1)


@dataclass
class Started:
    """One started process (the leader of its own process group) and where its output goes."""

    process: subprocess.Popen[bytes]
    log: Path
    _out: IO[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def group(self) -> list[int]:
        """The live (not zombie) processes in this process's group, the leader included."""
        return group_members(self.pid)

    def kill_all(self, timeout: float = 10) -> None:
        """SIGKILL the whole group (gateway, worker, helpers) and wait until none runs."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(timeout)
        deadline = time.monotonic() + timeout
        while (left := group_members(self.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        self._out.close()
        assert not left, f"still running after SIGKILL to the group: {left}"

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM the leader (a clean shutdown) and wait; kill the group if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill_all()
        with_stragglers = group_members(self.pid)
        if with_stragglers:
            self.kill_all()
        self._out.close()
        return self.process.returncode

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def start(args: list[str], env: dict[str, str], log: Path, cwd: Path) -> Started:
    out = log.open("ab")
    process = subprocess.Popen(
        args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    return Started(process, log, out)


def group_members(pgid: int) -> list[int]:
    """Processes whose process group is ``pgid`` and that are not zombies (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


@dataclass
class Mocks:
    """``gateway mocks`` in its own process: SPAR, accounts, the journal service, the mailboxes."""

    started: Started
    url: str

    def env(self) -> dict[str, str]:
        """The adapters' URL settings pointing at these mocks (as the worker process gets them)."""
        return mock_env(self.url)

    def switches(self, **changes: object) -> dict[str, object]:
        response = httpx.put(f"{self.url}/mailbox/_switches", json=changes, timeout=5)
        response.raise_for_status()
        switches: dict[str, object] = response.json()
        return switches

    def deliveries(self) -> dict[str, Any]:
        """What the mailbox operators received: ``deliveries`` (one per message id), ``refused``."""
        record: dict[str, Any] = httpx.get(f"{self.url}/mailbox/_deliveries", timeout=10).json()
        return record


def start_mocks(tmp_path: Path) -> Mocks:
    port = free_port()
    started = start([*GATEWAY, "mocks", "--port", str(port)], clean_env(), tmp_path / "mocks.log", tmp_path)
    mocks = Mocks(started, f"http://127.0.0.1:{port}")
    wait_until_up(f"{mocks.url}/mailbox/_switches", started.process)
    return mocks


@dataclass
class Serve:
    """``gateway serve`` in its own process group (the worker process is its child)."""

    started: Started
    http_url: str
    mllp: tuple[str, int]

    def wait_up(self) -> Serve:
        wait_until_up(f"{self.http_url}/health", self.started.process)
        return self


def start_serve(tmp_path: Path, name: str, env: dict[str, str], *, wait: bool = True) -> Serve:
    """``gateway serve`` on free ports; ``env`` carries its settings (GATEWAY_...). Without
    ``wait``, call :meth:`Serve.wait_up` (start several at once: each takes seconds)."""
    http_port, mllp_port = free_port(), free_port()
    data = tmp_path / name
    data.mkdir(exist_ok=True)
    started = start(
        [*GATEWAY, "serve", "--http-port", str(http_port), "--mllp-port", str(mllp_port)],
        clean_env(**env),
        tmp_path / f"{name}.log",
        data,
    )
    serve = Serve(started, f"http://127.0.0.1:{http_port}", ("127.0.0.1", mllp_port))
    return serve.wait_up() if wait else serve
