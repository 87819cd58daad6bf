"""One decision per SOAP-layer exception (zeep, and lxml below it), shared by every SOAP adapter
(SPAR, the mailbox services, the journal's booking service).

Each adapter words its own message; whether a failure is *transient* (the booking or letter
waits and is tried again) or *permanent* (the same question gets the same answer) is decided
here, once:

- An answer that is not XML, or XML that is not a SOAP envelope (``XMLSyntaxError``: a cut-off
  body, a proxy's error page), is transient. The same bytes would never parse, but a retry does
  not parse the same bytes: it asks again, and a damaged transfer or something other than the
  service answering is a failure of the channel (docs/spar.md, docs/mailbox.md). Retries are
  bounded, so an answer that is always broken still ends as a failure.
- Well-formed SOAP that breaks the contract (schema, unknown element or namespace, a DTD or
  entities, a bad signature) and a broken or incomplete WSDL are permanent: deterministic.
- ``TransportError`` is decided by its HTTP status (5xx/408/429 transient, other errors
  permanent; a 2xx whose body is not XML is a damaged transfer: transient). ``Fault`` by its
  faultcode (``Server`` transient, the rest is our request's: permanent), unless the adapter
  reads the fault's detail first (the mailbox services' numeric ``applicationFault``).
- httpx's exceptions are decided in :mod:`gateway.http_errors`, a timeout around one attempt is
  transient.

:func:`translate` words and decides all of it, once, for every SOAP adapter; an adapter only
names its service and, if it has one, its own fault reader. Messages carry the exception type,
status and fault code, never a body (it may hold names). A test fails when zeep or lxml define
an exception with no decision or no wording here.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

from lxml import etree
from zeep import exceptions as zeep_exc

from gateway import http_errors
from gateway.errors import PermanentUpstreamError, TransientUpstreamError, UpstreamError

T = TransientUpstreamError
P = PermanentUpstreamError

#: Every exception zeep defines, and lxml's that may escape it, with its class.
DECISIONS: dict[type[BaseException], type[UpstreamError]] = {
    zeep_exc.Error: P,
    zeep_exc.TransportError: T,  # by HTTP status in the adapters
    zeep_exc.Fault: T,  # by faultcode in the adapters
    zeep_exc.XMLSyntaxError: T,
    zeep_exc.XMLParseError: P,
    zeep_exc.UnexpectedElementError: P,
    zeep_exc.WsdlSyntaxError: P,
    zeep_exc.LookupError: P,
    zeep_exc.NamespaceError: P,
    zeep_exc.ValidationError: P,
    zeep_exc.SignatureVerificationFailed: P,
    zeep_exc.IncompleteMessage: P,
    zeep_exc.IncompleteOperation: P,
    zeep_exc.DTDForbidden: P,
    zeep_exc.EntitiesForbidden: P,
    zeep_exc.ExternalReferenceForbidden: P,
    etree.XMLSyntaxError: T,
    etree.LxmlError: P,
    etree.Error: P,
}


def decision(exc: BaseException) -> type[UpstreamError] | None:
    """The class for a zeep or lxml exception (its most specific decided class); None: not one."""
    for cls in type(exc).__mro__:
        found = DECISIONS.get(cls)
        if found is not None:
            return found
    return None


def transient(cls: type[BaseException]) -> bool:
    return DECISIONS[cls] is TransientUpstreamError


#: What the message says for each decided class (the HTTP status and the fault are worded below).
WORDING: dict[type[BaseException], str] = {
    zeep_exc.XMLSyntaxError: "answer is not a SOAP envelope",
    zeep_exc.XMLParseError: "answer breaks the schema",
    zeep_exc.ValidationError: "request or answer breaks the schema",
    zeep_exc.UnexpectedElementError: "answer breaks the schema",
    zeep_exc.LookupError: "answer uses an unknown type or element",
    zeep_exc.NamespaceError: "answer uses an unknown namespace",
    zeep_exc.DTDForbidden: "answer carries a DTD (refused)",
    zeep_exc.EntitiesForbidden: "answer declares entities (refused)",
    zeep_exc.ExternalReferenceForbidden: "answer refers to external documents (refused)",
    zeep_exc.SignatureVerificationFailed: "answer signature does not verify",
    zeep_exc.WsdlSyntaxError: "contract (WSDL) is broken",
    zeep_exc.IncompleteMessage: "contract (WSDL) is incomplete",
    zeep_exc.IncompleteOperation: "contract (WSDL) is incomplete",
    zeep_exc.TransportError: "answered with an error and no SOAP envelope",
    zeep_exc.Fault: "SOAP Fault",
    zeep_exc.Error: "SOAP client error",
    etree.XMLSyntaxError: "answer is not XML",
    etree.LxmlError: "answer could not be read as XML",
    etree.Error: "answer could not be read as XML",
}

#: An adapter's own reading of a Fault (its detail); ``None``: decide by the faultcode.
FaultReader = Callable[[zeep_exc.Fault, str], UpstreamError | None]


def describe(exc: BaseException) -> str:
    """Type and first line of an exception, and the TLS reason when a handshake failed below it."""
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
    if status is not None and 200 <= status < 300:
        # zeep says TransportError for a 2xx whose body is not XML: a damaged transfer.
        return TransientUpstreamError(f"{what} answered HTTP {status} with a body that is not XML")
    text = f"{what} {WORDING[zeep_exc.TransportError]} (HTTP {status})"
    if status is not None and http_errors.status_error_class(status) is TransientUpstreamError:
        return TransientUpstreamError(text)
    return PermanentUpstreamError(text)


def _by_faultcode(exc: zeep_exc.Fault, what: str) -> UpstreamError:
    faultcode = str(exc.code or "").rsplit(":", 1)[-1].rsplit("}", 1)[-1]
    text = f"{what} SOAP Fault {faultcode or '(no faultcode)'}: {(exc.message or '')[:200]}"
    if faultcode == "Server":
        return TransientUpstreamError(text)
    return PermanentUpstreamError(text)  # Client, VersionMismatch, MustUnderstand: our request


def translate(exc: BaseException, what: str, *, fault: FaultReader | None = None) -> UpstreamError | None:
    """The gateway's error for an exception met calling a SOAP service named ``what``.

    ``None`` for an exception that is not the channel's or the library's (a bug: let it out).
    """
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, TimeoutError):  # the deadline around one attempt
        return TransientUpstreamError(f"{what} timed out")
    if isinstance(exc, http_errors.HTTPX_ERRORS):
        return http_errors.error_class(exc)(f"{what} {http_errors.wording(exc)}: {describe(exc)}")
    if isinstance(exc, zeep_exc.TransportError):
        return _by_status(exc.status_code, what)
    if isinstance(exc, zeep_exc.Fault):
        read = fault(exc, what) if fault is not None else None
        return read if read is not None else _by_faultcode(exc, what)
    for cls in type(exc).__mro__:
        found = DECISIONS.get(cls)
        if found is not None:
            return found(f"{what} {WORDING[cls]}: {describe(exc)}")
    return None
