"""The journal's edge before the intake: who may send (MSH-3/MSH-4), and the MSH of a message
that failed before its header was read, so its NACK still echoes MSH-10."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from gateway.errors import InboundError, Location, UnsupportedMessage
from gateway.journal_adapter import er7
from gateway.journal_adapter.header import Header, read_header


class SenderAllowlist:
    """``GATEWAY_MLLP_ALLOWED_SENDERS``: who may send, by MSH-3.1 and MSH-4.1, on both transports.

    A sender not on it gets AR with ``204`` (HL7 table 0357, unknown key identifier: the key
    that identifies the sending system is not known here), ERR naming MSH-3 or, when the
    application is known at other facilities, MSH-4. The message is stored as rejected, as every
    AR is, so the attempt can be found and audited (docs/hl7-profile.md 5.3).
    """

    def __init__(self, senders: Iterable[str]) -> None:
        pairs: set[tuple[str, str]] = set()
        anywhere: set[str] = set()
        for sender in senders:
            app, _, facility = sender.partition("|")
            if facility == "*":
                anywhere.add(app)
            else:
                pairs.add((app, facility))
        self._pairs = frozenset(pairs)
        self._anywhere = frozenset(anywhere)
        self._apps = frozenset(app for app, _ in pairs)

    def check(self, header: Header) -> None:
        app = header.sending_application
        facility = header.sending_facility
        if app in self._anywhere or (app, facility) in self._pairs:
            return
        where = Location("MSH", 4) if app in self._apps else Location("MSH", 3)
        raise UnsupportedMessage(
            f"sender {app!r} at {facility!r} (MSH-3, MSH-4) is not allowed to send here",
            where,
            code="204",
        )


def header_for_nack(raw: bytes) -> Header | None:
    """The MSH of a message that failed before its header was read (bytes not in the declared
    character set, a broken later segment), so its NACK still echoes MSH-10.

    The MSH is ASCII and ISO 8859-1 decodes any byte, so the MSH line alone reads the same
    whatever the rest holds. The NACK does not claim a character set that may have failed.
    """
    text = raw.decode("latin-1").lstrip("\r\n\x0b ")
    msh_line = text.replace("\n", "\r").split("\r", 1)[0]
    try:
        header = read_header(er7.parse(msh_line))
    except InboundError:
        return None
    return replace(header, charset="")
