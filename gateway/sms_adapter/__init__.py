"""An SMS provider with a 46elks-style HTTP API, behind the ``SmsSender`` port (R-NOT-3, R-NOT-5).

Every failure leaves as a ``gateway.errors`` ``TransientUpstreamError`` (retry later) or
``PermanentUpstreamError`` (don't), never as an httpx or pydantic exception.
"""

from gateway.sms_adapter._client import ElksSmsClient
from gateway.sms_adapter._settings import SmsSettings

__all__ = ["ElksSmsClient", "SmsSettings"]
