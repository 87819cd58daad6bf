"""Digital mailboxes (Kivra, Billo, Min Myndighetspost) through Mina meddelanden-style services:
zeep on async httpx, retries, circuit breakers, XML-DSig signed deliveries (signxml).

Contract, settings and how the answers read: ``docs/mailbox.md``. The public API is ``__all__``.

    settings = MailboxSettings()                         # GATEWAY_MAILBOX_* from the environment
    directory = MailboxDirectoryClient(settings)         # the MailboxDirectory port
    found = await directory.reachability(persons)        # {PersonId: MailboxReachability}
    delivery = MailboxDeliveryClient(settings, directory=directory)   # the MailboxDelivery port
    receipt = await delivery.deliver(letter)             # MailboxReceipt, or an UpstreamError
"""

from gateway.mailbox_adapter._client import MailboxDeliveryClient, MailboxDirectoryClient, http_client
from gateway.mailbox_adapter._errors import translate_exception
from gateway.mailbox_adapter._settings import (
    DELIVERY_WSDL,
    MAX_BATCH,
    RECIPIENT_WSDL,
    WSDL_DIR,
    MailboxSettings,
)
from gateway.mailbox_adapter._signing import SigningIdentity, load_identity, sign_delivery, throwaway_identity

__all__ = [
    "DELIVERY_WSDL",
    "MAX_BATCH",
    "RECIPIENT_WSDL",
    "WSDL_DIR",
    "MailboxDeliveryClient",
    "MailboxDirectoryClient",
    "MailboxSettings",
    "SigningIdentity",
    "http_client",
    "load_identity",
    "sign_delivery",
    "throwaway_identity",
    "translate_exception",
]
