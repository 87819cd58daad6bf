"""The gateway's one exception tree.

::

    GatewayError
    ├── ConfigurationError          settings or mapping files are invalid (start-up refuses)
    ├── InboundError                an inbound message cannot be taken as it is (no retry helps)
    │   ├── MalformedMessage        structure or content is wrong -> HL7 AE / FHIR 400
    │   │   └── InvalidIdentifier   a personnummer/samordningsnummer/reservnummer fails R-ID-1/2
    │   └── UnsupportedMessage      a message type/trigger we do not take -> HL7 AR
    ├── NotFound                    a requested resource does not exist -> FHIR 404
    ├── InvalidRequest              a bad API request (unknown parameter, bad value) -> FHIR 400
    ├── Refused                     the rules refuse it (self-service) -> FHIR 403/409/422
    ├── StoreError                  the database failed
    └── UpstreamError               an outside system (SPAR, accounts, mailbox) failed
        ├── TransientUpstreamError  worth retrying (timeout, connection error, 5xx)
        └── PermanentUpstreamError  retrying will not help
            └── MailboxRefused      a mailbox service refused this letter (``code`` says why)

Errors about inbound content carry *where* the problem is (segment, field, component) so the
one place that builds NACKs can write an ERR segment naming it.
"""

from __future__ import annotations

from dataclasses import dataclass


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""


class ConfigurationError(GatewayError):
    """Settings or a mapping file are invalid; the gateway refuses to start."""


@dataclass(frozen=True, slots=True)
class Location:
    """Where in an HL7 v2 message a problem is (1-based, as HL7 counts)."""

    segment: str
    field: int | None = None
    component: int | None = None
    sequence: int = 1

    def __str__(self) -> str:
        text = self.segment
        if self.field is not None:
            text += f"-{self.field}"
            if self.component is not None:
                text += f".{self.component}"
        return text


class InboundError(GatewayError):
    """An inbound message cannot be taken as it is. Retrying the same bytes will not help."""

    #: HL7 table 0357 message error condition code.
    hl7_error_code: str = "207"
    hl7_error_text: str = "Application internal error"

    def __init__(self, message: str, location: Location | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.location = location

    def __str__(self) -> str:
        if self.location is None:
            return self.message
        return f"{self.location}: {self.message}"


class MalformedMessage(InboundError):
    """Structure or content is wrong (missing required field, bad timestamp...)."""

    hl7_error_code = "102"
    hl7_error_text = "Data type error"

    def __init__(
        self,
        message: str,
        location: Location | None = None,
        *,
        code: str | None = None,
    ) -> None:
        super().__init__(message, location)
        if code is not None:
            self.hl7_error_code = code
            self.hl7_error_text = _HL7_0357.get(code, self.hl7_error_text)


class InvalidIdentifier(MalformedMessage):
    """A person identifier fails its check (R-ID-1, R-ID-2)."""


class UnsupportedMessage(InboundError):
    """A message type or trigger event the gateway does not take (HL7 AR)."""

    hl7_error_code = "200"
    hl7_error_text = "Unsupported message type"

    def __init__(self, message: str, location: Location | None = None, *, code: str = "200") -> None:
        super().__init__(message, location)
        self.hl7_error_code = code
        self.hl7_error_text = _HL7_0357.get(code, self.hl7_error_text)


class NotFound(GatewayError):
    """A requested resource does not exist (or must not be shown)."""


class InvalidRequest(GatewayError):
    """A request to the gateway's API is invalid: unknown parameter, bad value."""


class Refused(GatewayError):
    """The rules refuse a request (citizen self-service, issue 21). ``rule`` names the rule id;
    ``kind``: ``forbidden`` (FHIR 403), ``conflict`` (409), ``unprocessable`` (422)."""

    def __init__(self, message: str, *, rule: str, kind: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.kind = kind

    @property
    def status(self) -> int:
        return _REFUSED_STATUS.get(self.kind, 409)


class StoreError(GatewayError):
    """The database failed."""


class UpstreamError(GatewayError):
    """An outside system failed."""


class TransientUpstreamError(UpstreamError):
    """An outside system failed in a way worth retrying."""


class PermanentUpstreamError(UpstreamError):
    """An outside system failed in a way retrying will not fix."""


class MailboxRefused(PermanentUpstreamError):
    """The mailbox recipient or delivery service refused one letter or question.

    ``code``: a ``gateway.domain.mailbox.RefusalCode`` value (under-18, not-reachable, ...);
    ``service_code``: the service's own ``ErrorCode`` when it sent one.
    """

    def __init__(self, message: str, *, code: str, service_code: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.service_code = service_code


_REFUSED_STATUS = {"forbidden": 403, "conflict": 409, "unprocessable": 422}

# HL7 v2 table 0357, the codes the gateway uses.
_HL7_0357 = {
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "207": "Application internal error",
}
