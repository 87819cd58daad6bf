"""httpx transports for record and replay; zeep's async transport sends through the same client.

* :class:`RecordingTransport` delegates to the real transport and hands each exchange (request,
  answer or transport error, timing, the message ids of :mod:`gateway.recording.context`) to a
  sink: the :class:`~gateway.store.recordings.Recorder`.
* :class:`OfflineTransport` never touches the network: it answers from a recording's outbound
  lines, found by :func:`~gateway.recording.matching.request_key` (see there why not by order).
* :func:`wrap_client` puts either under an adapter's ``httpx.AsyncClient`` (the adapters take
  their client as a parameter; the client keeps its timeouts and TLS settings).
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog
from lxml import etree

from gateway.recording import context
from gateway.recording.fileformat import get_bytes, put_bytes
from gateway.recording.matching import (
    BATCH_RULES,
    VOLATILE_XML,
    BatchRule,
    answer_items,
    canonical_request,
    find_local,
    parse_xml,
    request_key,
    split_batch,
)

log = structlog.get_logger(__name__)

#: Headers never written to a recording: credentials, and those that describe the bytes on the
#: wire rather than the content (the recording holds the decoded body).
DROPPED_HEADERS = frozenset(
    {
        "authorization",
        "cookie",
        "set-cookie",
        "proxy-authorization",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "connection",
        "keep-alive",
    }
)

#: XML elements (any namespace) whose text is a credential: never written to a recording
#: (TakeCare XChange carries ``tcpassword`` in the SOAP body).
SECRET_ELEMENTS = frozenset({"tcpassword", "password", "Password"})

Sink = Callable[[dict[str, Any]], None]


def _without_secrets(body: bytes) -> bytes:
    """The body as recorded: credentials carried in the XML body replaced by ``***``."""
    if not any(name.encode() in body for name in SECRET_ELEMENTS):
        return body
    root = parse_xml(body)
    if root is None:
        return body
    found = False
    for element in root.iter():
        if isinstance(element.tag, str) and etree.QName(element).localname in SECRET_ELEMENTS:
            element.text = "***"
            found = True
    return etree.tostring(root) if found else body


def _headers(headers: httpx.Headers) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if k.lower() not in DROPPED_HEADERS}


class RecordingTransport(httpx.AsyncBaseTransport):
    """Sends through ``inner`` and writes each exchange to ``sink`` (which must not block)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, service: str, sink: Sink) -> None:
        self.inner = inner
        self.service = service
        self._sink = sink

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        message_ids = context.current_messages.get()
        line: dict[str, Any] = {
            "type": "outbound",
            "at": started.isoformat(),
            "service": self.service,
            "method": request.method,
            "url": str(request.url),
            "message_ids": list(message_ids),
            "key": request_key(
                self.service, request.method, str(request.url), body, request.headers.get("content-type", "")
            ),
        }
        req: dict[str, Any] = {"headers": _headers(request.headers)}
        put_bytes(req, "body", _without_secrets(body))
        line["request"] = req
        try:
            response = await self.inner.handle_async_request(request)
            content = await response.aread()
        except httpx.TransportError as exc:
            line["error"] = {"type": type(exc).__name__, "text": str(exc)}
            line["duration_ms"] = round((time.perf_counter() - t0) * 1000, 2)
            self._sink(line)
            raise
        answer: dict[str, Any] = {"status": response.status_code, "headers": _headers(response.headers)}
        put_bytes(answer, "body", content)
        line["response"] = answer
        line["duration_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        self._sink(line)
        return httpx.Response(
            response.status_code,
            headers=[(k, v) for k, v in response.headers.multi_items() if k.lower() not in DROPPED_HEADERS],
            content=content,
            extensions=response.extensions,
            request=request,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


class NoRecordedAnswer(httpx.ConnectError):
    """Offline replay met a request the recording has no answer for (an outage to the adapter)."""


class RecordedAnswers:
    """The outbound lines of a recording, by service and match key.

    Several recorded answers to the same request are given in their recorded order, the last
    one again when they run out (a replay whose caches expire sooner asks more often). A batch
    call (:data:`~gateway.recording.matching.BATCH_RULES`) not recorded as such is answered item
    by item from every recorded batch.
    """

    def __init__(
        self,
        lines: Iterable[dict[str, Any]],
        volatile: Sequence[str] = VOLATILE_XML,
        batch_rules: Sequence[BatchRule] = BATCH_RULES,
    ) -> None:
        self.volatile = tuple(volatile)
        self.batch_rules = tuple(batch_rules)
        self._answers: dict[str, list[dict[str, Any]]] = {}
        self._next: dict[str, int] = {}
        # (rule, the rest of the request) -> a recorded response (the envelope) and each item's answer
        self._templates: dict[tuple[int, bytes], etree._Element] = {}
        self._items: dict[tuple[int, bytes, str], etree._Element | None] = {}
        self.misses: list[str] = []
        self.used = 0
        for line in lines:
            key = self.key_of(line)
            self._answers.setdefault(key, []).append(line)
            self._learn_batch(line)

    def _learn_batch(self, line: dict[str, Any]) -> None:
        response = line.get("response")
        if not response or response.get("status") != 200:
            return
        for index, rule in enumerate(self.batch_rules):
            if line.get("service") != rule.service:
                continue
            request = parse_xml(get_bytes(line.get("request", {}), "body"))
            answer = parse_xml(get_bytes(response, "body"))
            split = split_batch(rule, request) if request is not None else None
            if split is None or answer is None:
                continue
            items, rest = split
            found = answer_items(rule, answer)
            self._templates.setdefault((index, rest), answer)
            for item in items:
                self._items[(index, rest, item)] = found.get(item)

    def _compose(self, service: str, body: bytes) -> dict[str, Any] | None:
        """A batch request's answer put together from the items' recorded answers."""
        for index, rule in enumerate(self.batch_rules):
            if rule.service != service:
                continue
            request = parse_xml(body)
            split = split_batch(rule, request) if request is not None else None
            if split is None:
                continue
            items, rest = split
            template = self._templates.get((index, rest))
            if template is None or any((index, rest, item) not in self._items for item in items):
                return None
            root = copy.deepcopy(template)
            old = find_local(root, rule.answer)
            parent = old[0].getparent() if old else None
            if parent is None:
                return None
            position = parent.index(old[0])
            for element in old:
                parent.remove(element)
            for offset, element in enumerate(
                e for item in items if (e := self._items[(index, rest, item)]) is not None
            ):
                parent.insert(position + offset, copy.deepcopy(element))
            content = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
            return {
                "response": {
                    "status": 200,
                    "headers": {"content-type": "text/xml; charset=utf-8"},
                    "body": content.decode("utf-8"),
                },
                "composed": hashlib.sha256(content).hexdigest(),
            }
        return None

    def __len__(self) -> int:
        return sum(len(v) for v in self._answers.values())

    def key_of(self, line: dict[str, Any]) -> str:
        request = line.get("request", {})
        return request_key(
            line.get("service", ""),
            line.get("method", "GET"),
            line.get("url", ""),
            get_bytes(request, "body"),
            request.get("headers", {}).get("content-type", ""),
            self.volatile,
        )

    def answer(self, service: str, request: httpx.Request, body: bytes) -> dict[str, Any] | None:
        ctype = request.headers.get("content-type", "")
        key = request_key(service, request.method, str(request.url), body, ctype, self.volatile)
        found = self._answers.get(key)
        if not found:
            composed = self._compose(service, body)
            if composed is not None:
                self.used += 1
                return composed
            what = canonical_request(service, request.method, str(request.url), body, ctype, self.volatile)
            self.misses.append(what[:300].decode("utf-8", "replace"))
            return None
        index = self._next.get(key, 0)
        self._next[key] = index + 1
        self.used += 1
        return found[min(index, len(found) - 1)]


class OfflineTransport(httpx.AsyncBaseTransport):
    """Answers every request of one service from the recording; never opens a connection."""

    def __init__(self, answers: RecordedAnswers, service: str) -> None:
        self.answers = answers
        self.service = service

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        line = self.answers.answer(self.service, request, body)
        if line is None:
            log.warning("replay.no_recorded_answer", service=self.service, method=request.method)
            raise NoRecordedAnswer(f"no recorded answer for this {self.service} request", request=request)
        error = line.get("error")
        if error is not None:
            cls = getattr(httpx, str(error.get("type", "")), None)
            if not (isinstance(cls, type) and issubclass(cls, httpx.TransportError)):
                cls = httpx.ConnectError
            raise cls(str(error.get("text", "recorded transport error")), request=request)
        response = line.get("response", {})
        return httpx.Response(
            int(response.get("status", 200)),
            headers=response.get("headers", {}),
            content=get_bytes(response, "body"),
            request=request,
        )


def wrap_client(
    client: httpx.AsyncClient, wrap: Callable[[httpx.AsyncBaseTransport], httpx.AsyncBaseTransport]
) -> None:
    """Put ``wrap(transport)`` under every transport of ``client`` (its default and its mounts).

    httpx has no public setter; the client's own transport carries its TLS settings (SPAR's
    mutual TLS), so wrapping it keeps them.
    """
    client._transport = wrap(client._transport)
    client._mounts = {
        pattern: (wrap(transport) if transport is not None else None)
        for pattern, transport in client._mounts.items()
    }
