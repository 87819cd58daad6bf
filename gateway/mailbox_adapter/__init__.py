"""Digital mailboxes (Kivra, Billo, Min Myndighetspost) through Mina meddelanden v3:
zeep on async httpx, retries, circuit breakers, XML-DSig signed deliveries (signxml).

Contract, settings and how the answers read: ``docs/mailbox.md``. The public API is ``__all__``.

    settings = MailboxSettings()                         # GATEWAY_MAILBOX_* from the environment
    directory = MailboxDirectoryClient(settings)         # the MailboxDirectory port
    found = await directory.reachability(persons)        # {PersonId: MailboxReachability}
    delivery = MailboxDeliveryClient(settings, directory=directory)   # the MailboxDelivery port
    receipt = await delivery.deliver(letter)             # MailboxReceipt, or an UpstreamError
"""

from gateway.mailbox_adapter._client import (
    MailboxDeliveryClient,
    MailboxDirectoryClient,
    http_client,
    ssl_context,
    suppliers_from,
)
from gateway.mailbox_adapter._errors import translate_exception
from gateway.mailbox_adapter._settings import (
    CONTRACT_VERSION,
    DELIVERY_WSDL,
    MAX_BATCH,
    RECIPIENT_WSDL,
    WSDL_DIR,
    MailboxSettings,
)
from gateway.mailbox_adapter._signing import SigningIdentity, load_identity, sign_delivery, throwaway_identity
from gateway.mailbox_adapter._suppliers import Supplier, SupplierTable, load_suppliers

__all__ = [
    "CONTRACT_VERSION",
    "DELIVERY_WSDL",
    "MAX_BATCH",
    "RECIPIENT_WSDL",
    "WSDL_DIR",
    "MailboxDeliveryClient",
    "MailboxDirectoryClient",
    "MailboxSettings",
    "SigningIdentity",
    "Supplier",
    "SupplierTable",
    "http_client",
    "load_identity",
    "load_suppliers",
    "sign_delivery",
    "ssl_context",
    "suppliers_from",
    "throwaway_identity",
    "translate_exception",
]
