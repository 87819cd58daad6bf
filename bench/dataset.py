"""A stored population of appointments for the search benchmark, loaded straight into the store.

Bookings come from the simulated journal (``mocks/journal/simulator.py``) for a synthetic
population of valid personnummer, are read by the gateway's own SIU reader and turned into
rows with the same functions the processing worker uses (``build_appointment``,
``content_hash``, ``finalize``, ``booking_exposure``), so the stored JSON is the gateway's
own. Only the final state of each booking is kept, as processing would leave it. Rows are
made in worker processes (``finalize`` validates every resource with fhir.resources, about
0.3 ms each) and inserted in bulk, bypassing MLLP and the worker.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from gateway import mappings as mapping_tables
from gateway.domain.identity import luhn_check_digit
from gateway.domain.register import Protection, RegisterRecord
from gateway.domain.rules import booking_exposure
from gateway.fhir.appointment import appointment_id, build_appointment, content_hash, finalize
from gateway.journal_adapter import er7
from gateway.journal_adapter.siu import check_header, read_header, to_booking_event
from mocks.journal.simulator import JournalSimulator
from mocks.population import Population, TestPerson

HEAVY_PATIENT = "191212121212"  # Tolvan: one booking every simulated day
BOOKINGS_PER_DAY = 200
PERSONS_PER_100K = 20_000  # about five bookings per person


@dataclass(frozen=True)
class Plan:
    appointments: int
    first_day: date
    persons: int
    seed: int = 7
    last_updated_from: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    last_updated_step_ms: int = 1000  # one booking changed per second, in booking order

    @property
    def days(self) -> int:
        return max(1, -(-self.appointments // BOOKINGS_PER_DAY))

    def last_updated(self, index: int) -> datetime:
        return self.last_updated_from + timedelta(milliseconds=index * self.last_updated_step_ms)


def plan(appointments: int, *, today: date) -> Plan:
    p = Plan(appointments, today, max(200, appointments * PERSONS_PER_100K // 100_000))
    # Half the days in the past, half ahead, so "from today" queries find upcoming bookings.
    return Plan(p.appointments, today - timedelta(days=p.days // 2), p.persons)


def population(size: int, seed: int) -> Population:
    rng = random.Random(seed)
    persons = [TestPerson(id=HEAVY_PATIENT, id_type="personnummer", given="Tolvan", family="Tolvansson")]
    seen = {HEAVY_PATIENT}
    while len(persons) < size:
        born = date(1930, 1, 1) + timedelta(days=rng.randrange(90 * 365))
        serial = rng.randrange(1000)
        nine = f"{born:%y%m%d}{serial:03d}"
        pnr = f"{born:%Y%m%d}{serial:03d}{luhn_check_digit(nine)}"
        if pnr in seen:
            continue
        seen.add(pnr)
        persons.append(
            TestPerson(id=pnr, id_type="personnummer", given="Test", family=f"Person{len(persons)}")
        )
    # model_construct: the population check is quadratic in size and these are made valid above.
    return Population.model_construct(persons=tuple(persons))


def make_rows(p: Plan, first: int, count: int) -> list[dict[str, Any]]:
    """Rows for the days ``first .. first+count-1`` of the plan (runs in a worker process)."""
    mappings = mapping_tables.load()
    sim = JournalSimulator(population(p.persons, p.seed), seed=p.seed + first, run_id=f"D{first:04d}")
    latest: dict[str, tuple[int, int, Any]] = {}  # booking -> (creation index, messages, event)
    index = first * BOOKINGS_PER_DAY
    for offset in range(count):
        day = p.first_day + timedelta(days=first + offset)
        for m in sim.day(day, bookings=BOOKINGS_PER_DAY):
            text, _ = er7.decode(m.data)
            msg = er7.parse(text)
            header = read_header(msg)
            check_header(header)
            event = to_booking_event(msg, header, mappings)
            if m.booking_id in latest:
                i, n, _ = latest[m.booking_id]
                latest[m.booking_id] = (i, n + 1, event)
            else:
                latest[m.booking_id] = (index, 1, event)
                index += 1
    rows = []
    for i, versions, event in latest.values():
        if i >= p.appointments:
            continue
        record = RegisterRecord(person=event.patient, protection=Protection.NONE)
        exposure = booking_exposure(mappings.time_type_visible(event.time_type), event.patient, record)
        resource = build_appointment(event, mappings)
        updated = p.last_updated(i)
        rows.append(
            {
                "id": appointment_id(event.namespace, event.booking_id),
                "namespace": event.namespace,
                "booking_id": event.booking_id,
                "patient_system": mappings.fhir_system_for(event.patient.authority),
                "patient_value": event.patient.value,
                "journal_patient_value": None,
                "status": event.status,
                "start": event.start,
                "end": event.end,
                "time_type": event.time_type,
                "visible": exposure.visible,
                "withheld_reason": exposure.reason,
                "version_id": versions,
                "last_updated": updated,
                "last_message_id": i + 1,
                "content_hash": content_hash(
                    {"visible": exposure.visible, "why": exposure.reason, "resource": resource}
                ),
                "resource": finalize(resource, versions, updated),
            }
        )
    return rows


def generate(p: Plan, *, processes: int) -> Iterator[list[dict[str, Any]]]:
    """Chunks of rows, made in ``processes`` worker processes (in this process when 1)."""
    days_per_chunk = 25
    chunks = [(d, min(days_per_chunk, p.days - d)) for d in range(0, p.days, days_per_chunk)]
    if processes <= 1:
        for first, count in chunks:
            yield make_rows(p, first, count)
        return
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=processes, mp_context=spawn) as pool:
        yield from pool.map(make_rows, [p] * len(chunks), *zip(*chunks, strict=True))
