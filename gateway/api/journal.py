"""POST /journal/hl7: the HTTP transport of the intake pipeline. The body is ER7, so is the reply."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from gateway.api.audit import note_resource
from gateway.api.deps import IntakeDep
from gateway.fhir.outcome import outcome

router = APIRouter(tags=["Journal"])

_HL7_TYPES = frozenset(
    {
        "application/hl7-v2",
        "x-application/hl7-v2+er7",
        "application/edi-hl7",
        "text/plain",
        "application/octet-stream",
    }
)


@router.post(
    "/journal/hl7",
    summary="Push one HL7 v2 message (ER7); the response body is its ACK",
    response_class=Response,
    responses={200: {"content": {"application/hl7-v2": {}}}},
)
async def push_hl7(request: Request, intake: IntakeDep) -> Response:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype and ctype not in _HL7_TYPES:
        return outcome(415, "not-supported", f"content type {ctype!r} is not HL7 v2; use application/hl7-v2")
    limit: int = request.app.state.settings.max_message_bytes
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return outcome(413, "too-costly", f"message larger than {limit} bytes")
    peer = f"{request.client.host}:{request.client.port}" if request.client else None
    result = await intake.handle(bytes(body), transport="http", peer=peer)
    note_resource(request, result.message_id)
    return Response(result.ack, media_type=f"application/hl7-v2; charset={result.codec}")
