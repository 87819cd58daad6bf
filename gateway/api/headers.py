"""Response headers for every HTTP answer: nothing cached, sniffed or framed (issue 14, point 6).

Nearly every answer carries personal data (a booking, a letter, a person view, an audit row),
and an error can quote the request; so every response, errors included, gets the same headers
rather than a list of routes that might miss one:

- ``Cache-Control: no-store``: no browser, proxy or CDN keeps a copy;
- ``X-Content-Type-Options: nosniff``: JSON is never read as HTML or script;
- ``X-Frame-Options: DENY`` and CSP ``frame-ancestors 'none'``: no page frames the API or its
  docs (clickjacking); the API's own answers also get ``default-src 'none'`` (they load nothing);
  ``/docs`` (Swagger UI, which loads its scripts) only the frame rule;
- ``Referrer-Policy: no-referrer``.

A route that sets one of these itself keeps its own. uvicorn's ``server`` header is switched
off where uvicorn is started (``server_header=False``), the gateway's and the mocks'.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_API_CSP = b"default-src 'none'; frame-ancestors 'none'"
_DOCS_CSP = b"frame-ancestors 'none'"
_COMMON = (
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect"})


def security_headers(path: str) -> list[tuple[bytes, bytes]]:
    """The headers every answer to ``path`` carries (raw ASGI form)."""
    return [*_COMMON, (b"content-security-policy", _DOCS_CSP if path in DOCS_PATHS else _API_CSP)]


class SecurityHeaders:
    """Pure ASGI: adds :func:`security_headers` to each response start."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = security_headers(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in extra if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
