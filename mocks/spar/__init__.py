"""SPAR PersonSök (the population register) as a SOAP 1.1 mock with its own WSDL and XSD.

Contract and switches: ``docs/spar.md``. Answers from the one test population
(``mocks/persons.yaml``, or ``GATEWAY_MOCK_PERSONS``); serve it with ``mocks.runner.ServedApp``
(``TlsFiles(client_ca=...)`` makes it demand a client certificate, as SPAR does).
"""

from mocks.spar.app import PATH, SOAP_ACTION, SWITCHES_PATH, WSDL_DIR, Switches, create_app

__all__ = ["PATH", "SOAP_ACTION", "SWITCHES_PATH", "WSDL_DIR", "Switches", "create_app"]
