"""Typed settings for the SMS adapter (environment prefix ``GATEWAY_SMS_``), checked at start."""

from __future__ import annotations

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.domain.notifications import check_sender


class SmsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_SMS_", extra="ignore")

    url: AnyHttpUrl | None = Field(
        None,
        description="Base URL of a 46elks-style API (https://api.46elks.com). Unset: the "
        "composition root serves the built-in mock and points here.",
    )
    username: str = Field("", description="API username (HTTP Basic).")
    password: SecretStr = Field(SecretStr(""), description="API password (HTTP Basic).")
    sender: str = Field("RegHalland", description="Alphanumeric sender id, at most 11 characters (R-NOT-3).")
    timeout: float = Field(5.0, gt=0, description="Seconds per call.")
    batch_size: int = Field(20, ge=1, description="Due notifications taken per pass.")
    max_attempts: int = Field(8, ge=1, description="Attempts before a notification is dead.")
    backoff_initial: float = Field(10.0, gt=0, description="First wait before a retry, seconds; doubles.")
    backoff_max: float = Field(900.0, gt=0, description="Longest wait between attempts, seconds.")
    claim_seconds: float = Field(
        60.0,
        gt=0,
        description="Seconds an SMS in flight is left alone by other instances; "
        "after a crash it is taken up again then. Longer than TIMEOUT.",
    )
    poll_interval: float = Field(1.0, gt=0, description="Seconds between looks for due notifications.")

    @field_validator("sender")
    @classmethod
    def _sender_fits(cls, value: str) -> str:
        return check_sender(value)  # ValueError -> a settings error naming R-NOT-3

    def require_credentials(self) -> None:
        """A real provider needs credentials; the built-in mock takes none."""
        if not self.username or not self.password.get_secret_value():
            raise ValueError(
                "GATEWAY_SMS_USERNAME and GATEWAY_SMS_PASSWORD are required with GATEWAY_SMS_URL"
            )
