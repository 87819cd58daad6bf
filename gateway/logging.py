"""Structured logging (structlog): JSON in production, console in a terminal, masked always.

No log line may carry a full personnummer, a name or an address. Code logs identifiers only
through ``PersonId.masked()``, and as a second line of defence every string value is scanned
for personnummer-shaped digits, and keys that name personal data are masked whole.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog

from gateway.domain.identity import mask_ids_in_text

_PERSONAL_KEYS = frozenset(
    {"name", "given", "family", "address", "postal_address", "street", "firstname", "lastname"}
)


#: Mobile numbers (E.164 +46..., URL-encoded %2B46..., or 07x...): an SMS adapter's URL or error
#: must not put one in a log (R-NOT-5; docs/notifications.md).
_PHONE = re.compile(r"(?:\+|%2B|(?<!\d)00)46\d{7,10}(?!\d)|(?<!\d)07\d{8}(?!\d)", re.IGNORECASE)


def _mask(text: str) -> str:
    return _PHONE.sub("<phone>", mask_ids_in_text(text))


#: Third-party loggers that dump message bodies (zeep's transport logs every SOAP envelope).
_PAYLOAD_LOGGERS = ("zeep.transports", "httpcore.http11", "httpcore.http2", "hpack")


def mask_personal_data(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        if key in _PERSONAL_KEYS and value:
            event_dict[key] = "***"
        elif isinstance(value, str):
            event_dict[key] = _mask(value)
        elif isinstance(value, int) and not isinstance(value, bool) and len(str(abs(value))) in (10, 12):
            event_dict[key] = mask_ids_in_text(str(value))
    return event_dict


def configure(fmt: str = "auto", level: str = "INFO") -> None:
    json_output = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        mask_personal_data,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=lambda obj, **_: orjson.dumps(obj).decode())
        if json_output
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    # Everything, ours and third-party (uvicorn, httpx, zeep), goes out through one stdlib handler:
    # one lock per line, so lines from different threads never interleave (a JSON log must be
    # one object per line), and one masking chain.
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Loggers that write whole request and response bodies at DEBUG: a SPAR answer carries names
    # and addresses, a letter its text. No log level may let them through.
    for payloads in _PAYLOAD_LOGGERS:
        logging.getLogger(payloads).setLevel(logging.WARNING)
