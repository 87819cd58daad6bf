"""Structured logging (structlog): JSON in production, console in a terminal, masked always.

No log line may carry a full personnummer, a name or an address. Code logs identifiers only
through ``PersonId.masked()``, and as a second line of defence every string value is scanned
for personnummer-shaped digits, and keys that name personal data are masked whole.

Exceptions are formatted to text *before* the masking step (ours and third-party loggers'
alike), so a traceback's message is masked like any value and goes out inside the one JSON
object of its line. Third-party loggers that can carry payloads (SOAP envelopes, a signed
letter, SQL parameters, request bodies) are held at WARNING whatever the level asked for.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import orjson
import structlog

from gateway.domain.identity import mask_ids_in_text

_PERSONAL_KEYS = frozenset(
    {"name", "given", "family", "address", "postal_address", "street", "firstname", "lastname"}
)


#: Third-party loggers that can write message bodies: zeep logs every SOAP envelope, signxml the
#: whole signed mailbox delivery (the letter with name and address, base64), SQLAlchemy the
#: statement parameters, httpcore/hpack the bytes on the wire, multipart the form fields.
PAYLOAD_LOGGERS = (
    "zeep",
    "signxml",
    "xmlsec",
    "sqlalchemy",
    "httpcore",
    "hpack",
    "h11",
    "h2",
    "multipart",
    "python_multipart",
    "websockets",
    "asyncio",
    # The print list's PDF: fpdf2 and fontTools may name the text they lay out.
    "fpdf",
    "fontTools",
    "PIL",
)


def mask_personal_data(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        if key in _PERSONAL_KEYS and value:
            event_dict[key] = "***"
        else:
            event_dict[key] = _masked(value)
    return event_dict


def _masked(value: Any) -> Any:
    """A value with every personnummer-shaped run masked, looking inside lists and dicts."""
    if isinstance(value, str):
        return mask_ids_in_text(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and len(str(abs(value))) in (10, 12):
        return mask_ids_in_text(str(value))
    if isinstance(value, Mapping):
        return {k: "***" if k in _PERSONAL_KEYS and v else _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_masked(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"  # never a body
    return value


def _json(obj: Any, **_: Any) -> str:
    # ``default=str``: a value orjson cannot write is written as text (and was masked as one
    # below), never a "--- Logging error ---" dump past the masking step.
    return orjson.dumps(obj, default=_masked_text).decode()


def _masked_text(value: Any) -> str:
    return mask_ids_in_text(str(value))


def configure(fmt: str = "auto", level: str = "INFO") -> None:
    json_output = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    # Exceptions become text first, then everything is masked: a traceback's message is a value
    # like any other (structlog's own loggers and third-party ones through the same chain).
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        mask_personal_data,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_json)
        if json_output
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    )
    # Everything, ours and third-party (uvicorn, httpx, zeep), goes out through one stdlib handler:
    # one lock per line, so lines from different threads never interleave (a JSON log must be
    # one object per line), and one masking chain.
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
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
    for payloads in PAYLOAD_LOGGERS:
        logging.getLogger(payloads).setLevel(logging.WARNING)
