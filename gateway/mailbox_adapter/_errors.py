"""httpx, zeep and lxml exceptions -> the gateway's ``UpstreamError`` tree, at the adapter's edge.

Same rule as SPAR (docs/spar.md): a failure of *this question or letter* is permanent, a failure
of *the channel or the service* is transient (the outbox tries again later; the operator keys
deliveries on the message id, so a second try is not a second letter).

- httpx: ``gateway.http_errors`` (timeouts, connection errors, 5xx/408/429 transient).
- A SOAP Fault carrying an ``applicationFault`` is the service's statement about this request:
  :class:`gateway.errors.MailboxRefused` with a ``RefusalCode``, whatever the faultcode says (the
  services send it as ``soap:Server``, as JAX-WS does). Without one: ``soap:Server`` transient,
  anything else permanent.
- A body that is not XML or not a SOAP envelope is a damaged transfer: transient. Well-formed SOAP
  that breaks the contract is permanent.

Messages carry the exception type, status and ``ErrorCode``/``CallId``, never a body.
"""

from __future__ import annotations

from collections.abc import Callable

from lxml import etree
from zeep import exceptions as zeep_exc

from gateway import http_errors
from gateway.domain.mailbox import RefusalCode
from gateway.errors import MailboxRefused, PermanentUpstreamError, TransientUpstreamError, UpstreamError

NS_COMMON = "http://minameddelanden.gov.se/schema/Common/v3"
APPLICATION_FAULT = f"{{{NS_COMMON}}}applicationFault"

#: The services' ErrorCodes (docs/mailbox.md) -> why, in the gateway's words.
REFUSALS: dict[str, RefusalCode] = {
    "RECIPIENT_UNDER_18": RefusalCode.UNDER_18,
    "RECIPIENT_NOT_REACHABLE": RefusalCode.NOT_REACHABLE,
    "SENDER_NOT_ACCEPTED": RefusalCode.SENDER_NOT_ACCEPTED,
    "SIGNATURE_INVALID": RefusalCode.SIGNATURE_INVALID,
    "INVALID_MESSAGE": RefusalCode.INVALID_LETTER,
    "DUPLICATE_MESSAGE_ID": RefusalCode.INVALID_LETTER,
    "INVALID_SENDER": RefusalCode.INVALID_REQUEST,
    "INVALID_RECIPIENT": RefusalCode.INVALID_REQUEST,
}

Translate = Callable[[BaseException, str], UpstreamError]


def _transient(why: str) -> Translate:
    return lambda exc, what: TransientUpstreamError(f"{what} {why}: {_describe(exc)}")


def _permanent(why: str) -> Translate:
    return lambda exc, what: PermanentUpstreamError(f"{what} {why}: {_describe(exc)}")


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _by_status(status: int | None, what: str) -> UpstreamError:
    if status is not None and 200 <= status < 300:
        # zeep says TransportError for a 2xx whose body is not XML: a damaged transfer.
        return TransientUpstreamError(f"{what} answered HTTP {status} with a body that is not XML")
    text = f"{what} answered with an error and no SOAP envelope (HTTP {status})"
    if status is not None and http_errors.status_error_class(status) is TransientUpstreamError:
        return TransientUpstreamError(text)
    return PermanentUpstreamError(text)


def _transport_error(exc: BaseException, what: str) -> UpstreamError:
    assert isinstance(exc, zeep_exc.TransportError)
    return _by_status(exc.status_code, what)


def _fault(exc: BaseException, what: str) -> UpstreamError:
    assert isinstance(exc, zeep_exc.Fault)
    detail = exc.detail
    found = None
    if isinstance(detail, etree._Element):
        found = detail if detail.tag == APPLICATION_FAULT else detail.find(f".//{APPLICATION_FAULT}")
    if found is not None:
        service_code = (found.findtext(f"{{{NS_COMMON}}}ErrorCode") or "").strip() or "(no ErrorCode)"
        call_id = (found.findtext(f"{{{NS_COMMON}}}CallId") or "").strip()
        code = REFUSALS.get(service_code, RefusalCode.OTHER)
        return MailboxRefused(
            f"{what} refused: {service_code} ({code.value}){f', CallId {call_id}' if call_id else ''}",
            code=code.value,
            service_code=service_code,
        )
    faultcode = str(exc.code or "").rsplit(":", 1)[-1].rsplit("}", 1)[-1]
    text = f"{what} SOAP Fault {faultcode or '(no faultcode)'}: {(exc.message or '')[:200]}"
    if faultcode == "Server":
        return TransientUpstreamError(text)
    return PermanentUpstreamError(text)  # Client, VersionMismatch, MustUnderstand: our request


#: zeep's and lxml's exceptions; lookup walks the exception's MRO (a test checks completeness).
MAPPING: dict[type[BaseException], Translate] = {
    zeep_exc.TransportError: _transport_error,
    zeep_exc.Fault: _fault,
    zeep_exc.XMLSyntaxError: _transient("answer is not a SOAP envelope"),
    zeep_exc.XMLParseError: _permanent("answer breaks the schema"),
    zeep_exc.ValidationError: _permanent("request or answer breaks the schema"),
    zeep_exc.UnexpectedElementError: _permanent("answer breaks the schema"),
    zeep_exc.LookupError: _permanent("answer uses an unknown type or element"),
    zeep_exc.NamespaceError: _permanent("answer uses an unknown namespace"),
    zeep_exc.DTDForbidden: _permanent("answer carries a DTD (refused)"),
    zeep_exc.EntitiesForbidden: _permanent("answer declares entities (refused)"),
    zeep_exc.ExternalReferenceForbidden: _permanent("answer refers to external documents (refused)"),
    zeep_exc.SignatureVerificationFailed: _permanent("answer signature does not verify"),
    zeep_exc.WsdlSyntaxError: _permanent("contract (WSDL) is broken"),
    zeep_exc.IncompleteMessage: _permanent("contract (WSDL) is incomplete"),
    zeep_exc.IncompleteOperation: _permanent("contract (WSDL) is incomplete"),
    zeep_exc.Error: _permanent("SOAP client error"),
    etree.XMLSyntaxError: _transient("answer is not XML"),
    etree.LxmlError: _permanent("answer could not be read as XML"),
    etree.Error: _permanent("answer could not be read as XML"),
}


def translate_exception(exc: BaseException, what: str) -> UpstreamError | None:
    """The gateway's error for a library exception; ``None`` for anything else (a bug: let it out).

    ``what`` names the service in the message ("mailbox recipient service", "Kivra delivery").
    """
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, http_errors.HTTPX_ERRORS):
        return http_errors.translate(exc, what)
    for cls in type(exc).__mro__:
        translate = MAPPING.get(cls)
        if translate is not None:
            return translate(exc, what)
    return None
