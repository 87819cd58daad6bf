"""The mailbox adapter's own settings (``GATEWAY_MAILBOX_*``), built once in the composition root."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.domain.documents import MailboxProvider

#: The contracts kept with the code: startup never needs the network to read them.
WSDL_DIR = Path(__file__).resolve().parent / "wsdl"
RECIPIENT_WSDL = WSDL_DIR / "RecipientService.wsdl"
DELIVERY_WSDL = WSDL_DIR / "DeliveryService.wsdl"
#: The most recipients one isReachable call may carry.
MAX_BATCH = 1000


def _default_suppliers() -> dict[str, MailboxProvider]:
    return {p.value: p for p in MailboxProvider}


class MailboxSettings(BaseSettings):
    """Where the recipient service is, who the gateway is as a sender, and how it signs."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_MAILBOX_", extra="forbid", frozen=True)

    url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="The recipient service (isReachable); none: the built-in mock.",
    )
    recipient_wsdl: str = Field(str(RECIPIENT_WSDL), description="WSDL file or URL of the recipient service.")
    delivery_wsdl: str = Field(str(DELIVERY_WSDL), description="WSDL file or URL of the delivery service.")
    sender_org_nr: str = Field("2321000016", pattern=r"^\d{10}$", description="The sender's org number.")
    sender_name: str = Field("Region Stockholm", min_length=1, max_length=100)
    support_text: str = Field(
        "Frågor om brevet? Kontakta mottagningen som skickade det. Se 1177.se.",
        min_length=1,
        description="Supportinfo Text: neutral, shown with every letter.",
    )
    support_url: str | None = Field("https://www.1177.se", pattern=r"^https?://")
    language: str = Field("svSE", min_length=2)
    sign_cert: Path | None = Field(None, description="Sender certificate (PEM); none: a throwaway one.")
    sign_key: Path | None = Field(None, description="Its private key (PEM); may be inside sign_cert.")
    sign_key_password: SecretStr | None = None
    timeout: float = Field(10.0, gt=0, description="Seconds for each HTTP request.")
    retry_attempts: int = Field(3, ge=1, description="Tries per call, transient failures only.")
    retry_backoff: float = Field(0.2, ge=0)
    retry_max_backoff: float = Field(2.0, ge=0)
    breaker_failure_threshold: int = Field(5, ge=1)
    breaker_reset_time: float = Field(30.0, gt=0)
    batch_size: int = Field(MAX_BATCH, ge=1, le=MAX_BATCH, description="Recipients per isReachable call.")
    suppliers: dict[str, MailboxProvider] = Field(
        default_factory=_default_suppliers,
        description="ServiceSupplier Id -> mailbox; an operator not listed counts as no mailbox.",
    )

    @model_validator(mode="after")
    def _signing_files_fit(self) -> MailboxSettings:
        if (self.sign_key is not None or self.sign_key_password is not None) and self.sign_cert is None:
            raise ValueError("sign_key and sign_key_password need sign_cert")
        for name in ("sign_cert", "sign_key"):
            path: Path | None = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: no such file: {path}")
        return self
