"""Digital mailboxes on the Mina meddelanden v3 contract: the recipient service (``isReachable``) and one
delivery service (``deliverSecure``) per operator (Kivra, Billo, Min Myndighetspost), SOAP 1.1
with the gateway's own WSDL and XSD, equivalent to the official v3 files.

Contract, switches and the population conventions: ``docs/mailbox.md``. Answers from the one
test population (``mocks/persons.yaml``, or ``GATEWAY_MOCK_PERSONS``); serve it with
``mocks.runner.ServedApp`` or behind the shared port (``mocks.services``).
"""

from mocks.mailbox.app import (
    DELIVER_ACTION,
    DELIVERIES_PATH,
    OPERATORS,
    PREFIX,
    RECIPIENT_ACTION,
    RECIPIENT_PATH,
    SWITCHES_PATH,
    WSDL_DIR,
    ErrorCode,
    Received,
    Recorder,
    Switches,
    create_app,
)

__all__ = [
    "DELIVERIES_PATH",
    "DELIVER_ACTION",
    "OPERATORS",
    "PREFIX",
    "RECIPIENT_ACTION",
    "RECIPIENT_PATH",
    "SWITCHES_PATH",
    "WSDL_DIR",
    "ErrorCode",
    "Received",
    "Recorder",
    "Switches",
    "create_app",
]
