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
- ``TransportError`` and ``Fault`` are decided further by each adapter (HTTP status, faultcode,
  an application fault's code); the class here is their default.

A test fails when zeep or lxml define an exception with no decision here.
"""

from __future__ import annotations

from lxml import etree
from zeep import exceptions as zeep_exc

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
