"""Which bookings reach the citizen platform: pure functions over domain objects, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.domain.identity import PersonId
from gateway.domain.register import RegisterRecord


@dataclass(frozen=True, slots=True)
class Exposure:
    """Whether a booking may leave the gateway, and if not, why (with the rule ids)."""

    visible: bool
    reason: str | None = None


SHOWN = Exposure(True)


def booking_exposure(time_type_visible: bool, patient: PersonId, record: RegisterRecord | None) -> Exposure:
    """Decide whether a booking is passed on to the citizen platform.

    ``record`` is the register's answer for the *current* number (a changed number has already
    been followed, R-ID-5), or ``None`` when the register has no such person.
    """
    if not time_type_visible:
        return Exposure(False, "R-BK-1: hidden time type (dold tidstyp)")
    if patient.is_reservnummer:
        # Never in the register, so protection cannot be ruled out, and the person has no
        # BankID, so no platform account could show it anyway.
        return Exposure(False, "R-ID-2: reservnummer, not in the population register")
    if record is None:
        return Exposure(False, "R-ID-7: not found in the population register; protection not ruled out")
    if record.protected:
        return Exposure(False, f"R-ID-3: protected identity ({record.protection.value})")
    if record.deceased:
        return Exposure(False, "R-ID-5: deceased according to the population register")
    return SHOWN
