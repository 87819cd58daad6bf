"""Typed settings for the accounts adapter (environment prefix ``GATEWAY_ACCOUNTS_``)."""

from __future__ import annotations

from pydantic import AnyHttpUrl, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AccountsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_ACCOUNTS_", extra="ignore")

    url: AnyHttpUrl | None = Field(
        None,
        description="Base URL of the account service (without /accounts/v1). "
        "Unset: the composition root serves the built-in mock and points here.",
    )
    timeout: float = Field(2.0, gt=0, description="Seconds per attempt (connect, read, write, pool).")
    retries: int = Field(2, ge=0, description="Further attempts after a transient failure (0: none).")
    backoff: float = Field(0.2, ge=0, description="First wait before a retry, seconds; doubles, plus jitter.")
    max_backoff: float = Field(2.0, ge=0, description="Longest wait between attempts, seconds.")
    breaker_failures: int = Field(5, ge=1, description="Failed calls in a row that open the circuit.")
    breaker_reset: float = Field(30.0, gt=0, description="Seconds the circuit stays open before a trial.")
    cache_ttl: float = Field(30.0, ge=0, description="Seconds an answer is reused (0: no cache).")
    cache_size: int = Field(10_000, ge=0, description="Most answers kept (0: no cache).")

    @property
    def attempts(self) -> int:
        return self.retries + 1
