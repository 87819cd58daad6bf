"""The citizen platform's account service (HTTP/JSON), behind the ``AccountDirectory`` port.

Contract and behaviour: ``docs/accounts.md``. Every failure leaves as a ``gateway.errors``
``TransientUpstreamError`` (retry later) or ``PermanentUpstreamError`` (don't), never as an
httpx or pydantic exception.
"""

from gateway.accounts_adapter._client import AccountsClient
from gateway.accounts_adapter._settings import AccountsSettings

__all__ = ["AccountsClient", "AccountsSettings"]
