"""The simulated journal's own truth: which bookings each patient has right now (R-BK-4).

The simulator keeps it up to date as it makes and changes bookings; the booking web service
(``booking_ws.py``) answers from it. Tests change it behind the gateway's back (a booking whose
message was lost, a change that was never pushed) to show what a refresh repairs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from gateway.domain.booking import JournalBooking


class JournalBook:
    """Bookings by id, per patient. Thread-safe: the web service reads it from its own thread."""

    def __init__(self, patients: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._bookings: dict[str, JournalBooking] = {}
        self._patients: set[str] = set(patients)

    def knows(self, patient_id: str) -> bool:
        with self._lock:
            return patient_id in self._patients

    def put(self, booking: JournalBooking) -> JournalBooking:
        """Add a booking or replace the one with its id (the patient becomes known)."""
        with self._lock:
            self._bookings[booking.booking_id] = booking
            self._patients.add(booking.patient_id)
        return booking

    def change(self, booking_id: str, **changes: Any) -> JournalBooking:
        """Change a booking in the journal only, as if its message never reached the gateway."""
        with self._lock:
            changed = replace(self._bookings[booking_id], **changes)
            self._bookings[booking_id] = changed
        return changed

    def remove(self, booking_id: str) -> None:
        with self._lock:
            self._bookings.pop(booking_id, None)

    def get(self, booking_id: str) -> JournalBooking | None:
        with self._lock:
            return self._bookings.get(booking_id)

    def bookings(
        self,
        patient_id: str,
        *,
        unit: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[JournalBooking]:
        """A patient's bookings, optionally at one unit (HSA-id) and starting in [start, end)."""
        with self._lock:
            found = [b for b in self._bookings.values() if b.patient_id == patient_id]
        if unit is not None:
            found = [b for b in found if any(u.hsa_id == unit for u in b.units)]
        if start is not None:
            found = [b for b in found if b.start >= start]
        if end is not None:
            found = [b for b in found if b.start < end]
        return sorted(found, key=lambda b: (b.start, b.booking_id))

    def __len__(self) -> int:
        with self._lock:
            return len(self._bookings)

    def all(self) -> list[JournalBooking]:
        with self._lock:
            return list(self._bookings.values())
