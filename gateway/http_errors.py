"""httpx's exceptions and bad responses, translated into the gateway's tree at an adapter's edge.

Shared by every adapter that talks HTTP through httpx (accounts, the journal's booking service);
the SPAR adapter keeps its own table because it also words each case for SPAR's operators.

Every exception httpx exports has an explicit entry (a test fails when httpx adds one without a
mapping); base classes are there too so an unmapped newcomer still lands somewhere sensible.
"""

from __future__ import annotations

import httpx

from gateway.errors import PermanentUpstreamError, TransientUpstreamError, UpstreamError

#: What the adapter catches around one HTTP exchange.
HTTPX_ERRORS = (httpx.HTTPError, httpx.InvalidURL, httpx.CookieConflict, httpx.StreamError)

T = TransientUpstreamError
P = PermanentUpstreamError

EXCEPTION_MAP: dict[type[Exception], type[UpstreamError]] = {
    # Timeouts: the service may be slow right now.
    httpx.TimeoutException: T,
    httpx.ConnectTimeout: T,
    httpx.ReadTimeout: T,
    httpx.WriteTimeout: T,
    httpx.PoolTimeout: T,
    # The network or the service is down or restarting.
    httpx.HTTPError: T,
    httpx.RequestError: T,
    httpx.TransportError: T,
    httpx.NetworkError: T,
    httpx.ConnectError: T,
    httpx.ReadError: T,
    httpx.WriteError: T,
    httpx.CloseError: T,
    httpx.ProxyError: T,
    # The server broke the exchange (e.g. closed mid-answer, a truncated body): may pass.
    httpx.RemoteProtocolError: T,
    httpx.ProtocolError: T,
    # Our side is wrong (configuration, a bug): asking again sends the same thing.
    httpx.LocalProtocolError: P,
    httpx.UnsupportedProtocol: P,
    httpx.InvalidURL: P,
    httpx.TooManyRedirects: P,
    httpx.CookieConflict: P,
    httpx.StreamError: P,
    httpx.StreamConsumed: P,
    httpx.StreamClosed: P,
    httpx.ResponseNotRead: P,
    httpx.RequestNotRead: P,
    # A complete answer we cannot decode (bad Content-Encoding): the same next time.
    httpx.DecodingError: P,
    # Only raised by raise_for_status(), which the adapter does not use; classified by status.
    httpx.HTTPStatusError: P,
}


def error_class(exc: Exception) -> type[UpstreamError]:
    """The gateway error class for an httpx exception (most specific mapping in its MRO)."""
    if isinstance(exc, httpx.HTTPStatusError):
        return status_error_class(exc.response.status_code)
    for cls in type(exc).__mro__:
        if cls in EXCEPTION_MAP:
            return EXCEPTION_MAP[cls]
    return PermanentUpstreamError


#: What an operator reads for each case (looked up along the exception's MRO).
WORDING: dict[type[Exception], str] = {
    httpx.TimeoutException: "timed out",
    httpx.ConnectTimeout: "timed out connecting",
    httpx.ReadTimeout: "timed out reading",
    httpx.WriteTimeout: "timed out writing",
    httpx.PoolTimeout: "timed out waiting for a connection",
    httpx.ConnectError: "could not connect",
    httpx.ReadError: "connection failed reading",
    httpx.WriteError: "connection failed writing",
    httpx.CloseError: "connection failed closing",
    httpx.NetworkError: "network error",
    httpx.RemoteProtocolError: "broke the HTTP protocol",
    httpx.ProxyError: "proxy failed",
    httpx.DecodingError: "answer could not be decoded",
    httpx.HTTPStatusError: "answered with an error",
    httpx.LocalProtocolError: "request could not be sent as HTTP",
    httpx.UnsupportedProtocol: "URL has an unsupported scheme",
    httpx.TooManyRedirects: "redirected too many times",
    httpx.InvalidURL: "URL is invalid",
    httpx.HTTPError: "HTTP failure",
}


def wording(exc: Exception) -> str:
    for cls in type(exc).__mro__:
        if cls in WORDING:
            return WORDING[cls]
    return "HTTP client misused"


def translate(exc: Exception, what: str) -> UpstreamError:
    """``raise translate(exc, "accounts: GET ...") from exc`` at the edge."""
    name = type(exc).__name__
    return error_class(exc)(f"{what}: {name}: {exc}" if str(exc) else f"{what}: {name}")


#: 408 Request Timeout and 429 Too Many Requests say "try later" as plainly as a 5xx does.
RETRYABLE_4XX = frozenset({408, 429})


def status_error_class(status: int) -> type[UpstreamError]:
    if status >= 500 or status in RETRYABLE_4XX:
        return TransientUpstreamError
    return PermanentUpstreamError
