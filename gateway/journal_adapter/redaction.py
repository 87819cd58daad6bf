"""How a stored message is shown: a protected person's identity never leaves (R-ID-3).

The PID segment (number, name, address) and an MDM letter's content (OBX-5) are shown only
for a message whose patient the register has checked and found unprotected. Everything else
keeps them hidden: a message still waiting for the register, one that failed or was rejected
before any check, and a duplicate (its own row was never checked) could each be about a
protected person.
"""

from __future__ import annotations

from typing import Any

from gateway.domain.identity import mask_ids_in_text
from gateway.errors import GatewayError
from gateway.journal_adapter import er7
from gateway.store.inbox import PROCESSED

HIDDEN = "Dold uppgift"


def _hide(segment: str) -> str:
    """PID whole; an e-document's content (OBX-5: the letter, which names and addresses the
    person in its header, and its attachments) too. The rest says what the message is."""
    if segment.startswith("PID"):
        return f"PID|{HIDDEN}"
    if segment.startswith("OBX") and len(segment) > 3:
        fields = segment.split(segment[3])
        if len(fields) > 5:
            fields[5] = HIDDEN
        return segment[3].join(fields)
    return segment


def message_view(row: dict[str, Any]) -> dict[str, Any]:
    """A stored message row as shown by the API and the CLI: decoded, restricted parts masked."""
    view = dict(row)
    raw: bytes = view.pop("raw")
    view.pop("dedup_key", None)
    try:
        text, _ = er7.decode(raw)
    except GatewayError:
        text = raw.decode("latin-1")
    if view.get("restricted") or view.get("state") != PROCESSED:
        text = "\r".join(_hide(s) for s in text.replace("\n", "\r").split("\r"))
        view["patient"] = mask_ids_in_text(view["patient"]) if view.get("patient") else None
    view["raw"] = text
    return view
