"""Settings: flags > environment (``GATEWAY_`` prefix) > defaults. Built once, in bootstrap."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.domain.documents import NO_EXCEPTIONS, DocumentKind, UnitExceptions
from gateway.mappings import DEFAULT_DIR


class UnitRule(BaseModel):
    """One unit's local exceptions (R-DOC-7); see gateway.domain.documents.UnitExceptions."""

    model_config = ConfigDict(extra="forbid")

    print_kinds: list[DocumentKind] = Field(default_factory=list)
    no_mailbox: bool = False
    note: str | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    data_dir: Path = Field(Path("var"), description="Where the embedded SQLite database lives.")
    db_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite under data_dir.")
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    mllp_host: str = "127.0.0.1"
    mllp_port: int = 2575
    mllp_idle_timeout: float = Field(300.0, gt=0)
    max_message_bytes: int = Field(1_048_576, gt=0)
    mappings_dir: Path = DEFAULT_DIR
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
    ack_application: str = "GATEWAY"
    ack_facility: str = "REGION"
    fhir_base_url: str | None = Field(
        None, description="Public base URL of /fhir for links; default from the request."
    )
    mocks: bool = Field(
        True,
        description="Serve the built-in mocks (SPAR, accounts, journal booking service) in-process "
        "for every outside system whose URL is not configured.",
    )
    auth: Literal["required", "off"] = Field(
        "required", description="Bearer tokens on every route but /health; 'off' only for tests."
    )
    auth_public_key: Path | None = Field(None, description="PEM public key of the token issuer.")
    auth_jwks_file: Path | None = Field(None, description="JWKS file with the token issuer's keys.")
    auth_audience: str = Field("gateway", description="The audience (aud) tokens must be for.")
    auth_issuer: str | None = Field(None, description="The issuer (iss) tokens must come from.")
    mocks_host: str = "127.0.0.1"
    mocks_port: int = Field(8089, ge=0, description="One port for every built-in mock (0: any free port).")
    worker_batch: int = Field(200, gt=0)
    worker_poll_interval: float = Field(1.0, gt=0)
    timer_interval: float = Field(
        60.0, gt=0, description="How often the worker runs its timers (the 48-hour unread rule, R-DOC-5)."
    )
    kallelse_booking_wait: float = Field(
        3600.0,
        gt=0,
        description="Seconds a kallelse waits for its booking (TXA-13) to arrive before it fails visibly.",
    )
    outbox_batch: int = Field(20, gt=0, description="Mailbox letters claimed at once by one worker.")
    outbox_concurrency: int = Field(8, gt=0, description="Mailbox deliveries in flight at once.")
    outbox_max_attempts: int = Field(
        8, gt=0, description="Attempts before a letter that meets only transient errors is dead."
    )
    outbox_backoff_initial: float = Field(5.0, gt=0, description="Seconds before the second attempt.")
    outbox_backoff_max: float = Field(600.0, gt=0, description="Longest wait between attempts (seconds).")
    outbox_claim_seconds: float = Field(
        120.0, gt=0, description="How long a claim holds before another worker may take the letter."
    )
    record: bool = Field(
        False, description="Record every call to an outside system with its answer (docs/recording.md)."
    )
    record_retention_days: float = Field(
        14.0, gt=0, description="Days recorded calls are kept; `gateway record prune` deletes older ones."
    )
    offline_recording: Path | None = Field(
        None,
        description="Offline replay: answer every call to an outside system from this recording file "
        "(JSON Lines, docs/recording.md) and contact none of them.",
    )
    unit_exceptions: dict[str, UnitRule] = Field(
        default_factory=dict,
        description="R-DOC-7: local exceptions per unit HSA-id, as JSON in GATEWAY_UNIT_EXCEPTIONS, e.g. "
        '{"SE2321000016-ABCD": {"print_kinds": ["e-brev"], "no_mailbox": true, "note": "paper only"}}',
    )

    def unit_rules(self, unit_hsa_id: str | None) -> UnitExceptions:
        rule = self.unit_exceptions.get(unit_hsa_id or "")
        if rule is None:
            return NO_EXCEPTIONS
        return UnitExceptions(frozenset(rule.print_kinds), rule.no_mailbox, rule.note)

    def database_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite:///{(self.data_dir / 'gateway.db').as_posix()}"
