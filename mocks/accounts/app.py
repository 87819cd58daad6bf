"""The account service mock: one FastAPI app per population, with run-time state and switches."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Literal

from fastapi import FastAPI, Header, HTTPException, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from mocks import population as population_file
from mocks.population import AccountStatus, IdType, Population, TestPerson

PREFIX = "/accounts/v1"
STAFF_HEADER = "X-Staff-Id"
#: What ``malformed_json`` answers: a body cut off mid-way, served complete with status 200.
MALFORMED_BODY = b'{"id": "191212121212", "status": "active", "proxies": [{"id": '


class Switches(BaseModel):
    """Failure switches, applied to every ``/accounts/v1`` request (not to ``/accounts/_*``)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    latency: float = Field(0.0, ge=0, description="Seconds to wait before answering.")
    http_500: bool = Field(False, description="Answer 500 Internal Server Error.")
    fail_next: int = Field(0, ge=0, description="Answer 500 to the next N requests, then normally.")
    malformed_json: bool = Field(False, description="Answer 200 with a body that is not JSON.")
    outage: bool = Field(False, description="Answer 503, as a load balancer in front of a dead service.")


class ProxyOut(BaseModel):
    id: str
    id_type: IdType
    relation: Literal["guardian", "proxy"]
    blocked: bool
    #: False when blocked (R-ACC-2) or when the account is locked (R-ACC-1).
    active: bool


class AccountOut(BaseModel):
    id: str
    status: AccountStatus
    listing_unit: str | None
    sms_consent: bool
    mobile: str | None = None
    proxies: list[ProxyOut]


class SmsSettingsIn(BaseModel):
    sms_consent: bool
    mobile: str | None = None


_Next = Callable[[Request], Awaitable[Response]]
PersonPath = Annotated[str, Path(pattern=r"^\d{8}-?\d{4}$", description="12 digits, dash allowed")]


def create_app(population: Population | None = None, switches: Switches | None = None) -> FastAPI:
    """The mock for ``population`` (default: ``mocks.population.load()``, which honours
    ``GATEWAY_MOCK_PERSONS``). Pass ``switches`` to flip failures from a test without HTTP."""
    people = population if population is not None else population_file.load()
    state = switches if switches is not None else Switches()
    statuses: dict[str, AccountStatus] = {p.id: p.account.status for p in people.persons}
    # SMS consent and mobile as changed at run time (the citizen's settings in the platform).
    sms: dict[str, SmsSettingsIn] = {}

    app = FastAPI(title="Citizen platform account service (mock)", version="1")

    def render(person_id: str) -> AccountOut:
        person = people.find(person_id)
        if person is None:
            # The platform simply has no account for someone it has never seen.
            return AccountOut(id=person_id, status="none", listing_unit=None, sms_consent=False, proxies=[])
        status = statuses[person.id]
        return AccountOut(
            id=person.id,
            status=status,
            listing_unit=person.account.listing_unit,
            sms_consent=sms[person.id].sms_consent if person.id in sms else person.account.sms_consent,
            mobile=sms[person.id].mobile if person.id in sms else person.account.mobile,
            proxies=[
                ProxyOut(
                    id=proxy.id,
                    id_type=people.by_id(proxy.id).id_type,
                    relation=proxy.relation,
                    blocked=proxy.blocked,
                    active=status != "locked" and not proxy.blocked,
                )
                for proxy in person.account.proxies
            ],
        )

    def with_account(person_id: str) -> TestPerson:
        person = people.find(person_id)
        if person is None or statuses[person.id] == "none":
            raise HTTPException(404, "the platform has no account for this person")
        return person

    @app.middleware("http")
    async def apply_switches(request: Request, call_next: _Next) -> Response:
        if not request.url.path.startswith(PREFIX):
            return await call_next(request)
        if state.latency:
            await asyncio.sleep(state.latency)
        if state.outage:
            return Response(b"service unavailable", status_code=503, media_type="text/plain")
        if state.fail_next:
            state.fail_next -= 1
            return Response(b'{"error": "internal"}', status_code=500, media_type="application/json")
        if state.http_500:
            return Response(b'{"error": "internal"}', status_code=500, media_type="application/json")
        if state.malformed_json:
            return Response(MALFORMED_BODY, status_code=200, media_type="application/json")
        return await call_next(request)

    @app.get(f"{PREFIX}/persons/{{person_id}}")
    async def get_account(person_id: PersonPath) -> AccountOut:
        return render(person_id.replace("-", ""))

    @app.post(f"{PREFIX}/persons/{{person_id}}/lock")
    async def lock(person_id: PersonPath) -> AccountOut:
        """Lock the account (spärra): nobody logs in, its proxies are deactivated (R-ACC-1)."""
        person = with_account(person_id.replace("-", ""))
        statuses[person.id] = "locked"
        return render(person.id)

    @app.post(
        f"{PREFIX}/persons/{{person_id}}/unlock",
        responses={403: {"description": f"no {STAFF_HEADER}: only staff unlock (R-ACC-1)"}},
    )
    async def unlock(
        person_id: PersonPath,
        staff_id: Annotated[str | None, Header(alias=STAFF_HEADER)] = None,
    ) -> AccountOut:
        """Unlock the account; staff only (R-ACC-1)."""
        if not staff_id or not staff_id.strip():
            raise HTTPException(403, f"only staff unlock an account: send {STAFF_HEADER}")
        person = with_account(person_id.replace("-", ""))
        statuses[person.id] = "active"
        return render(person.id)

    @app.put("/accounts/_sms/{person_id}")
    async def set_sms(person_id: PersonPath, settings: SmsSettingsIn) -> AccountOut:
        """The citizen gives or withdraws the SMS consent, or changes the mobile (R-NOT-1)."""
        person = with_account(person_id.replace("-", ""))
        if "mobile" not in settings.model_fields_set:  # a consent alone keeps the number
            settings = SmsSettingsIn(sms_consent=settings.sms_consent, mobile=render(person.id).mobile)
        sms[person.id] = settings
        return render(person.id)

    @app.get("/accounts/_switches")
    async def get_switches() -> Switches:
        return state

    @app.put("/accounts/_switches")
    async def put_switches(new: Switches) -> Switches:
        """Replace every switch (a field left out goes back to its default)."""
        for name in Switches.model_fields:
            setattr(state, name, getattr(new, name))
        return state

    @app.post("/accounts/_reset")
    async def reset() -> Switches:
        """Every account back to the population file's status, every switch off."""
        statuses.update({p.id: p.account.status for p in people.persons})
        sms.clear()
        return await put_switches(Switches())

    return app
