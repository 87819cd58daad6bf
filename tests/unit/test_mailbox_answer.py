"""The ``deliverSecure`` answer read with lxml (``_translate.plain_delivery_answer``): for the
plain, official shape it reads exactly what zeep's binding reads; anything else it leaves to
zeep (``None``), so faults, surprises and broken answers are decided as before."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from zeep.helpers import serialize_object

from gateway.mailbox_adapter import MailboxDeliveryClient, MailboxSettings
from gateway.mailbox_adapter._translate import plain_delivery_answer

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
SVC3 = "http://minameddelanden.gov.se/schema/Service/v3"
SVC = "http://minameddelanden.gov.se/schema/Service"
TOLVAN = "191212121212"


def answer(
    body: str,
    *,
    envelope: str = f'<soap:Envelope xmlns:soap="{SOAP}">{{}}</soap:Envelope>',
    prolog: str = '<?xml version="1.0" encoding="UTF-8"?>',
) -> bytes:
    return (prolog + envelope.format(f"<soap:Body>{body}</soap:Body>")).encode()


def result(statuses: str = "", trans_id: str = "<svc:TransId>T-4711</svc:TransId>") -> str:
    statuses = statuses or status()
    return (
        f'<svc3:deliverSecureResponse xmlns:svc3="{SVC3}" xmlns:svc="{SVC}">'
        f"<svc3:return>{trans_id}{statuses}</svc3:return></svc3:deliverSecureResponse>"
    )


def status(recipient: str = TOLVAN, delivered: str = "true") -> str:
    return (
        f"<svc:Status><svc:RecipientId>{recipient}</svc:RecipientId>"
        f"<svc:Delivered>{delivered}</svc:Delivered></svc:Status>"
    )


PLAIN = {
    "as the mock writes it": answer(result()),
    "as JAX-WS writes it (other prefixes)": answer(
        f'<ns2:deliverSecureResponse xmlns:ns2="{SVC3}" xmlns:ns3="{SVC}"><ns2:return>'
        f"<ns3:TransId>abc-123</ns3:TransId><ns3:Status><ns3:RecipientId>{TOLVAN}</ns3:RecipientId>"
        "<ns3:Delivered>true</ns3:Delivered></ns3:Status></ns2:return></ns2:deliverSecureResponse>",
        envelope=f'<S:Envelope xmlns:S="{SOAP}" xmlns:soap="{SOAP}">{{}}</S:Envelope>',
    ),
    "default namespaces": answer(
        f'<deliverSecureResponse xmlns="{SVC3}"><return><TransId xmlns="{SVC}">T</TransId>'
        f'<Status xmlns="{SVC}"><RecipientId>{TOLVAN}</RecipientId><Delivered>1</Delivered></Status>'
        "</return></deliverSecureResponse>"
    ),
    "pretty-printed, without a prolog": answer(
        result()
        .replace("><", ">\n  <")
        .replace(">\n  </svc:TransId", "</svc:TransId")
        .replace(">\n  </svc:RecipientId", "</svc:RecipientId")
        .replace(">\n  </svc:Delivered", "</svc:Delivered"),
        prolog="",
    ),
    "not delivered": answer(result(status(delivered="false"))),
    "not delivered, as 0": answer(result(status(delivered="0"))),
    "several statuses": answer(result(status() + status("197001011234", "false") + status(delivered="1"))),
    "a comment": answer(result().replace("<svc3:return>", "<svc3:return><!-- hej -->")),
    "a comment inside a value": answer(result(trans_id="<svc:TransId>T-<!-- x -->47</svc:TransId>")),
    "odd characters in the transaction id": answer(
        result(trans_id="<svc:TransId>å&amp;ä &lt;x&gt;</svc:TransId>")
    ),
}

NOT_PLAIN = {
    "a fault": answer(
        "<soap:Fault><faultcode>soap:Server</faultcode><faultstring>6001</faultstring></soap:Fault>"
    ),
    "a header": answer(result()).replace(b"<soap:Body>", b"<soap:Header/><soap:Body>"),
    "an attribute": answer(result().replace("<svc3:return>", '<svc3:return id="1">')),
    "xsi:nil": answer(
        result(trans_id='<svc:TransId xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:nil="true"/>')
    ),
    "an extra element": answer(result(status() + "<svc:Other/>")),
    "a status with more in it": answer(result(status().replace("</svc:Status>", "<svc:X/></svc:Status>"))),
    "no status": answer(result(statuses="<!-- -->", trans_id="<svc:TransId>T</svc:TransId>")),
    "no transaction id": answer(result(trans_id="")),
    "an empty transaction id": answer(result(trans_id="<svc:TransId></svc:TransId>")),
    "spaces around a value": answer(result(trans_id="<svc:TransId> T </svc:TransId>")),
    "spaces around a boolean": answer(result(status(delivered=" true "))),
    "a boolean spelt otherwise": answer(result(status(delivered="yes"))),
    "text where elements go": answer(result().replace("<svc3:return>", "<svc3:return>hej")),
    "two results": answer(
        result().replace(
            "</svc3:return>", "</svc3:return><svc3:return><svc:TransId>U</svc:TransId></svc3:return>"
        )
    ),
    "two bodies": answer(result()).replace(b"</soap:Envelope>", b"<soap:Body/></soap:Envelope>"),
    "another operation": answer(result().replace("deliverSecureResponse", "deliverSecure")),
    "SOAP 1.2": answer(result()).replace(SOAP.encode(), b"http://www.w3.org/2003/05/soap-envelope"),
    "a processing instruction": answer(result().replace("<svc3:return>", "<svc3:return><?pi x?>")),
    "a DTD": answer(result(), prolog='<?xml version="1.0"?><!DOCTYPE Envelope>'),
    "an entity": answer(
        result(trans_id="<svc:TransId>&x;</svc:TransId>"), prolog='<!DOCTYPE x [<!ENTITY x "T">]>'
    ),
    "not XML": b"Service Unavailable",
    "cut off": answer(result())[:-30],
    "empty": b"",
}


@pytest.fixture(scope="module")
def zeep_reads() -> Iterator[Any]:
    """zeep's reading of a 200 answer, as the client did it for every answer before."""
    settings = MailboxSettings(url="http://mailbox.test/recipient")
    transport = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(500)))
    client = MailboxDeliveryClient(settings, client=transport)

    def read(content: bytes) -> Any:
        response = httpx.Response(
            200,
            content=content,
            headers={"Content-Type": "text/xml; charset=utf-8"},
            request=httpx.Request("POST", "http://mailbox.test/kivra"),
        )
        reply = client._binding.process_reply(
            client._zeep, client._operation, client._zeep.transport.new_response(response)
        )
        return serialize_object(reply, dict)

    yield read


@pytest.mark.parametrize("content", list(PLAIN.values()), ids=list(PLAIN))
def test_a_plain_answer_reads_as_zeep_reads_it(content: bytes, zeep_reads: Any) -> None:
    fast = plain_delivery_answer(200, "text/xml; charset=utf-8", content)
    assert fast is not None
    slow = zeep_reads(content)
    assert fast == {"TransId": slow["TransId"], "Status": [dict(s) for s in slow["Status"]]}


@pytest.mark.parametrize("content", list(NOT_PLAIN.values()), ids=list(NOT_PLAIN))
def test_anything_else_is_left_to_zeep(content: bytes) -> None:
    assert plain_delivery_answer(200, "text/xml; charset=utf-8", content) is None


@pytest.mark.parametrize("status", [201, 202, 400, 500, 503])
def test_other_http_statuses_are_left_to_zeep(status: int) -> None:
    assert plain_delivery_answer(status, "text/xml", PLAIN["as the mock writes it"]) is None


def test_a_multipart_answer_is_left_to_zeep() -> None:
    content = PLAIN["as the mock writes it"]
    assert plain_delivery_answer(200, 'multipart/related; type="application/xop+xml"', content) is None
