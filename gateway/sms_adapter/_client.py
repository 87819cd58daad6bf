"""A 46elks-style SMS API: ``POST /a1/sms`` to send, ``GET /a1/sms`` for the history.

46elks (https://46elks.se/docs/send-sms) takes ``from`` (an alphanumeric sender of at most 11
characters, R-NOT-3, or a number), ``to`` (E.164) and ``message`` as a form, HTTP Basic auth,
and answers with the SMS's ``id``. It documents no idempotency key. What this adapter relies on
for exactly once (docs/notifications.md):

- ``find_sent``: the history (``GET /a1/sms?to=...&end=<since>``, newest first, 100 a page)
  lists what the account sent to that number after a time; an SMS with the same text from the
  same sender is the one we sent before a crash.
- ``Idempotency-Key`` header on every send: ignored by 46elks, honoured by the built-in mock.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from gateway.domain.sms import OutgoingSms, SmsReceipt
from gateway.errors import ConfigurationError, PermanentUpstreamError
from gateway.http_errors import HTTPX_ERRORS, status_error_class, translate
from gateway.sms_adapter._settings import SmsSettings

NAME = "sms"
SEND_PATH = "/a1/sms"


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Sent(_Wire):
    id: str


class _HistoryItem(_Wire):
    id: str
    created: str = ""
    direction: str = "outgoing"
    to: str = ""
    message: str = ""
    status: str = ""


class _History(_Wire):
    data: list[_HistoryItem] = []
    next: str | None = None


class ElksSmsClient:
    """Sends over an injected ``httpx.AsyncClient`` (the caller owns and closes it)."""

    def __init__(self, settings: SmsSettings, http: httpx.AsyncClient) -> None:
        if settings.url is None:
            raise ConfigurationError("sms: no provider URL (GATEWAY_SMS_URL)")
        self._base = str(settings.url).rstrip("/")
        self._http = http
        self._auth = httpx.BasicAuth(settings.username, settings.password.get_secret_value())
        self._timeout = httpx.Timeout(settings.timeout)

    async def send(self, sms: OutgoingSms) -> SmsReceipt:
        what = f"{NAME}: POST {SEND_PATH}"  # never the number or the text
        try:
            response = await self._http.post(
                self._base + SEND_PATH,
                data={"from": sms.sender, "to": sms.to, "message": sms.text},
                headers={"Idempotency-Key": sms.idempotency_key},
                auth=self._auth,
                timeout=self._timeout,
            )
        except HTTPX_ERRORS as exc:
            raise translate(exc, what) from exc
        if response.status_code != 200:
            raise status_error_class(response.status_code)(f"{what}: HTTP {response.status_code}")
        try:
            return SmsReceipt(_Sent.model_validate_json(response.content).id)
        except ValidationError as exc:
            raise PermanentUpstreamError(f"{what}: the answer carries no SMS id") from exc

    async def find_sent(self, sms: OutgoingSms, since: datetime) -> SmsReceipt | None:
        what = f"{NAME}: GET {SEND_PATH}"
        # 46elks: "end" = retrieve SMS after this date (UTC, no zone); newest first.
        after = since.astimezone(UTC).replace(tzinfo=None).isoformat()
        params = {"to": sms.to, "end": after, "limit": "100"}
        try:
            response = await self._http.get(
                self._base + SEND_PATH, params=params, auth=self._auth, timeout=self._timeout
            )
        except HTTPX_ERRORS as exc:
            raise translate(exc, what) from exc
        if response.status_code != 200:
            raise status_error_class(response.status_code)(f"{what}: HTTP {response.status_code}")
        try:
            history = _History.model_validate_json(response.content)
        except ValidationError as exc:
            raise PermanentUpstreamError(f"{what}: the answer is not an SMS history") from exc
        for item in history.data:
            if item.direction == "outgoing" and item.to == sms.to and item.message == sms.text:
                return SmsReceipt(item.id)
        return None
