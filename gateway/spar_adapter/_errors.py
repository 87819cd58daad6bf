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

The decisions and their wording are the one table every SOAP adapter shares (gateway/soap.py);
messages carry the exception type and status, never a response body (it may hold names).
"""

from __future__ import annotations

from gateway import soap
from gateway.errors import UpstreamError


def translate_exception(exc: BaseException) -> UpstreamError | None:
    """The gateway's error for a library exception; ``None`` for anything else (a bug: let it out)."""
    return soap.translate(exc, "SPAR")
