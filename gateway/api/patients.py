"""Staff view of a person: ``GET /patients/{id}`` (like Vårdportalen's Invånarprofil)."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from gateway.api.deps import StoreDep
from gateway.domain.accounts import AccountDirectory, no_account
from gateway.domain.identity import PersonId
from gateway.domain.profile import HIDDEN, PersonProfile, person_profile
from gateway.domain.register import Address, PopulationRegister, resolve
from gateway.errors import InvalidIdentifier, InvalidRequest
from gateway.mappings import Mappings
from gateway.service.refresh import RefreshResult, refresh_bookings
from gateway.store import notifications as notification_store
from gateway.store import people

router = APIRouter(tags=["Staff"])


def _identifier(mappings: Mappings, person: PersonId) -> dict[str, str]:
    return {"system": mappings.fhir_system_for(person.authority), "value": person.value, "kind": person.kind}


def _address(address: Address | str | None) -> dict[str, Any] | str | None:
    if address is None or isinstance(address, str):
        return address
    return asdict(address)


def _bookings(store: Any, profile: PersonProfile) -> list[dict[str, Any]]:
    numbers = {profile.asked.value, profile.current.value, *(p.value for p in profile.former)}
    rows = people.bookings_of(store, numbers)
    return [
        {
            "appointment": row.id,
            "booking_id": row.booking_id,
            "status": row.status,
            "start": row.start.isoformat(),
            "time_type": row.time_type,
            "shown_to_citizen": row.visible,
            "withheld_reason": row.withheld_reason,
        }
        for row in rows
    ]


def _documents(store: Any, profile: PersonProfile) -> list[dict[str, Any]]:
    """The person's e-documents, newest first: where each went, and any R-BK-3 outdated mark."""
    numbers = {profile.asked.value, profile.current.value, *(p.value for p in profile.former)}
    rows = people.documents_of(store, numbers)
    return [
        {
            "document": row.id,
            "kind": row.kind,
            "title": row.title,
            "outcome": row.outcome,
            "rules": row.rules.split(),
            "mailbox": row.mailbox_provider,
            "sent_at": row.sent_at.isoformat() if row.sent_at else None,
            "read_at": row.read_at.isoformat() if row.read_at else None,
            "booking_id": row.booking_id,
            "outdated": row.outdated_at is not None,
            "outdated_reason": row.outdated_reason,
        }
        for row in rows
    ]


def _notifications(store: Any, profile: PersonProfile) -> list[dict[str, Any]]:
    """SMS reminders and notices about the person or to them (as guardian or proxy), newest
    first: planned, sent, cancelled or skipped, each with the rules and why. Never the mobile
    number or the text (neither is stored)."""
    numbers = sorted({profile.asked.value, profile.current.value})
    with store.connect() as conn:
        rows = notification_store.for_patient(conn, numbers)

    def at(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return [
        {
            "notification": row["id"],
            "kind": row["kind"],
            "about": {row["subject"]: row["subject_id"]},
            "about_this_person": row["patient_value"] in numbers,
            "to": row["role"],
            "state": row["state"],
            "due_at": at(row["due_at"]),
            "sent_at": at(row["sent_at"]),
            "rules": row["rules"].split(),
            "why": row["reason"],
            "attempts": row["attempts"],
            "last_error": row["last_error"],
        }
        for row in rows
    ]


def profile_json(
    mappings: Mappings,
    profile: PersonProfile,
    bookings: list[dict[str, Any]],
    letters: list[dict[str, Any]] | None = None,
    notices: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "identifier": _identifier(mappings, profile.asked),
        "current_identifier": _identifier(mappings, profile.current)
        if profile.current != profile.asked
        else None,
        # R-ID-5 the other way: the old numbers the one in use replaced.
        "former_identifiers": [_identifier(mappings, p) for p in profile.former],
        "name": profile.name,
        "address": _address(profile.address),
        "age": profile.age,
        "flags": {
            "in_register": profile.in_register,
            "protection": profile.protection,
            "protected": profile.protected,
            "deceased": profile.deceased,
            "deceased_date": profile.deceased_date.isoformat() if profile.deceased_date else None,
            "emigrated": profile.emigrated,
            "deregistration_date": (
                profile.deregistration_date.isoformat() if profile.deregistration_date else None
            ),
            "reservnummer": profile.reservnummer,
            "changed_number": profile.changed_number,
        },
        "guardians_automatic": profile.guardians_automatic,
        "mailbox_allowed": profile.mailbox_allowed,
        "account": {
            "status": profile.account,
            "locked": profile.locked,
            "listing_unit": profile.listing_unit,
            "sms_consent": profile.sms_consent,
            "proxies": [
                {
                    "identifier": _identifier(mappings, p.person) if p.person else HIDDEN,
                    "relation": p.relation,
                    "blocked": p.blocked,
                    "active": p.active,
                    "protected": p.protected,
                }
                for p in profile.proxies
            ],
        },
        "bookings": bookings,
        "documents": letters or [],
        "notifications": notices or [],
    }


async def person_view(state: Any, store: Engine, person_id: str) -> dict[str, Any]:
    """The staff view of a person (the JSON route and the console both show this)."""
    mappings: Mappings = state.mappings
    register: PopulationRegister = state.register
    accounts: AccountDirectory = state.accounts
    try:
        asked = mappings.recognise(person_id)
    except InvalidIdentifier as exc:
        raise InvalidRequest(f"patient id: {exc}") from exc
    resolved = await resolve(register, asked)
    # R-ID-2: a reservnummer has no BankID, so no account to ask for.
    account = no_account(asked) if asked.is_reservnummer else await accounts.account(resolved.current)
    # R-ID-3: a guardian or proxy with a protected identity is not named beside the person.
    named = [p.person for p in account.proxies]
    answers = await asyncio.gather(*(resolve(register, p) for p in named))
    today: date = datetime.now(UTC).date()
    profile = person_profile(
        asked, resolved.current, resolved.record, account, today, dict(zip(named, answers, strict=True))
    )
    bookings = await run_in_threadpool(_bookings, store, profile)
    letters = await run_in_threadpool(_documents, store, profile)
    notices = await run_in_threadpool(_notifications, store, profile)
    return profile_json(mappings, profile, bookings, letters, notices)


@router.get("/patients/{person_id}", summary="A person as the register and the platform know them")
async def get_patient(person_id: str, request: Request, store: StoreDep) -> JSONResponse:
    return JSONResponse(await person_view(request.app.state, store, person_id))


async def refresh_person(state: Any, store: Engine, person_id: str, unit: str | None) -> RefreshResult:
    """R-BK-4 for the JSON route and the console's "Uppdatera nu"."""
    mappings: Mappings = state.mappings
    try:
        person = mappings.recognise(person_id)
    except InvalidIdentifier as exc:
        raise InvalidRequest(f"patient id: {exc}") from exc
    return await refresh_bookings(
        person, unit, client=state.journal_service, intake=state.intake, engine=store, mappings=mappings
    )


@router.post(
    "/patients/{person_id}/refresh-bookings",
    summary="Fetch the patient's bookings from the journal again and repair what the gateway missed",
)
async def refresh_patient_bookings(
    person_id: str,
    request: Request,
    store: StoreDep,
    unit: Annotated[str | None, Query(description="HSA-id of the unit (default: known units)")] = None,
) -> JSONResponse:
    """R-BK-4 ("Uppdatera nu"): each missing or changed booking becomes a message like any other."""
    result = await refresh_person(request.app.state, store, person_id, unit)
    return JSONResponse(
        {
            "created": result.created,
            "updated": result.updated,
            "unchanged": result.unchanged,
            "message_ids": list(result.message_ids),
            "already_sent": result.already_sent,
            "refused": list(result.refused),
            "cancelled": result.cancelled,
        }
    )
