"""Replay a recording against a gateway and compare what it answers and produces.

1. **Send** the inbound messages in their recorded order (the order the recording gateway
   stored them) on one MLLP connection or by HTTP POST, each after the previous one's ACK; as
   fast as possible, or at the recorded pace divided by ``speed``.
2. **Settle**: wait until the target has processed everything (no message ``received``, no
   letter waiting in the mailbox outbox).
3. **Compare** every ACK field by field, every message's final state, and every recorded FHIR
   output with what the target serves for the same id now (``GET /fhir/<type>/<id>``: the ids
   are stable, uuid5 of the journal's keys), ignoring :data:`~gateway.recording.diff.DEFAULT_IGNORE`.

The result is one :class:`Case` per inbound message (its ACK, its state and the outputs it was
the last to change), rendered as text and as JUnit XML.
"""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from gateway.journal_adapter import er7
from gateway.journal_adapter.mllp import MllpClient
from gateway.recording.diff import Difference, Ignore, diff_ack, diff_json
from gateway.recording.fileformat import Recording, get_bytes


class ReplayError(Exception):
    """The replay itself could not run (a target that does not answer, a bad target URL)."""


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str  # mllp or http
    host: str
    port: int
    http_base: str  # where the target's HTTP API is (FHIR, /messages)
    #: A bearer token with the journal, platform, staff and admin scopes (None: auth off).
    token: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    @property
    def label(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


def parse_target(text: str, http_base: str | None = None, token: str | None = None) -> Target:
    """``mllp://HOST:PORT`` or ``http://HOST:PORT``; the HTTP API defaults to the same host, 8000."""
    parts = urlsplit(text)
    if parts.scheme not in ("mllp", "http", "https") or not parts.hostname or parts.port is None:
        raise ReplayError(f"target {text!r}: use mllp://HOST:PORT or http://HOST:PORT")
    if parts.scheme == "mllp":
        base = http_base or f"http://{parts.hostname}:8000"
    else:
        base = http_base or f"{parts.scheme}://{parts.hostname}:{parts.port}"
    return Target(parts.scheme, parts.hostname, parts.port, base.rstrip("/"), token)


@dataclass(slots=True)
class OutputCheck:
    resource_type: str
    id: str
    differences: list[Difference]


@dataclass(slots=True)
class Case:
    """One inbound message: what it got and produced, against the recording."""

    line: dict[str, Any]
    ack: str | None = None
    seconds: float = 0.0
    error: str | None = None
    differences: list[Difference] = field(default_factory=list)
    outputs: list[OutputCheck] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.line.get('message_id')} {self.line.get('control_id') or '(no MSH-10)'}"

    @property
    def kind(self) -> str:
        return f"{self.line.get('message_type') or '?'}^{self.line.get('trigger') or '?'}"

    def all_differences(self) -> list[Difference]:
        out = list(self.differences)
        for output in self.outputs:
            out += output.differences
        return out

    @property
    def failed(self) -> bool:
        return self.error is not None or bool(self.all_differences())


@dataclass(slots=True)
class Report:
    target: str
    cases: list[Case]
    send_seconds: float = 0.0
    settle_seconds: float = 0.0
    compare_seconds: float = 0.0
    outputs_compared: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[Case]:
        return [c for c in self.cases if c.failed]

    @property
    def rate(self) -> float:
        """Messages sent and acknowledged per second."""
        return len(self.cases) / self.send_seconds if self.send_seconds > 0 else 0.0

    @property
    def differences(self) -> int:
        return sum(len(c.all_differences()) + (c.error is not None) for c in self.cases)


Progress = Callable[[int], None]


def _codec(line: dict[str, Any]) -> str:
    return er7.CHARSETS.get(str(line.get("charset") or "").upper(), "utf-8")


async def send(
    recording: Recording,
    target: Target,
    *,
    speed: float | None = None,
    progress: Progress = lambda _n: None,
    timeout: float = 30.0,
) -> tuple[list[Case], float]:
    """Send every inbound message in recorded order; return the cases (with ACKs) and seconds."""
    lines = sorted(recording.inbound, key=lambda line: int(line.get("message_id") or 0))
    cases = [Case(line) for line in lines]
    times = [datetime.fromisoformat(line["received_at"]) for line in lines]
    started = time.perf_counter()
    mllp: MllpClient | None = None
    http: httpx.AsyncClient | None = None
    try:
        if target.scheme == "mllp":
            mllp = MllpClient(target.host, target.port, timeout=timeout)
            try:
                await mllp.connect()
            except OSError as exc:
                raise ReplayError(f"cannot connect to {target.label}: {exc}") from exc
        else:
            http = httpx.AsyncClient(
                base_url=f"{target.scheme}://{target.host}:{target.port}",
                timeout=timeout,
                headers=target.headers,
            )
        for index, case in enumerate(cases):
            if speed and index:
                due = (times[index] - times[0]).total_seconds() / speed
                wait = due - (time.perf_counter() - started)
                if wait > 0:
                    await asyncio.sleep(wait)
            raw = get_bytes(case.line, "raw")
            t0 = time.perf_counter()
            try:
                if mllp is not None:
                    answer = await mllp.send(raw)
                else:
                    assert http is not None
                    response = await http.post(
                        "/journal/hl7", content=raw, headers={"Content-Type": "application/hl7-v2"}
                    )
                    answer = response.content
                case.ack = answer.decode(_codec(case.line), errors="replace")
            except (OSError, httpx.HTTPError, asyncio.IncompleteReadError, TimeoutError) as exc:
                case.error = f"no ACK: {type(exc).__name__}: {exc}"
                if mllp is not None:  # a new connection for the next message
                    await mllp.close()
                    mllp = MllpClient(target.host, target.port, timeout=timeout)
                    try:
                        await mllp.connect()
                    except OSError as again:
                        raise ReplayError(f"lost {target.label}: {again}") from again
            case.seconds = time.perf_counter() - t0
            progress(1)
    finally:
        if mllp is not None:
            await mllp.close()
        if http is not None:
            await http.aclose()
    return cases, time.perf_counter() - started


async def settle(
    client: httpx.AsyncClient, *, timeout: float = 120.0, outbox_wait: float = 10.0
) -> list[str]:
    """Wait until the target has no message ``received``, then up to ``outbox_wait`` seconds
    for its mailbox outbox to empty (a letter the recording has no delivery for stays pending
    offline). Returns notes on what did not settle."""
    deadline = time.monotonic() + timeout
    while True:
        pending = (await client.get("/messages", params={"state": "received", "limit": 1})).json()["total"]
        if pending == 0:
            break
        if time.monotonic() > deadline:
            return [f"{pending} message(s) still unprocessed after {timeout:.0f} s"]
        await asyncio.sleep(0.1)
    deadline = time.monotonic() + outbox_wait
    while True:
        outbox = await client.get("/outbox", params={"state": "pending", "limit": 1})
        letters = 0 if outbox.status_code == 404 else int(outbox.json().get("total", 0))
        if letters == 0:
            return []
        if time.monotonic() > deadline:
            return [f"{letters} letter(s) still pending in the target's mailbox outbox"]
        await asyncio.sleep(0.1)


async def _target_states(client: httpx.AsyncClient) -> dict[str, list[dict[str, Any]]]:
    """The target's messages by MSH-10, oldest first (several: a repeat stored as duplicate)."""
    by_control: dict[str, list[dict[str, Any]]] = {}
    offset = 0
    while True:
        page = (await client.get("/messages", params={"limit": 1000, "offset": offset})).json()
        for item in page["items"]:
            by_control.setdefault(item["control_id"], []).append(item)
        offset += len(page["items"])
        if not page["items"] or offset >= page["total"]:
            break
    for items in by_control.values():
        items.sort(key=lambda i: i["id"])
    return by_control


async def compare(
    recording: Recording,
    cases: list[Case],
    client: httpx.AsyncClient,
    ignore: Ignore,
    *,
    progress: Progress = lambda _n: None,
    concurrency: int = 8,
) -> int:
    """Fill each case's differences; returns how many outputs were compared."""
    states = await _target_states(client)
    taken: dict[str, int] = {}
    by_id: dict[Any, Case] = {}
    for case in cases:
        line = case.line
        by_id[line.get("message_id")] = case
        if case.ack is not None:
            case.differences += diff_ack(str(line.get("ack") or ""), case.ack, ignore)
        control = str(line.get("control_id") or "")
        index = taken.get(control, 0)
        taken[control] = index + 1
        found = states.get(control, [])
        replayed = found[index] if index < len(found) else {}
        for name in ("state", "error"):
            path = f"message.{name}"
            if not ignore(path) and line.get(name) != replayed.get(name):
                case.differences.append(Difference(path, line.get(name), replayed.get(name)))

    semaphore = asyncio.Semaphore(concurrency)

    async def check(output: dict[str, Any]) -> None:
        kind, rid = output["resource_type"], output["id"]
        async with semaphore:
            response = await client.get(f"/fhir/{kind}/{rid}", headers={"Accept": "application/fhir+json"})
        served = response.status_code == 200
        result = OutputCheck(kind, rid, [])
        if served != bool(output.get("served")):
            result.differences.append(Difference(f"{kind}/{rid} served", bool(output.get("served")), served))
        elif served:
            result.differences += diff_json(output["resource"], response.json(), kind, ignore)
        case = by_id.get(output.get("message_id"))
        if case is not None:
            case.outputs.append(result)
        progress(1)

    await asyncio.gather(*(check(o) for o in recording.outputs))
    return len(recording.outputs)


def render(report: Report, *, limit: int = 50) -> str:
    """The readable result: one block per message that differs, then the totals."""
    lines: list[str] = []
    for shown, case in enumerate(report.failures):
        if shown >= limit:
            lines.append(f"... and {len(report.failures) - shown} more message(s) with differences")
            break
        lines.append(f"✗ message {case.name} ({case.kind})")
        if case.error:
            lines.append(f"    {case.error}")
        for d in case.differences:
            lines.append(f"    {d}")
        for output in case.outputs:
            if output.differences:
                lines.append(f"    {output.resource_type}/{output.id}:")
                lines += [f"      {d}" for d in output.differences]
    failed = len(report.failures)
    lines.append(
        f"{len(report.cases)} message(s) replayed to {report.target} in {report.send_seconds:.2f} s "
        f"({report.rate:,.0f} messages/s), {report.outputs_compared} FHIR resource(s) compared: "
        + (
            "no differences"
            if failed == 0
            else f"{failed} message(s) with {report.differences} difference(s)"
        )
    )
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)


def junit(report: Report, path: Path) -> None:
    """JUnit XML for CI: one testcase per message, a failure listing its differences."""
    suite = ET.Element(
        "testsuite",
        name="gateway replay",
        tests=str(len(report.cases)),
        failures=str(sum(1 for c in report.cases if c.failed and c.error is None)),
        errors=str(sum(1 for c in report.cases if c.error is not None)),
        time=f"{report.send_seconds + report.settle_seconds + report.compare_seconds:.3f}",
    )
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="target", value=report.target)
    ET.SubElement(props, "property", name="messages_per_second", value=f"{report.rate:.1f}")
    for case in report.cases:
        element = ET.SubElement(
            suite, "testcase", classname=f"replay.{case.kind}", name=case.name, time=f"{case.seconds:.4f}"
        )
        if case.error is not None:
            ET.SubElement(element, "error", message=case.error).text = case.error
        differences = case.all_differences()
        if differences:
            failure = ET.SubElement(element, "failure", message=f"{len(differences)} difference(s)")
            failure.text = "\n".join(str(d) for d in differences)
    ET.indent(suite)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


async def replay(
    recording: Recording,
    target: Target,
    *,
    ignore: Ignore,
    speed: float | None = None,
    settle_timeout: float = 120.0,
    outbox_wait: float = 10.0,
    progress: Callable[[str, int], Progress] | None = None,
) -> Report:
    """Send, settle and compare; ``progress(label, total)`` gives a per-step callback."""

    def step(label: str, total: int) -> Progress:
        return progress(label, total) if progress is not None else (lambda _n: None)

    report = Report(target.label, [])
    report.cases, report.send_seconds = await send(
        recording, target, speed=speed, progress=step("sending", len(recording.inbound))
    )
    async with httpx.AsyncClient(base_url=target.http_base, timeout=30, headers=target.headers) as client:
        t0 = time.perf_counter()
        try:
            report.notes += await settle(client, timeout=settle_timeout, outbox_wait=outbox_wait)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise ReplayError(f"the target's HTTP API at {target.http_base} does not answer: {exc}") from exc
        report.settle_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        report.outputs_compared = await compare(
            recording, report.cases, client, ignore, progress=step("comparing", len(recording.outputs))
        )
        report.compare_seconds = time.perf_counter() - t0
    return report
