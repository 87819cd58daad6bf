"""The population register adapter: SPAR PersonSök over SOAP 1.1 (zeep on an async httpx client).

Contract (SPAR PersonSök ``CONTRACT_VERSION``, files in ``contract/<version>/``), settings and
resilience numbers: ``docs/spar.md``. The public API is ``__all__``;
everything in the private modules may change.

    settings = SparSettings()                # GATEWAY_SPAR_* from the environment
    register = SparRegister(settings)        # or SparRegister(settings, client=httpx.AsyncClient(...))
    record = await register.lookup(person)   # RegisterRecord | None, or an UpstreamError
"""

from gateway.spar_adapter._contract import CONTRACT_VERSION, CONTRACTS, PACKAGED_WSDL, Contract
from gateway.spar_adapter._errors import translate_exception
from gateway.spar_adapter._register import SparRegister, http_client, ssl_context
from gateway.spar_adapter._settings import SparSettings
from gateway.spar_adapter._translate import translate

__all__ = [
    "CONTRACTS",
    "CONTRACT_VERSION",
    "PACKAGED_WSDL",
    "Contract",
    "SparRegister",
    "SparSettings",
    "http_client",
    "ssl_context",
    "translate",
    "translate_exception",
]
