"""SPAR PersonSök (the population register) as a SOAP 1.1 mock on the 2021.1 contract (its own copy
of the gateway's contract files).

Contract and switches: ``docs/spar.md``. Answers from the one test population
(``mocks/persons.yaml``, or ``GATEWAY_MOCK_PERSONS``); serve it with ``mocks.runner.ServedApp``
(``TlsFiles(client_ca=...)`` makes it demand a client certificate, as SPAR does).
"""

from mocks.spar.app import (
    CONTRACT_DIR,
    CONTRACT_VERSION,
    NS,
    PATH,
    SOAP_ACTION,
    SWITCHES_PATH,
    Switches,
    answer,
    create_app,
    svarspost,
)

__all__ = [
    "CONTRACT_DIR",
    "CONTRACT_VERSION",
    "NS",
    "PATH",
    "SOAP_ACTION",
    "SWITCHES_PATH",
    "Switches",
    "answer",
    "create_app",
    "svarspost",
]
