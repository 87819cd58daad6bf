"""What every SOAP 1.1 mock does first with a request: the one element in its Body, or why not."""

from __future__ import annotations

from typing import Any

from fastapi import Body, FastAPI
from lxml import etree
from pydantic import BaseModel, ValidationError
from starlette.responses import JSONResponse, Response

NS_SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)

#: A SOAP fault to answer: (faultcode, faultstring).
Fault = tuple[str, str]


def request_element(
    body: bytes, given_action: str | None, action: str, *, what: str
) -> etree._Element | Fault:
    """The single request element of a SOAP 1.1 envelope, or the fault for what is wrong:
    SOAPAction, well-formedness (no entities, no network), envelope version, Body content.
    ``what`` names the element the Body must hold, for the fault text."""
    if given_action is None or given_action.strip('"') != action:
        return ("Client", f"SOAPAction must be {action!r}, got {given_action!r}")
    try:
        document = etree.fromstring(body, PARSER)
    except etree.XMLSyntaxError as exc:
        return ("Client", f"request is not well-formed XML: {exc}")
    if document.tag != f"{{{NS_SOAP}}}Envelope":
        if etree.QName(document).localname == "Envelope":
            return ("VersionMismatch", "only SOAP 1.1 envelopes are understood")
        return ("Client", "request is not a SOAP envelope")
    soap_body = document.find(f"{{{NS_SOAP}}}Body")
    children = [] if soap_body is None else [c for c in soap_body if isinstance(c.tag, str)]
    if len(children) != 1:
        return ("Client", f"the SOAP Body must hold exactly {what}")
    return children[0]


def add_switch_routes(app: FastAPI, path: str, state: BaseModel) -> None:
    """``GET path`` shows a mock's run-time switches, ``PUT path`` changes some of them (checked
    as a whole by the switches' own model; 422 naming what is wrong)."""

    @app.get(path)
    async def get_switches() -> JSONResponse:
        return JSONResponse(state.model_dump())

    @app.put(path)
    async def put_switches(changes: dict[str, Any] = Body(...)) -> Response:  # noqa: B008
        try:
            checked = type(state).model_validate(state.model_dump() | changes)
        except ValidationError as exc:
            return JSONResponse({"detail": exc.errors(include_url=False)}, status_code=422)
        for key in changes:
            setattr(state, key, getattr(checked, key))
        return JSONResponse(state.model_dump())
