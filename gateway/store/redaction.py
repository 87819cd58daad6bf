"""How a stored message is shown: a protected person's identity never leaves (R-ID-3)."""

from __future__ import annotations

from typing import Any

from gateway.domain.identity import mask_ids_in_text
from gateway.errors import GatewayError
from gateway.journal_adapter import er7

HIDDEN = "Dold uppgift"


def message_view(row: dict[str, Any]) -> dict[str, Any]:
    """A stored message row as shown by the API and the CLI: decoded, restricted parts masked."""
    view = dict(row)
    raw: bytes = view.pop("raw")
    view.pop("dedup_key", None)
    try:
        text, _ = er7.decode(raw)
    except GatewayError:
        text = raw.decode("latin-1")
    if view.get("restricted"):
        segments = [
            f"PID|{HIDDEN}" if s.startswith("PID") else s for s in text.replace("\n", "\r").split("\r")
        ]
        text = "\r".join(segments)
        view["patient"] = mask_ids_in_text(view["patient"]) if view.get("patient") else None
    view["raw"] = text
    return view
