"""Offline replay finds answers by what was asked, not by order; volatile parts do not count."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from gateway.recording.fileformat import RecordingFormatError, parse, put_bytes
from gateway.recording.matching import request_key
from gateway.recording.transport import (
    NoRecordedAnswer,
    OfflineTransport,
    RecordedAnswers,
    RecordingTransport,
)

DELIVERY = """<?xml version='1.0' encoding='utf-8'?>
<soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/"><soap-env:Body>
<ns0:deliverSecure xmlns:ns0="http://minameddelanden.gov.se/schema/Service/v3">
<ns0:SealedDelivery><ns0:SignedDelivery Id="sd-{sig}"><ns0:Delivery><ns0:Header>
<ns0:Recipient>191212121212</ns0:Recipient><ns0:Reference>doc1.m{msg}</ns0:Reference>
<ns0:CorrelationId>{corr}</ns0:CorrelationId></ns0:Header><ns0:Message><ns0:Header><ns0:Id>doc1.m{msg}</ns0:Id>
</ns0:Header><ns0:Body>{text}</ns0:Body></ns0:Message></ns0:Delivery>
<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignatureValue>{sig}</ds:SignatureValue></ds:Signature>
</ns0:SignedDelivery><ns0:Seal><ns0:ReceivedTime>{time}</ns0:ReceivedTime></ns0:Seal></ns0:SealedDelivery>
</ns0:deliverSecure></soap-env:Body></soap-env:Envelope>"""


def delivery(
    text: str = "Hej", *, sig: str = "AAA", corr: str = "c1", time: str = "T1", msg: int = 7
) -> bytes:
    return DELIVERY.format(text=text, sig=sig, corr=corr, time=time, msg=msg).encode()


def test_a_signed_delivery_matches_whatever_its_signature_correlation_id_time_and_message_id() -> None:
    first = request_key("mailbox", "POST", "http://a:1/mailbox/kivra", delivery())
    again = request_key(
        "mailbox", "POST", "http://b:2/mailbox/kivra", delivery(sig="BBB", corr="c2", time="T2", msg=1)
    )
    assert first == again
    assert first != request_key("mailbox", "POST", "http://a:1/mailbox/kivra", delivery(text="Hejsan"))


def test_json_keys_in_any_order_and_a_get_by_path_and_query() -> None:
    assert request_key("accounts", "POST", "/x", b'{"a": 1, "b": 2}') == request_key(
        "accounts", "POST", "/x", b'{"b":2,"a":1}'
    )
    assert request_key("accounts", "GET", "http://h:1/p/1?b=2&a=1", b"") == request_key(
        "accounts", "GET", "http://other:9/p/1?a=1&b=2", b""
    )
    assert request_key("accounts", "GET", "http://h:1/p/1", b"") != request_key(
        "accounts", "GET", "http://h:1/p/2", b""
    )
    assert request_key("spar", "GET", "http://h:1/p/1", b"") != request_key(
        "accounts", "GET", "http://h:1/p/1", b""
    )


def outbound(service: str, url: str, body: bytes, answer: bytes, status: int = 200) -> dict[str, Any]:
    request: dict[str, Any] = {"headers": {"content-type": "text/xml"}}
    put_bytes(request, "body", body)
    response: dict[str, Any] = {"status": status, "headers": {"content-type": "text/xml"}}
    put_bytes(response, "body", answer)
    return {
        "type": "outbound",
        "service": service,
        "method": "POST",
        "url": url,
        "request": request,
        "response": response,
    }


def ask(
    answers: RecordedAnswers, service: str, body: bytes, url: str = "http://offline.invalid/x"
) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=OfflineTransport(answers, service)) as client:
            return await client.post(url, content=body, headers={"content-type": "text/xml"})

    return asyncio.run(go())


def test_the_same_request_gets_its_answers_in_recorded_order_then_the_last_again() -> None:
    answers = RecordedAnswers(
        [
            outbound("spar", "http://m:1/spar", b"<q>1</q>", b"<a>first</a>"),
            outbound("spar", "http://m:1/spar", b"<q>1</q>", b"<a>second</a>"),
        ]
    )
    assert [ask(answers, "spar", b"<q>1</q>").text for _ in range(3)] == [
        "<a>first</a>",
        "<a>second</a>",
        "<a>second</a>",
    ]
    with pytest.raises(NoRecordedAnswer):
        ask(answers, "spar", b"<q>2</q>")
    assert len(answers.misses) == 1


IS_REACHABLE = (
    '<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>'
    '<r:isReachable xmlns:r="http://minameddelanden.gov.se/schema/Recipient/v3"><r:senderOrgNr>1</r:senderOrgNr>'
    "{ids}</r:isReachable></e:Body></e:Envelope>"
)
ANSWER = (
    '<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>'
    '<r:isReachableResponse xmlns:r="http://minameddelanden.gov.se/schema/Recipient/v3">{items}'
    "</r:isReachableResponse></e:Body></e:Envelope>"
)


def reachable(*ids: str) -> bytes:
    return IS_REACHABLE.format(ids="".join(f"<r:recipientId>{i}</r:recipientId>" for i in ids)).encode()


def reach_answer(*ids: str) -> bytes:
    items = "".join(
        f"<r:return><r:AccountStatus><r:RecipientId>{i}</r:RecipientId><r:Type>Secure</r:Type>"
        f"</r:AccountStatus></r:return>"
        for i in ids
    )
    return ANSWER.format(items=items).encode()


def test_a_batch_never_recorded_as_such_is_answered_person_by_person_from_recorded_batches() -> None:
    answers = RecordedAnswers(
        [
            outbound("mailbox", "http://m:1/mailbox/recipient", reachable("1", "2"), reach_answer("1", "2")),
            outbound("mailbox", "http://m:1/mailbox/recipient", reachable("3"), reach_answer("3")),
        ]
    )
    text = ask(answers, "mailbox", reachable("3", "1")).text
    assert text.index("<r:RecipientId>3<") < text.index("<r:RecipientId>1<")
    assert "<r:RecipientId>2<" not in text
    with pytest.raises(NoRecordedAnswer):  # a person no recorded batch asked about
        ask(answers, "mailbox", reachable("1", "4"))


def test_a_recorded_transport_error_is_raised_again() -> None:
    line = outbound("spar", "http://m:1/spar", b"<q>1</q>", b"")
    del line["response"]
    line["error"] = {"type": "ConnectTimeout", "text": "timed out"}
    with pytest.raises(httpx.ConnectTimeout):
        ask(RecordedAnswers([line]), "spar", b"<q>1</q>")


def test_a_recording_file_needs_its_header_and_a_known_version() -> None:
    head = b'{"type": "recording", "format": "gateway-recording", "version": 1}'
    assert len(parse([head, b'{"type": "inbound", "raw": "x"}']).inbound) == 1
    with pytest.raises(RecordingFormatError, match="header"):
        parse([b'{"type": "inbound"}'])
    with pytest.raises(RecordingFormatError, match="version 2"):
        parse([b'{"type": "recording", "format": "gateway-recording", "version": 2}'])
    with pytest.raises(RecordingFormatError, match="not JSON"):
        parse([b"{"])


async def test_a_recording_never_holds_a_credential_from_the_soap_body() -> None:
    """TakeCare XChange carries tcpassword in the body: recorded as ***, and not in the key."""
    envelope = (
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
        b'<GetBookings xmlns="http://tempuri.org/"><tcusername>gw</tcusername>'
        b"<tcpassword>%s</tcpassword><xml>&lt;x/&gt;</xml></GetBookings></s:Body></s:Envelope>"
    )
    lines: list[dict[str, object]] = []
    inner = httpx.MockTransport(lambda request: httpx.Response(200, content=b"<ok/>"))
    transport = RecordingTransport(inner, "journal", lines.append)
    async with httpx.AsyncClient(transport=transport) as client:
        await client.post("http://journal/booking", content=envelope % b"s3cret-Pa55")
    (line,) = lines
    assert b"s3cret-Pa55" not in repr(line).encode()
    assert "***" in str(line["request"])
    key = request_key("journal", "POST", "http://journal/booking", envelope % b"other", "text/xml")
    assert line["key"] == key  # a replay with another password still finds the answer
