"""What every console page shares: the session, the CSRF check, forms, rendering, the audit."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.api import auth
from gateway.errors import GatewayError
from gateway.store import console_sessions
from gateway.store.audit import AuditEvent, AuditWriter

COOKIE = "gateway_console"
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
STOCKHOLM = ZoneInfo("Europe/Stockholm")


def local_time(value: datetime | str | None, seconds: bool = False) -> str:
    """A stored UTC time as staff read it: Swedish local time, ``2026-12-01 09:00``."""
    if value is None or value == "":
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(STOCKHOLM).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


templates.env.filters["tid"] = local_time
_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
#: A form body larger than this is not a console form.
FORM_LIMIT = 256 * 1024


class NotSignedIn(GatewayError):
    """No session, or one that has not finished signing in: go to the sign-in."""


class NotAllowed(GatewayError):
    """Signed in, without the role the page needs (403)."""


class BadForm(GatewayError):
    """A form without, or with a forged, CSRF token (403)."""


@dataclass(frozen=True, slots=True)
class Staff:
    """The signed-in person, as the session keeps them."""

    token: str
    subject: str
    name: str
    roles: tuple[str, ...]
    csrf: str

    @property
    def admin(self) -> bool:
        return auth.ADMIN in self.roles


def now() -> datetime:
    return datetime.now(UTC)


def engine_of(request: Request) -> Any:
    return request.app.state.engine


async def load_session(request: Request) -> tuple[str, dict[str, Any]] | None:
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 200:
        return None

    def load() -> dict[str, Any] | None:
        with engine_of(request).connect() as conn:
            return console_sessions.load(conn, token, now=now())

    data = await run_in_threadpool(load)
    return None if data is None else (token, data)


async def new_session(request: Request, data: dict[str, Any], minutes: int) -> str:
    token = secrets.token_urlsafe(32)
    at = now()

    def create() -> None:
        with engine_of(request).begin() as conn:
            console_sessions.purge_expired(conn, now=at)
            console_sessions.create(conn, token, data, now=at, expires=at + timedelta(minutes=minutes))

    await run_in_threadpool(create)
    return token


async def save_session(request: Request, token: str, data: dict[str, Any]) -> None:
    def save() -> None:
        with engine_of(request).begin() as conn:
            console_sessions.save(conn, token, data)

    await run_in_threadpool(save)


async def end_session(request: Request, token: str) -> None:
    def remove() -> None:
        with engine_of(request).begin() as conn:
            console_sessions.remove(conn, token)

    await run_in_threadpool(remove)


def set_cookie(request: Request, response: Response, token: str, minutes: int) -> None:
    settings = request.app.state.console_settings
    loopback_http = request.url.scheme == "http" and request.url.hostname in _LOOPBACK
    response.set_cookie(
        COOKIE,
        token,
        max_age=minutes * 60,
        path="/console",
        httponly=True,
        secure=not (loopback_http and settings.allow_http_loopback),
        samesite="lax",
    )


def clear_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="lax")


async def signed_in(request: Request) -> Staff:
    """The signed-in person (a dependency of every page but the sign-in's own)."""
    found = await load_session(request)
    if found is None or "subject" not in found[1]:
        raise NotSignedIn("sign in first")
    token, data = found
    staff = Staff(token, data["subject"], data["name"], tuple(data["roles"]), data["csrf"])
    request.state.staff = staff
    if not staff.roles:
        raise NotAllowed("the token carries neither staff nor admin")
    return staff


async def admin_only(request: Request) -> Staff:
    staff = await signed_in(request)
    if not staff.admin:
        raise NotAllowed("this page is for admin")
    return staff


async def form(request: Request, staff: Staff) -> dict[str, list[str]]:
    """The posted form, after checking its CSRF token against the session's."""
    body = await request.body()
    if len(body) > FORM_LIMIT:
        raise BadForm("the form is too large")
    fields: dict[str, list[str]] = {}
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        fields.setdefault(name, []).append(value)
    sent = (fields.get("csrf") or [""])[0]
    if not sent or not hmac.compare_digest(sent.encode(), staff.csrf.encode()):
        raise BadForm("missing or forged CSRF token")
    return fields


def one(fields: dict[str, list[str]], name: str, default: str = "") -> str:
    return (fields.get(name) or [default])[0].strip()


def ids(fields: dict[str, list[str]], name: str = "id") -> list[int]:
    out: list[int] = []
    for raw in fields.get(name, []):
        if not raw.isdigit() or len(raw) > 18:
            raise ValueError(f"not an id: {raw[:20]!r}")
        out.append(int(raw))
    return out


def render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    staff: Staff | None = getattr(request.state, "staff", None)
    return templates.TemplateResponse(
        request, template, {"staff": staff, "path": request.url.path, **context}, status_code=status
    )


# --- the pages' content security policy ------------------------------------------------------

#: The console loads its own style sheet and script and nothing else; no inline code, no frames.
#: The gateway's security headers (gateway/api/headers.py) give the JSON API ``default-src
#: 'none'``; a response that carries its own policy keeps it, so the console's pages send this.
CONSOLE_CSP = b"default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"


class ContentPolicy:
    """Pure ASGI: the console's CSP on every console response (pages, files, errors)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"content-security-policy"
                ]
                message = {**message, "headers": [*headers, (b"content-security-policy", CONSOLE_CSP)]}
            await send(message)

        await self.app(scope, receive, send_with_policy)


# --- the audit trail -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Access:
    resource_type: str
    action: str  # read, search, update
    resource_ids: tuple[str | None, ...] = (None,)
    patient: str | None = None


def audit(request: Request, access: Access) -> None:
    """Note what this page reads or changes; :class:`AuditAfter` writes it with the result."""
    request.state.console_access = access


class AuditAfter:
    """Writes the noted access once the response status is known (as the API's middleware)."""

    def __init__(self, app: ASGIApp, writer: AuditWriter) -> None:
        self.app = app
        self.writer = writer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        at = now()
        status = 500

        async def send_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            state = scope.get("state", {})
            access: Access | None = state.get("console_access")
            staff: Staff | None = state.get("staff")
            if access is not None and staff is not None:
                route: str = getattr(scope.get("route"), "path", None) or scope["path"]
                operator = route.startswith(("/meddelanden", "/logg"))
                client = scope.get("client")
                for rid in access.resource_ids:
                    self.writer.record(
                        AuditEvent(
                            at=at,
                            caller=staff.subject,
                            client="console",
                            scope=auth.ADMIN if operator else auth.STAFF,
                            action=access.action,
                            resource_type=access.resource_type,
                            resource_id=rid,
                            patient=access.patient,
                            purpose="systemförvaltning"
                            if route.startswith(("/meddelanden", "/logg"))
                            else "vård",
                            method=scope["method"],
                            route="/console" + route,
                            query=scope.get("query_string", b"").decode("latin-1")[:4000] or None,
                            result=status,
                            request_id=secrets.token_hex(16),
                            peer=f"{client[0]}:{client[1]}" if client else None,
                        )
                    )
