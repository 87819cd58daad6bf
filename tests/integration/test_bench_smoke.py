"""The benchmarks still run and still produce well-formed figures (never how fast: see bench/).

Runs ``python -m bench.run --quick`` in a subprocess (the benchmarks configure logging for the
whole process and start worker processes), on tiny sizes: ingest on SQLite, search on SQLite
and PostgreSQL, mailbox on SQLite.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PG_ADMIN_URL

ROOT = Path(__file__).resolve().parents[2]


def _check(result: dict[str, Any], backends: set[str]) -> None:
    assert result["quick"] is True
    assert result["skipped"] == {}, result["skipped"]
    figures = result["figures"]
    assert figures and {f["backend"] for f in figures} == backends
    for f in figures:
        assert f["value"] is not None and f["value"] > 0, f
        assert f["baseline"] is not None and f["baseline"] > 0, f
        assert math.isclose(f["ratio"], f["value"] / f["baseline"], rel_tol=1e-9), f
    for s in result["series"]:
        assert s["count"] > 0, s
        assert 0 < s["p50"] <= s["p90"] <= s["p99"] <= s["max"], s


@pytest.mark.postgres
def test_benchmarks_run_in_quick_mode_and_report_ratios(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-W",
            "error",
            "-m",
            "bench.run",
            "--quick",
            "--out",
            str(tmp_path),
            "--pg-url",
            PG_ADMIN_URL,
        ],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "GATEWAY_AUTH"},  # as `make bench` runs
        capture_output=True,
        text=True,
        timeout=600,  # a smoke run, not a timing: it may share the machine with other work
    )
    assert done.returncode == 0, done.stdout + done.stderr
    ingest = json.loads((tmp_path / "ingest-latest.json").read_text(encoding="utf-8"))
    search = json.loads((tmp_path / "search-latest.json").read_text(encoding="utf-8"))
    _check(ingest, {"sqlite"})
    assert {f["name"] for f in ingest["figures"]} >= {
        "throughput (ACKed)",
        "throughput (processed)",
        "ACK latency p50",
        "ACK latency p99",
    }
    assert {s["subject"] for s in ingest["series"]} == {"floor", "gateway"}
    _check(search, {"sqlite", "postgresql"})
    assert {f["name"] for f in search["figures"]} >= {"search p50", "search p99"}
    assert all(not search["details"][b]["problems"] for b in ("sqlite", "postgresql")), search["details"]
    mailbox = json.loads((tmp_path / "mailbox-latest.json").read_text(encoding="utf-8"))
    _check(mailbox, {"sqlite"})
    assert {f["name"] for f in mailbox["figures"]} >= {
        "deliveries/s at 0 ms",
        "deliveries/s at 50 ms",
        "deliver() p50 at 50 ms",
        "deliver() p99 at 50 ms",
    }
    assert all(not r["problems"] for r in mailbox["details"]["sqlite"].values()), mailbox["details"]
    assert "ratio" in done.stdout  # the table was printed
