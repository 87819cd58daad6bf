"""Run benchmarks: ``python -m bench.run [NAME ...] [--quick] [--no-postgres]``.

Each benchmark is one module with ``NAME``, ``TITLE`` and ``run(ctx) -> Result``; add a new one
to ``BENCHMARKS``. Results are printed as a table and written as JSON to ``bench/results/``
(``<name>-<time>.json`` and ``<name>-latest.json``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from types import ModuleType

from bench.common import DEFAULT_PG_ADMIN_URL, INLINE_WORKER, POSTGRESQL, SQLITE, Context, Result

# name -> module; the order is the order of a full run.
BENCHMARKS: dict[str, str] = {
    "ingest": "bench.ingest",
    "search": "bench.search",
    "register": "bench.register",
    "mailbox": "bench.mailbox",
    "replay": "bench.replay",
    "console": "bench.console",
}
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def load(name: str) -> ModuleType:
    return importlib.import_module(BENCHMARKS[name])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"benchmarks to run ({', '.join(BENCHMARKS)})"
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: checks the benchmarks work, not speed"
    )
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument(
        "--pg-url", default=DEFAULT_PG_ADMIN_URL, help="PostgreSQL to create scratch databases on"
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where the JSON results go")
    parser.add_argument(
        "--log-level", default="INFO", help="gateway log level (logs go to a file in the run's temp dir)"
    )
    parser.add_argument(
        "--what-if-nodelay",
        action="store_true",
        help="what-if: set TCP_NODELAY on the gateway's HTTP socket (a bench-only patch; see README)",
    )
    parser.add_argument(
        "--worker-inline",
        action="store_true",
        help="ingest: run the processing worker inline in the serving process (GatewayThread's "
        "default, gateway serve --worker inline) instead of in its own process, to compare",
    )
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    names = args.names or list(BENCHMARKS)
    backends = (SQLITE,) if args.no_postgres else (SQLITE, POSTGRESQL)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    failed = False
    what_if: tuple[str, ...] = ()
    if args.what_if_nodelay:
        _patch_http_nodelay()
        what_if = ("TCP_NODELAY on the gateway's HTTP listening socket (bench-only patch)",)
    if args.worker_inline:
        what_if += (INLINE_WORKER,)
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        workdir = Path(tmp)
        log_path = _configure_logging(workdir, args.log_level)
        for name in names:
            ctx = Context(
                quick=args.quick,
                backends=backends,
                pg_admin_url=args.pg_url,
                workdir=workdir / name,
                log_level=args.log_level,
                what_if=what_if,
            )
            ctx.workdir.mkdir()
            print(f"\n== {name} {'(quick) ' if args.quick else ''}==", flush=True)
            started = time.perf_counter()
            result: Result = load(name).run(ctx)
            result.seconds = round(time.perf_counter() - started, 1)
            result.notes += [f"WHAT-IF, not the gateway as it is: {w}" for w in what_if]
            print(render(result), flush=True)
            data = json.dumps(result.to_json(), indent=2, sort_keys=False)
            for target in (args.out / f"{name}-{stamp}.json", args.out / f"{name}-latest.json"):
                target.write_text(data + "\n", encoding="utf-8")
            print(f"   -> {args.out / f'{name}-{stamp}.json'}  ({result.seconds:.0f} s)", flush=True)
            failed |= not result.figures
        _close_logging(log_path)
    return 1 if failed else 0


def _patch_http_nodelay() -> None:
    """What the gateway would measure with TCP_NODELAY on its HTTP socket (accepted sockets
    inherit it on Linux). asyncio sets it itself only on sockets made with proto IPPROTO_TCP;
    ``gateway.bootstrap.bind_socket`` makes its socket with proto 0."""
    import socket

    from gateway import bootstrap

    original = bootstrap.bind_socket

    def bind_socket(host: str, port: int) -> socket.socket:
        sock = original(host, port)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    bootstrap.bind_socket = bind_socket


def _configure_logging(workdir: Path, level: str) -> Path:
    """The gateway logs as in production (JSON, masked) but into a file, not the terminal."""
    from gateway import logging as gw_logging

    path = workdir / "gateway.log"
    stream = path.open("a", encoding="utf-8", buffering=1)
    _open_files.append(stream)
    with contextlib.redirect_stderr(stream):
        gw_logging.configure("json", level)
    return path


_open_files: list[object] = []


def _close_logging(_path: Path) -> None:
    import logging

    import structlog

    structlog.reset_defaults()
    logging.getLogger().handlers[:] = []
    for f in _open_files:
        with contextlib.suppress(Exception):
            f.close()  # type: ignore[attr-defined]
    _open_files.clear()


def _fmt(value: float, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if unit == "ratio":
        return f"{value:.2f}x"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def render(result: Result) -> str:
    lines = [result.title]
    rows: list[tuple[str, ...]] = [("backend", "figure", "value", "baseline", "ratio", "goal", "met")]
    for f in result.figures:
        rows.append(
            (
                f.backend,
                f.name,
                f"{_fmt(f.value)} {f.unit}",
                f"{_fmt(f.baseline)} {f.unit} ({f.baseline_name})",
                _fmt(f.ratio, "ratio"),
                f.goal,
                "" if f.met is None else ("yes" if f.met else "NO"),
            )
        )
    lines += _table(rows)
    if result.series:
        lines.append("")
        srows: list[tuple[str, ...]] = [
            ("backend", "subject", "series", "n", "p50 ms", "p90 ms", "p99 ms", "max ms")
        ]
        for s in result.series:
            srows.append(
                (
                    s.backend,
                    s.subject,
                    s.name,
                    str(s.count),
                    _fmt(s.p50),
                    _fmt(s.p90),
                    _fmt(s.p99),
                    _fmt(s.max),
                )
            )
        lines += _table(srows)
    for backend, why in result.skipped.items():
        lines.append(f"skipped {backend}: {why}")
    lines += [f"note: {n}" for n in result.notes]
    return "\n".join(lines)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    out.insert(1, "  ".join("-" * w for w in widths))
    return out


if __name__ == "__main__":
    sys.exit(main())
