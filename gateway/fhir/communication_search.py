"""FHIR search parameters for Communication, parsed strictly: anything unknown or bad is a 400."""

from __future__ import annotations

from gateway.domain.query import MAX_COUNT, CommunicationQuery, Token
from gateway.errors import InvalidRequest
from gateway.fhir.communication import CATEGORY_SYSTEM, KIND_BY_CODE
from gateway.fhir.search import _int, _token, parse_date

COMMUNICATION_STATUSES = frozenset(
    {
        "preparation",
        "in-progress",
        "not-done",
        "on-hold",
        "stopped",
        "completed",
        "entered-in-error",
        "unknown",
    }
)
SEARCH_PARAMS = ("subject:identifier", "recipient:identifier", "category", "status", "_lastUpdated")
CONTROL_PARAMS = ("_count", "_offset", "_sort", "_total")
_IGNORED = frozenset({"_format", "_pretty"})


def _kinds(any_of: list[Token]) -> list[str]:
    """The document kinds a ``category`` parameter's codes name (an unknown code names none)."""
    kinds = []
    for system, code in any_of:
        kind = KIND_BY_CODE.get(code)
        if kind is not None and system in (None, CATEGORY_SYSTEM):
            kinds.append(kind.value)
    return kinds


def parse_communication_query(items: list[tuple[str, str]]) -> CommunicationQuery:
    q = CommunicationQuery()
    for name, raw in items:
        if name in _IGNORED:
            continue
        if name in ("subject:identifier", "subject.identifier", "patient:identifier"):
            system, value = _token(name, raw)
            q.subjects.append((system, value.replace("-", "")))
        elif name in ("recipient:identifier", "recipient.identifier"):
            system, value = _token(name, raw)
            q.recipients.append((system, value.replace("-", "")))
        elif name == "category":
            q.kinds.append(_kinds([_token(name, part) for part in raw.split(",")]))
        elif name == "status":
            statuses = raw.split(",")
            for status in statuses:
                if status not in COMMUNICATION_STATUSES:
                    raise InvalidRequest(f"status: {status!r} is not a Communication status")
            q.statuses.append(statuses)
        elif name == "_lastUpdated":
            q.last_updated.append(parse_date(name, raw))
        elif name == "_count":
            q.count = _int(name, raw, 0, MAX_COUNT)
        elif name == "_offset":
            q.offset = _int(name, raw, 0, 10_000_000)
        elif name == "_total":
            if raw not in ("none", "estimate", "accurate"):
                raise InvalidRequest("_total: use none, estimate or accurate")
            q.total = raw != "none"
        elif name == "_sort":
            if raw not in ("_lastUpdated", "-_lastUpdated"):
                raise InvalidRequest(f"_sort: {raw!r} is not supported (_lastUpdated, -_lastUpdated)")
            q.sort_desc = raw.startswith("-")
        else:
            raise InvalidRequest(
                f"unknown search parameter {name!r}; supported: " + ", ".join(SEARCH_PARAMS + CONTROL_PARAMS)
            )
    return q
