"""httpx, zeep and lxml exceptions -> the gateway's ``UpstreamError`` tree, at the adapter's edge.

Same rule as SPAR (docs/spar.md): a failure of *this question or letter* is permanent, a failure
of *the channel or the service* is transient (the outbox tries again later; the operator keys
deliveries on the message id, so a second try is not a second letter).

- httpx: ``gateway.http_errors`` (timeouts, connection errors, 5xx/408/429 transient).
- A SOAP Fault carrying an ``applicationFault`` is read by its numeric ``ErrorCode``, whatever
  the faultcode says (the services send it as ``soap:Server``, as JAX-WS does): 5000-5999
  transient, else :class:`gateway.errors.MailboxRefused` with a ``RefusalCode`` (ranges below).
  Without one: ``soap:Server`` transient, anything else permanent.
- A body that is not XML or not a SOAP envelope is a damaged transfer: transient. Well-formed SOAP
  that breaks the contract is permanent.

Messages carry the exception type, status and ``ErrorCode``/``CallId``, never a body.
"""

from __future__ import annotations

from lxml import etree
from zeep import exceptions as zeep_exc

from gateway import soap
from gateway.domain.mailbox import RefusalCode
from gateway.errors import MailboxRefused, PermanentUpstreamError, TransientUpstreamError, UpstreamError

NS_COMMON = "http://minameddelanden.gov.se/schema/Common/v3"
APPLICATION_FAULT = f"{{{NS_COMMON}}}applicationFault"

#: ``applicationFault/ErrorCode`` is a number, 1 to 9998 (Common/v3 ``ExceptionInformation``). The
#: contract lists some codes (Common ``ErrorCodes``: 4999, 5000-5005, 6004) but gives none a
#: meaning, so the gateway reads them by range (docs/mailbox.md), chosen so a wrong guess is safe:
#: a permanent refusal puts the letter on the print list with the code (staff can retry it), a
#: transient one is tried again later, at most ``outbox_max_attempts`` times, then printed.
#:
#: - 1-4999: the request itself (sender, recipient, signature, letter): permanent.
#: - 5000-5999: the service's own trouble: transient (the message id keeps a retry one letter).
#: - 6000-9998: the recipient (no mailbox there, under 18, sender not accepted): permanent.
TRANSIENT_CODES = range(5000, 6000)
#: Codes the gateway names (the mock answers these; see docs/mailbox.md); others by range.
REFUSALS: dict[int, RefusalCode] = {
    1001: RefusalCode.INVALID_REQUEST,  # sender not known to the service
    1002: RefusalCode.INVALID_REQUEST,  # a recipient id the service does not take
    1101: RefusalCode.SIGNATURE_INVALID,
    1102: RefusalCode.INVALID_LETTER,
    1103: RefusalCode.INVALID_LETTER,  # a message id already used for another letter
    6001: RefusalCode.NOT_REACHABLE,
    6002: RefusalCode.UNDER_18,
    6003: RefusalCode.SENDER_NOT_ACCEPTED,
}


def refusal_for(code: int) -> RefusalCode:
    """The gateway's reason for a permanent ``ErrorCode``."""
    if code in REFUSALS:
        return REFUSALS[code]
    if 6000 <= code < 10000:
        return RefusalCode.NOT_REACHABLE
    if 1 <= code < 5000:
        return RefusalCode.INVALID_REQUEST
    return RefusalCode.OTHER


def _application_fault(exc: zeep_exc.Fault, what: str) -> UpstreamError | None:
    """A Fault's ``applicationFault``, read by its numeric ``ErrorCode``; ``None``: there is none."""
    detail = exc.detail
    found = None
    if isinstance(detail, etree._Element):
        found = detail if detail.tag == APPLICATION_FAULT else detail.find(f".//{APPLICATION_FAULT}")
    if found is not None:
        text = (found.findtext(f"{{{NS_COMMON}}}ErrorCode") or "").strip()
        call_id = (found.findtext(f"{{{NS_COMMON}}}CallId") or "").strip()[:50]
        where = f", CallId {call_id}" if call_id else ""
        if not text.isdigit():
            return PermanentUpstreamError(f"{what} applicationFault without a numeric ErrorCode{where}")
        number = int(text)
        if number in TRANSIENT_CODES:
            return TransientUpstreamError(f"{what} applicationFault {number} (service trouble){where}")
        code = refusal_for(number)
        return MailboxRefused(
            f"{what} refused: ErrorCode {number} ({code.value}){where}",
            code=code.value,
            service_code=str(number),
        )
    return None


def translate_exception(exc: BaseException, what: str) -> UpstreamError | None:
    """The gateway's error for a library exception; ``None`` for anything else (a bug: let it out).

    ``what`` names the service in the message ("mailbox recipient service", "Kivra delivery").
    """
    return soap.translate(exc, what, fault=_application_fault)
