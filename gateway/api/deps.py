"""Request dependencies as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine

from gateway.errors import GatewayError
from gateway.service.intake import Intake


class NotAcceptable(GatewayError):
    """The client accepts no format the API can produce (406)."""


_FHIR_TYPES = ("application/fhir+json", "application/json", "application/*", "*/*", "json")


def check_accept(request: Request) -> None:
    fmt = request.query_params.get("_format")
    if fmt is not None:
        if fmt not in ("json", "application/json", "application/fhir+json"):
            raise NotAcceptable(f"_format {fmt!r} is not supported; only JSON")
        return
    accept = request.headers.get("accept")
    if not accept:
        return
    for part in accept.split(","):
        media = part.split(";")[0].strip().lower()
        if media in _FHIR_TYPES:
            return
    raise NotAcceptable(f"cannot produce {accept!r}; this server speaks application/fhir+json")


def _store(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _intake(request: Request) -> Intake:
    intake: Intake = request.app.state.intake
    return intake


StoreDep = Annotated[Engine, Depends(_store)]
IntakeDep = Annotated[Intake, Depends(_intake)]
