"""The console's settings: ``GATEWAY_CONSOLE_*`` and its identity provider, ``GATEWAY_OIDC_*``."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_CONSOLE_", extra="ignore")

    enabled: bool = Field(True, description="Serve the staff console under /console.")
    session_minutes: int = Field(480, ge=5, le=1440, description="A sign-in lasts this long (a work day).")
    #: Development only: the session cookie goes without ``Secure`` when, and only when, the
    #: browser reached the console over plain http on a loopback address (127.0.0.1,
    #: localhost). Any other http address gets a Secure cookie, which a browser never sends
    #: back over http, so sign-in there fails closed.
    allow_http_loopback: bool = True


class OidcSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_OIDC_", extra="ignore")

    issuer: str | None = Field(
        None, description="The identity provider's issuer URL; none: the built-in mock (mocks on)."
    )
    client_id: str = "gateway-console"
    client_secret: SecretStr | None = None
    redirect_uri: str | None = Field(
        None, description="Where the provider sends the browser back; none: /console/inloggad as reached."
    )
    scope: str = "openid profile staff admin"
    timeout: float = Field(10.0, gt=0)
