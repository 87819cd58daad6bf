"""httpx, zeep and lxml exceptions -> the gateway's ``UpstreamError`` tree, at the adapter's edge.

The question that decides: is the failure about *this question* (permanent: the same request
gets the same answer, so the booking fails with the reason) or about *the channel or the
service* (transient: the booking waits and is retried, nothing is exposed unchecked)?

- Connection errors, timeouts, a dropped or refused TLS handshake, HTTP 5xx/408/429,
  ``soap:Server`` faults and Undantag GENERELLT_FEL are transient.
- An answer that is not XML at all, or XML that is not a SOAP envelope (a cut-off body, a
  proxy's error page), is transient too: it is a damaged transfer or something other than SPAR
  answering, not SPAR's statement about the person, and asking again usually works. Failing the
  booking for it would turn a network hiccup into manual work.
- Well-formed SOAP that breaks the contract (schema validation, unknown codes, a forbidden DTD)
  is permanent: it is deterministic for that question. So are ``soap:Client`` faults, other 4xx,
  Undantag other than GENERELLT_FEL, and OverstigerMaxAntalSvarsposter (``_translate.py``).

Messages carry the exception type and status, never a response body (it may hold names).
``MAPPING`` is checked for completeness against the libraries' exception classes by a test.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

import httpx
from lxml import etree
from zeep import exceptions as zeep_exc

from gateway import soap
from gateway.errors import PermanentUpstreamError, TransientUpstreamError, UpstreamError

Translate = Callable[[BaseException], UpstreamError]
_RETRYABLE_STATUS = frozenset({408, 429})


def _transient(what: str) -> Translate:
    return lambda exc: TransientUpstreamError(f"SPAR {what}: {_describe(exc)}")


def _permanent(what: str) -> Translate:
    return lambda exc: PermanentUpstreamError(f"SPAR {what}: {_describe(exc)}")


def _decided(cls: type[BaseException], what: str) -> Translate:
    """Worded here, decided once for every SOAP adapter (gateway/soap.py)."""
    return _transient(what) if soap.transient(cls) else _permanent(what)


def _describe(exc: BaseException) -> str:
    tls = _tls_cause(exc)
    if tls is not None:
        return f"{type(exc).__name__} (TLS: {tls})"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _tls_cause(exc: BaseException) -> str | None:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLError):
            return seen.reason or type(seen).__name__
        seen = seen.__cause__ or seen.__context__
    return None


def _by_status(status: int | None, what: str) -> UpstreamError:
    if status is not None and (status >= 500 or status in _RETRYABLE_STATUS):
        return TransientUpstreamError(f"SPAR {what} (HTTP {status})")
    return PermanentUpstreamError(f"SPAR {what} (HTTP {status})")


def _transport_error(exc: BaseException) -> UpstreamError:
    assert isinstance(exc, zeep_exc.TransportError)
    status: int | None = exc.status_code
    if status == 200 or (status is not None and 200 <= status < 300):
        # zeep says TransportError for a 200 whose body is not XML: a damaged transfer.
        return TransientUpstreamError(f"SPAR answered HTTP {status} with a body that is not XML")
    return _by_status(status, "answered with an error and no SOAP envelope")


def _status_error(exc: BaseException) -> UpstreamError:
    assert isinstance(exc, httpx.HTTPStatusError)
    return _by_status(exc.response.status_code, "answered with an error")


def _fault(exc: BaseException) -> UpstreamError:
    assert isinstance(exc, zeep_exc.Fault)
    code = str(exc.code or "").rsplit(":", 1)[-1].rsplit("}", 1)[-1]
    text = f"SPAR SOAP Fault {code or '(no faultcode)'}: {(exc.message or '')[:200]}"
    if code == "Server":
        return TransientUpstreamError(text)
    return PermanentUpstreamError(text)  # Client, VersionMismatch, MustUnderstand: our request


#: Most specific first does not matter: lookup walks the exception's MRO.
MAPPING: dict[type[BaseException], Translate] = {
    # httpx: the channel.
    httpx.TimeoutException: _transient("timed out"),
    httpx.ConnectTimeout: _transient("timed out connecting"),
    httpx.ReadTimeout: _transient("timed out reading"),
    httpx.WriteTimeout: _transient("timed out writing"),
    httpx.PoolTimeout: _transient("timed out waiting for a connection"),
    httpx.NetworkError: _transient("network error"),
    httpx.ConnectError: _transient("could not connect"),
    httpx.ReadError: _transient("connection failed reading"),
    httpx.WriteError: _transient("connection failed writing"),
    httpx.CloseError: _transient("connection failed closing"),
    httpx.RemoteProtocolError: _transient("broke the HTTP protocol"),
    httpx.ProxyError: _transient("proxy failed"),
    httpx.DecodingError: _transient("answer could not be decoded"),
    httpx.HTTPStatusError: _status_error,
    httpx.LocalProtocolError: _permanent("request could not be sent as HTTP"),
    httpx.UnsupportedProtocol: _permanent("URL has an unsupported scheme"),
    httpx.TooManyRedirects: _permanent("redirected too many times"),
    httpx.ProtocolError: _permanent("HTTP protocol error"),
    httpx.TransportError: _transient("transport failed"),
    httpx.RequestError: _transient("request failed"),
    httpx.HTTPError: _transient("HTTP failure"),
    httpx.InvalidURL: _permanent("URL is invalid"),
    httpx.CookieConflict: _permanent("cookie conflict"),
    httpx.StreamError: _permanent("stream misused"),
    httpx.StreamConsumed: _permanent("stream misused"),
    httpx.StreamClosed: _permanent("stream misused"),
    httpx.ResponseNotRead: _permanent("stream misused"),
    httpx.RequestNotRead: _permanent("stream misused"),
    # zeep: the SOAP layer.
    zeep_exc.TransportError: _transport_error,
    zeep_exc.Fault: _fault,
    zeep_exc.XMLSyntaxError: _decided(zeep_exc.XMLSyntaxError, "answer is not a SOAP envelope"),
    zeep_exc.XMLParseError: _decided(zeep_exc.XMLParseError, "answer breaks the schema"),
    zeep_exc.ValidationError: _decided(zeep_exc.ValidationError, "answer breaks the schema"),
    zeep_exc.UnexpectedElementError: _decided(zeep_exc.UnexpectedElementError, "answer breaks the schema"),
    zeep_exc.LookupError: _decided(zeep_exc.LookupError, "answer uses an unknown type or element"),
    zeep_exc.NamespaceError: _decided(zeep_exc.NamespaceError, "answer uses an unknown namespace"),
    zeep_exc.DTDForbidden: _decided(zeep_exc.DTDForbidden, "answer carries a DTD (refused)"),
    zeep_exc.EntitiesForbidden: _decided(zeep_exc.EntitiesForbidden, "answer declares entities (refused)"),
    zeep_exc.ExternalReferenceForbidden: _decided(
        zeep_exc.ExternalReferenceForbidden, "answer refers to external documents (refused)"
    ),
    zeep_exc.SignatureVerificationFailed: _decided(
        zeep_exc.SignatureVerificationFailed, "answer signature does not verify"
    ),
    zeep_exc.WsdlSyntaxError: _decided(zeep_exc.WsdlSyntaxError, "contract (WSDL) is broken"),
    zeep_exc.IncompleteMessage: _decided(zeep_exc.IncompleteMessage, "contract (WSDL) is incomplete"),
    zeep_exc.IncompleteOperation: _decided(zeep_exc.IncompleteOperation, "contract (WSDL) is incomplete"),
    zeep_exc.Error: _decided(zeep_exc.Error, "SOAP client error"),
    # lxml, if it escapes zeep.
    etree.XMLSyntaxError: _decided(etree.XMLSyntaxError, "answer is not XML"),
    etree.LxmlError: _decided(etree.LxmlError, "answer could not be read as XML"),
    etree.Error: _decided(etree.Error, "answer could not be read as XML"),
}


def translate_exception(exc: BaseException) -> UpstreamError | None:
    """The gateway's error for a library exception; ``None`` for anything else (a bug: let it out)."""
    if isinstance(exc, UpstreamError):
        return exc
    for cls in type(exc).__mro__:
        translate = MAPPING.get(cls)
        if translate is not None:
            return translate(exc)
    return None
