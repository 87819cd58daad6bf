"""Settings: flags > environment (``GATEWAY_`` prefix) > defaults. Built once, by the entry points.

Two parts: :class:`Settings` (the gateway's own, ``GATEWAY_*``) and :class:`AdapterSettings` (each
outside system's, ``GATEWAY_SPAR_*``, ``GATEWAY_ACCOUNTS_*``, ``GATEWAY_MAILBOX_*``,
``GATEWAY_JOURNAL_WS_*``, ``GATEWAY_SMS_*``, ``GATEWAY_CONSOLE_*``, ``GATEWAY_OIDC_*``). The entry
points build both and pass them to ``bootstrap.build``/``build_worker``; tests may pass their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.domain.documents import NO_EXCEPTIONS, DocumentKind, UnitExceptions
from gateway.errors import ConfigurationError
from gateway.mappings import DEFAULT_DIR

if TYPE_CHECKING:
    from gateway.accounts_adapter import AccountsSettings
    from gateway.api.console.settings import ConsoleSettings, OidcSettings
    from gateway.journal_adapter.booking_service import JournalServiceSettings
    from gateway.mailbox_adapter import MailboxSettings
    from gateway.sms_adapter import SmsSettings
    from gateway.spar_adapter import SparSettings


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
    http_read_timeout: float = Field(
        30.0, gt=0, description="Seconds the next part of an HTTP request body may take to arrive; 408."
    )
    mllp_host: str = "127.0.0.1"
    mllp_port: int = 2575
    mllp_idle_timeout: float = Field(
        300.0, gt=0, description="Seconds an MLLP connection may wait between frames before it is closed."
    )
    mllp_read_timeout: float = Field(
        30.0,
        gt=0,
        description="Seconds a started MLLP frame may take to arrive whole (slow senders), and a TLS "
        "handshake, and a sender to read its ACKs; then the connection is dropped.",
    )
    mllp_max_connections: int = Field(
        512, gt=0, description="MLLP connections served at once; one more is accepted and closed at once."
    )
    mllp_tls_cert: Path | None = Field(
        None, description="Server certificate (PEM, chain after it) for MLLP over TLS; none: plain TCP."
    )
    mllp_tls_key: Path | None = Field(None, description="Its private key (PEM); may be inside mllp_tls_cert.")
    mllp_tls_client_ca: Path | None = Field(
        None, description="CA (PEM) whose client certificates are required and verified (mutual TLS)."
    )
    mllp_allowed_senders: list[str] = Field(
        default_factory=list,
        description="Who may send (MLLP and POST /journal/hl7): JSON list of 'APP|FACILITY' (MSH-3.1, "
        "MSH-4.1) or 'APP|*'; others get AR. Empty: everyone.",
    )
    hl7_app_ack_endpoints: dict[str, str] = Field(
        default_factory=dict,
        description="Enhanced acknowledgement mode (MSH-15/16): where each sender takes its application "
        "ACKs, JSON {'APP|FACILITY' or 'APP|*': 'host:port'} (MLLP); docs/hl7-profile.md 5.4.",
    )
    max_message_bytes: int = Field(1_048_576, gt=0)
    max_body_bytes: int = Field(
        262_144,
        gt=0,
        description="Largest HTTP request body but POST /journal/hl7's (that is max_message_bytes); 413.",
    )
    mappings_dir: Path = DEFAULT_DIR
    metrics_host: str = Field("127.0.0.1", description="Address of the metrics port.")
    metrics_port: int | None = Field(
        None,
        ge=0,
        description="Serve GET /metrics without authentication on this port too, for Prometheus "
        "(docs/operations.md); none: only the API's /metrics, which needs an admin token.",
    )
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
    worker_batch: int = Field(
        500,
        gt=0,
        description="Most messages one processing transaction takes. Larger batches share index pages "
        "and the commit, so the worker holds the store's write lock less per message (bench/README.md).",
    )
    worker_poll_interval: float = Field(1.0, gt=0)
    self_service_in_flight: float = Field(
        60.0,
        gt=0,
        description="Seconds a self-service command sent to the journal may still have its call in "
        "flight (longer than the journal's timeout): a retry within it is told to wait; after it (a "
        "gateway killed mid-call) the journal is asked whether the change was made (R-BK-11).",
    )
    self_service_sweep_interval: float = Field(
        60.0,
        ge=0,
        description="Seconds between sweeps that close the self-service commands a gateway stopped "
        "mid-call left pending, by asking the journal (GetBookings); 0: only the citizen's retry does.",
    )
    worker_gather: float = Field(
        0.2,
        ge=0,
        description="Seconds the worker lets work gather after a partial batch before it claims "
        "again: under load, fewer and larger transactions (0: claim at once).",
    )
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

    @field_validator("mllp_allowed_senders")
    @classmethod
    def _senders_are_app_bar_facility(cls, senders: list[str]) -> list[str]:
        for sender in senders:
            app, bar, facility = sender.partition("|")
            if not bar or not app or not facility or "|" in facility or app == "*":
                raise ValueError(f"{sender!r} is not 'APP|FACILITY' or 'APP|*'")
        return senders

    @field_validator("hl7_app_ack_endpoints")
    @classmethod
    def _endpoints_are_host_port(cls, endpoints: dict[str, str]) -> dict[str, str]:
        for sender, endpoint in endpoints.items():
            host, _, port = endpoint.rpartition(":")
            if "|" not in sender or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{sender!r}: {endpoint!r} is not 'APP|FACILITY': 'host:port'")
        return endpoints

    @model_validator(mode="after")
    def _mllp_tls_files_fit(self) -> Settings:
        if (self.mllp_tls_key or self.mllp_tls_client_ca) and self.mllp_tls_cert is None:
            raise ValueError("mllp_tls_key and mllp_tls_client_ca need mllp_tls_cert")
        for name in ("mllp_tls_cert", "mllp_tls_key", "mllp_tls_client_ca"):
            path: Path | None = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: no such file: {path}")
        return self

    def unit_rules(self, unit_hsa_id: str | None) -> UnitExceptions:
        rule = self.unit_exceptions.get(unit_hsa_id or "")
        if rule is None:
            return NO_EXCEPTIONS
        return UnitExceptions(frozenset(rule.print_kinds), rule.no_mailbox, rule.note)

    def database_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite:///{(self.data_dir / 'gateway.db').as_posix()}"


class AdapterSettings:
    """The outside systems' settings, one tree for the process.

    Each part given here is used as it is (tests, code); a part not given is read from its
    environment variables the first time it is asked for, and kept: an adapter a test replaces
    is never read, so its variables cannot stop the start (as before the tree). The worker
    process builds its own tree from its own environment.
    """

    def __init__(
        self,
        *,
        spar: SparSettings | None = None,
        accounts: AccountsSettings | None = None,
        mailbox: MailboxSettings | None = None,
        journal: JournalServiceSettings | None = None,
        sms: SmsSettings | None = None,
        console: ConsoleSettings | None = None,
        oidc: OidcSettings | None = None,
    ) -> None:
        self._spar = spar
        self._accounts = accounts
        self._mailbox = mailbox
        self._journal = journal
        self._sms = sms
        self._console = console
        self._oidc = oidc

    @property
    def spar(self) -> SparSettings:
        """``GATEWAY_SPAR_*``: the population register (SPAR)."""
        if self._spar is None:
            from gateway.spar_adapter import SparSettings

            self._spar = SparSettings()
        return self._spar

    @property
    def accounts(self) -> AccountsSettings:
        """``GATEWAY_ACCOUNTS_*``: the citizen accounts directory."""
        if self._accounts is None:
            from gateway.accounts_adapter import AccountsSettings

            self._accounts = AccountsSettings()
        return self._accounts

    @property
    def mailbox(self) -> MailboxSettings:
        """``GATEWAY_MAILBOX_*``: Mina meddelanden (the directory and the operators)."""
        if self._mailbox is None:
            from gateway.mailbox_adapter import MailboxSettings

            self._mailbox = MailboxSettings()
        return self._mailbox

    @property
    def journal(self) -> JournalServiceSettings:
        """``GATEWAY_JOURNAL_WS_*``: the journal's booking service."""
        if self._journal is None:
            from gateway.journal_adapter.booking_service import JournalServiceSettings

            self._journal = JournalServiceSettings()
        return self._journal

    @property
    def sms(self) -> SmsSettings:
        """``GATEWAY_SMS_*``, checked at start: a sender name over 11 characters stops it (R-NOT-3)."""
        if self._sms is None:
            from gateway.sms_adapter import SmsSettings

            try:
                self._sms = SmsSettings()
            except ValidationError as exc:
                raise ConfigurationError(f"SMS settings (GATEWAY_SMS_*) are invalid: {exc}") from exc
        return self._sms

    @property
    def console(self) -> ConsoleSettings:
        """``GATEWAY_CONSOLE_*``: the staff console."""
        if self._console is None:
            from gateway.api.console.settings import ConsoleSettings

            self._console = ConsoleSettings()
        return self._console

    @property
    def oidc(self) -> OidcSettings:
        """``GATEWAY_OIDC_*``: the console's identity provider."""
        if self._oidc is None:
            from gateway.api.console.settings import OidcSettings

            self._oidc = OidcSettings()
        return self._oidc
