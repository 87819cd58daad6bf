"""What every benchmark shares: results, percentiles, a PostgreSQL scratch database, the register.

A benchmark module exposes ``NAME``, ``TITLE`` and ``run(ctx: Context) -> Result``. A result is
a list of :class:`Figure` (one number, its baseline from the same run, the ratio and the goal)
plus :class:`Series` (latency distributions) and free-form details, written as JSON.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from gateway.api import auth
from gateway.domain.identity import PersonId
from gateway.domain.register import Protection, RegisterRecord
from gateway.settings import Settings

DEFAULT_PG_ADMIN_URL = os.environ.get(
    "GATEWAY_BENCH_PG_URL",
    os.environ.get("GATEWAY_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
)
SQLITE = "sqlite"
#: ``--worker-inline``: the processing worker in the serving process, as before it had its own.
INLINE_WORKER = "processing worker inline in the serving process (gateway serve --worker inline)"
POSTGRESQL = "postgresql"


@dataclass
class Context:
    """What ``bench.run`` hands each benchmark."""

    quick: bool
    backends: tuple[str, ...]
    pg_admin_url: str
    workdir: Path  # a temporary directory of this run; never the repository's var/
    log_level: str = "INFO"
    what_if: tuple[str, ...] = ()  # bench-only patches to the gateway, named in every result

    def has(self, backend: str) -> bool:
        return backend in self.backends


@dataclass
class Series:
    """A latency distribution in milliseconds."""

    backend: str
    subject: str
    name: str
    count: int
    p50: float
    p90: float
    p99: float
    max: float
    mean: float

    @classmethod
    def of(cls, backend: str, subject: str, name: str, samples_ms: Sequence[float]) -> Series:
        s = sorted(samples_ms)
        if not s:
            return cls(backend, subject, name, 0, math.nan, math.nan, math.nan, math.nan, math.nan)
        return cls(
            backend,
            subject,
            name,
            len(s),
            percentile(s, 50),
            percentile(s, 90),
            percentile(s, 99),
            s[-1],
            sum(s) / len(s),
        )


@dataclass
class Figure:
    """One reported number beside its same-run baseline. ``ratio = value / baseline``."""

    backend: str
    name: str
    unit: str
    value: float
    baseline: float
    baseline_name: str
    goal: str = ""
    met: bool | None = None
    ratio: float = field(init=False)

    def __post_init__(self) -> None:
        self.ratio = self.value / self.baseline if self.baseline else math.nan


@dataclass
class Result:
    benchmark: str
    title: str
    quick: bool
    figures: list[Figure] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # backend -> why
    notes: list[str] = field(default_factory=list)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["machine"] = machine()
        finite: dict[str, Any] = _finite(out)
        return finite


def _finite(value: Any) -> Any:
    """JSON has no NaN: write null instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default) over sorted values."""
    if not sorted_values:
        return math.nan
    k = (len(sorted_values) - 1) * q / 100
    lo = math.floor(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _bench_key(ctx: Context) -> Any:
    """The run's token signing key; every gateway of the run trusts its public half."""
    return auth.load_or_create_dev_key(ctx.workdir / "bench-jwt-key.pem")


def bench_headers(ctx: Context) -> dict[str, str]:
    """A bearer token with every scope: the benchmarks call the API as production callers do."""
    token = auth.mint(_bench_key(ctx), subject="bench", scopes=auth.SCOPES, audience="gateway", minutes=600)
    return {"Authorization": f"Bearer {token}"}


def gateway_settings(ctx: Context, db_url: str) -> Settings:
    """A gateway on ephemeral ports, with its files in the run's temporary directory, and
    authentication on as in production (tokens from :func:`bench_headers`)."""
    public = ctx.workdir / "bench-jwt-public.pem"
    if not public.exists():
        public.write_bytes(
            _bench_key(ctx)
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    extra: dict[str, Any] = {"auth": "required", "auth_public_key": public, "auth_issuer": auth.DEV_ISSUER}
    if "mocks_port" in Settings.model_fields:  # built-in mocks for ports not passed in
        extra["mocks_port"] = 0
    return Settings(
        data_dir=ctx.workdir,
        db_url=db_url,
        http_host="127.0.0.1",
        http_port=0,
        mllp_host="127.0.0.1",
        mllp_port=0,
        log_level=ctx.log_level,
        **extra,
    )


class BenchRegister:
    """The population register port for benchmarks: everyone exists, nobody is protected.

    Not part of any figure: the ingest ACK comes after the durable store and processing (where
    the register is asked) runs asynchronously; the search benchmark loads the store directly.
    """

    async def lookup(self, person: PersonId) -> RegisterRecord | None:
        return RegisterRecord(person=person, protection=Protection.NONE)


class PostgresUnavailable(Exception):
    pass


@contextlib.contextmanager
def pg_database(admin_url: str, prefix: str = "gw_bench") -> Iterator[str]:
    """A uniquely named, empty PostgreSQL database for one benchmark, dropped afterwards."""
    from sqlalchemy import create_engine, text

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        raise PostgresUnavailable(
            f"PostgreSQL at {admin_url} is not reachable ({type(exc).__name__})"
        ) from exc
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start
