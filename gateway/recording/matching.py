"""How an outbound request is told apart from another: the key offline replay answers by.

The adapters cache answers (SPAR, the accounts service, the mailbox directory), so a replay may
make fewer, more or differently ordered calls than the recording: answers are found by what
was asked, never by position. The key is the service, the method and

* a SOAP/XML body: the body without its volatile parts (:data:`VOLATILE_XML`), canonicalized;
* a JSON body: the JSON with sorted keys;
* no body (a GET): the path and the sorted query.

Host and port are not part of the key: the recording's mocks ran on any free port.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

import orjson
from lxml import etree

#: Parts of an XML request that change on every call: the XML-DSig signature of a mailbox
#: delivery and what it signs with (``Id`` attributes), the delivery's fresh correlation id and
#: seal time, the references that carry our own message ids (``<document>.m<message id>``,
#: which differ when a recording is replayed into a database that numbers messages from 1),
#: and the WS-Security/WS-Addressing headers a real service may ask for. Each is a path of
#: local names, matched at the end of an element's path; ``@Id`` removes the attribute.
VOLATILE_XML: tuple[str, ...] = (
    "Signature",
    "Delivery/Header/CorrelationId",
    "Delivery/Header/Reference",
    "Message/Header/Id",
    "Seal/ReceivedTime",
    "Header/Security",
    "Header/MessageID",
    "Header/Timestamp",
    "@Id",
    # Credentials in the body (TakeCare's tcpassword): recorded as *** and never part of a key.
    "tcpassword",
)

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True, huge_tree=True)


def request_key(
    service: str,
    method: str,
    url: str,
    body: bytes,
    content_type: str = "",
    volatile: Sequence[str] = VOLATILE_XML,
) -> str:
    """The match key of one request (a hex digest; the same request always gives the same)."""
    return hashlib.sha256(canonical_request(service, method, url, body, content_type, volatile)).hexdigest()


def canonical_request(
    service: str,
    method: str,
    url: str,
    body: bytes,
    content_type: str = "",
    volatile: Sequence[str] = VOLATILE_XML,
) -> bytes:
    """What the key is the digest of (readable, for a miss's message)."""
    head = f"{service} {method.upper()} ".encode()
    if not body:
        parts = urlsplit(url)
        query = "&".join(f"{k}={v}" for k, v in sorted(parse_qsl(parts.query, keep_blank_values=True)))
        return head + (parts.path + ("?" + query if query else "")).encode()
    stripped = body.lstrip()
    if stripped.startswith(b"<"):
        canonical = _xml(stripped, volatile)
        if canonical is not None:
            return head + canonical
    if "json" in content_type or stripped[:1] in (b"{", b"["):
        try:
            return head + orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
        except orjson.JSONDecodeError:
            pass
    return head + body


def _xml(body: bytes, volatile: Sequence[str]) -> bytes | None:
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError:
        return None
    paths = [tuple(p.split("/")) for p in volatile if not p.startswith("@")]
    attributes = {p[1:] for p in volatile if p.startswith("@")}
    doomed: list[etree._Element] = []
    for element in root.iter():
        if not isinstance(element.tag, str):  # comments, processing instructions
            doomed.append(element)
            continue
        for name in list(element.attrib):
            if etree.QName(name).localname in attributes:
                del element.attrib[name]
        names = _local_path(element)
        if any(names[-len(p) :] == p for p in paths):
            doomed.append(element)
    for element in doomed:
        parent = element.getparent()
        if parent is not None:
            parent.remove(element)
    return etree.tostring(root, method="c14n")


def _local_path(element: etree._Element) -> tuple[str, ...]:
    names: list[str] = []
    node: etree._Element | None = element
    while node is not None:
        names.append(etree.QName(node).localname)
        node = node.getparent()
    return tuple(reversed(names))


def mentions(body: bytes, url: str, values: Iterable[str]) -> bool:
    """Whether a request names any of ``values`` (a patient's number), in its URL or body."""
    return any(v and (v in url or v.encode() in body) for v in values)


@dataclass(frozen=True, slots=True)
class BatchRule:
    """A call that asks about many items at once, answered item by item.

    Which persons share a batch depends on timing (which messages the worker claimed together),
    so a replay's batch is rarely a recorded one. Offline replay takes each recorded batch
    apart, item by item, and puts the replay's batch together from the items' answers.
    """

    service: str
    operation: str  # local name of the request's operation element
    item: str  # local name of a repeated request element naming one item
    answer: str  # local name of one item's element in the response
    answer_key: tuple[str, ...]  # local-name path inside ``answer`` to the item it is about


#: Mina meddelanden's isReachable: ``recipientId`` repeated, one ``return`` per person.
BATCH_RULES: tuple[BatchRule, ...] = (
    BatchRule("mailbox", "isReachable", "recipientId", "return", ("AccountStatus", "RecipientId")),
)


def parse_xml(body: bytes) -> etree._Element | None:
    try:
        return etree.fromstring(body.lstrip(), _PARSER)
    except etree.XMLSyntaxError:
        return None


def find_local(root: etree._Element, name: str) -> list[etree._Element]:
    return [e for e in root.iter() if isinstance(e.tag, str) and etree.QName(e).localname == name]


def split_batch(rule: BatchRule, request: etree._Element) -> tuple[list[str], bytes] | None:
    """The items a batch request asks about, and the rest of it canonicalized (its key)."""
    if not find_local(request, rule.operation):
        return None
    items = find_local(request, rule.item)
    values = [(e.text or "").strip() for e in items]
    for e in items:
        parent = e.getparent()
        if parent is not None:
            parent.remove(e)
    return values, etree.tostring(request, method="c14n")


def answer_items(rule: BatchRule, response: etree._Element) -> dict[str, etree._Element]:
    """Each item's answer element in a batch response, by the item it is about."""
    out: dict[str, etree._Element] = {}
    for element in find_local(response, rule.answer):
        node: etree._Element | None = element
        for name in rule.answer_key:
            node = next(iter(find_local(node, name)), None) if node is not None else None
        if node is not None and node.text:
            out[node.text.strip()] = element
    return out
