"""The benchmarks still run and still produce well-formed figures (never how fast: see bench/).

Runs ``python -m bench.run NAME --quick`` for each benchmark in a subprocess (the benchmarks
configure logging for the whole process and start worker processes), on tiny sizes.
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
    figures = result["figures"]
    assert figures and {f["backend"] for f in figures} == backends
    for f in figures:
        assert f["value"] is not None and f["value"] > 0, f
        assert f["baseline"] is not None and f["baseline"] > 0, f
        assert math.isclose(f["ratio"], f["value"] / f["baseline"], rel_tol=1e-9), f
    for s in result["series"]:
        assert s["count"] > 0, s
        assert 0 < s["p50"] <= s["p90"] <= s["p99"] <= s["max"], s


#: name -> (backends its quick run reports, figures it must report, what it may skip)
EXPECTED: dict[str, tuple[set[str], set[str], set[str]]] = {
    "ingest": (
        {"sqlite"},
        {"throughput (ACKed)", "throughput (processed)", "ACK latency p50", "ACK latency p99"},
        set(),
    ),
    "search": ({"sqlite", "postgresql"}, {"search p50", "search p99"}, set()),
    "register": ({"http"}, {"lookups/s cold (no cache)", "lookups/s cached"}, set()),
    "mailbox": (
        {"sqlite"},
        {"deliveries/s at 0 ms", "deliveries/s at 50 ms", "deliver() p50 at 50 ms", "deliver() p99 at 50 ms"},
        set(),
    ),
    "replay": ({"sqlite"}, {"replay send rate (offline target)"}, set()),
    "console": ({"sqlite"}, {"Översikt p95", "Person p95"}, {"postgresql"}),  # SQLite only, by design
}


def test_every_benchmark_is_smoked() -> None:
    from bench.run import BENCHMARKS

    assert set(EXPECTED) == set(BENCHMARKS)


@pytest.mark.postgres
@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_benchmark_runs_in_quick_mode_and_reports_ratios(name: str, tmp_path: Path) -> None:
    """One benchmark a test, so the six spread over the test workers."""
    done = subprocess.run(
        [
            sys.executable,
            "-W",
            "error",
            "-m",
            "bench.run",
            name,
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
    assert "ratio" in done.stdout  # the table was printed
    result = json.loads((tmp_path / f"{name}-latest.json").read_text(encoding="utf-8"))
    backends, figures, skipped = EXPECTED[name]
    assert set(result["skipped"]) == skipped, result["skipped"]
    _check(result, backends)
    assert {f["name"] for f in result["figures"]} >= figures
    if name == "ingest":
        assert {s["subject"] for s in result["series"]} == {"floor", "gateway"}
    if name == "search":
        assert all(not result["details"][b]["problems"] for b in backends), result["details"]
    if name == "mailbox":
        assert all(not r["problems"] for r in result["details"]["sqlite"].values()), result["details"]
