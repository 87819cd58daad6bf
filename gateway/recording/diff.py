"""Compare what a replay got with what was recorded: ACKs field by field, FHIR resources by path.

Paths read as they would be written by hand: ``MSA-1``, ``ERR-3``, ``ERR(2)-8`` (the second ERR)
for an ACK; ``status``, ``participant[2].actor.display``, ``meta.versionId`` for a resource. A
list whose items each carry a ``url`` (FHIR extensions) is compared by that url, so
``extension[url=https://…/mailbox-delivery].extension[url=receipt].valueString``; an item added
or removed elsewhere in the list does not shift the others.

The ignore list (:data:`DEFAULT_IGNORE`, docs/recording.md) holds patterns over
``<what>.<path>``, where ``<what>`` is ``ACK`` or the resource type: ``*`` is any run of
characters within one step (not ``.`` or ``[``), inside brackets any index or ``url=`` selector,
and ``**`` anything at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

#: What legitimately differs between a recording and its replay, and why:
DEFAULT_IGNORE: tuple[str, ...] = (
    # the ACK's own time and control id are new for every ACK
    "ACK.MSH-7",
    "ACK.MSH-10",
    # when the gateway stored the resource, and how many versions a partial replay makes
    "*.meta.lastUpdated",
    "*.meta.versionId",
    # when the document was routed (the time the worker ran)
    "Communication.sent",
    # the mailbox operator's receipt (its time, its transaction id), written by the outbox after
    # processing: whether it is there yet depends on when the recording was exported
    "Communication.extension[url=*mailbox-delivery]",
)

_MISSING = object()


@dataclass(frozen=True, slots=True)
class Difference:
    path: str
    recorded: Any
    replayed: Any

    def __str__(self) -> str:
        return f"{self.path}: recorded {_show(self.recorded)}, replayed {_show(self.replayed)}"


def _show(value: Any) -> str:
    if value is _MISSING:
        return "(absent)"
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 120 else text[:117] + "..."


@lru_cache(maxsize=256)
def _pattern(glob: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    in_brackets = False
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append(r"[^\]]*" if in_brackets else r"[^.\[]*")
        elif c == "[":
            in_brackets = True
            out.append(r"\[")
        elif c == "]":
            in_brackets = False
            out.append(r"\]")
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


class Ignore:
    """The patterns of paths not compared."""

    def __init__(self, patterns: Iterable[str] = DEFAULT_IGNORE) -> None:
        self.patterns = tuple(patterns)
        self._compiled = [_pattern(p) for p in self.patterns]

    def __call__(self, path: str) -> bool:
        return any(p.match(path) for p in self._compiled)


def diff_json(recorded: Any, replayed: Any, prefix: str, ignore: Ignore) -> list[Difference]:
    """The differences between two JSON values, under ``prefix`` (e.g. ``Appointment``)."""
    out: list[Difference] = []
    _walk(recorded, replayed, prefix, ignore, out)
    return out


def _by_url(items: Sequence[Any]) -> dict[str, Any] | None:
    if not items or not all(isinstance(i, dict) and isinstance(i.get("url"), str) for i in items):
        return None
    keyed = {i["url"]: i for i in items}
    return keyed if len(keyed) == len(items) else None


def _walk(a: Any, b: Any, path: str, ignore: Ignore, out: list[Difference]) -> None:
    if ignore(path):
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            _walk(a.get(key, _MISSING), b.get(key, _MISSING), f"{path}.{key}", ignore, out)
        return
    if isinstance(a, list) and isinstance(b, list):
        ka, kb = _by_url(a), _by_url(b)
        if ka is not None and kb is not None:
            for url in list(ka) + [u for u in kb if u not in ka]:
                _walk(ka.get(url, _MISSING), kb.get(url, _MISSING), f"{path}[url={url}]", ignore, out)
            return
        for index in range(max(len(a), len(b))):
            _walk(
                a[index] if index < len(a) else _MISSING,
                b[index] if index < len(b) else _MISSING,
                f"{path}[{index}]",
                ignore,
                out,
            )
        return
    if a != b or type(a) is not type(b):
        out.append(Difference(path, a, b))


def hl7_fields(message: str) -> dict[str, str]:
    """An ER7 message as ``{"MSH-9": "ACK^S12^ACK", "MSA-1": "AA", "ERR(2)-3": ...}``.

    Fields are compared whole (components and all); MSH-1 is the field separator, so the
    segment's first item after the name is MSH-2.
    """
    text = message.replace("\n", "\r").strip("\r\x0b\x1c")
    fields: dict[str, str] = {}
    seen: dict[str, int] = {}
    separator = text[3] if text.startswith("MSH") and len(text) > 3 else "|"
    for segment in filter(None, text.split("\r")):
        parts = segment.split(separator)
        name = parts[0]
        seen[name] = seen.get(name, 0) + 1
        label = name if seen[name] == 1 else f"{name}({seen[name]})"
        first = 2 if name == "MSH" else 1
        if name == "MSH":
            fields[f"{label}-1"] = separator
        for number, value in enumerate(parts[1:], start=first):
            if value:
                fields[f"{label}-{number}"] = value
    return fields


def diff_ack(recorded: str, replayed: str, ignore: Ignore) -> list[Difference]:
    a, b = hl7_fields(recorded), hl7_fields(replayed)
    out: list[Difference] = []
    for key in list(a) + [k for k in b if k not in a]:
        path = f"ACK.{key}"
        if ignore(path):
            continue
        va, vb = a.get(key, _MISSING), b.get(key, _MISSING)
        if va != vb:
            out.append(Difference(path, va, vb))
    return out
