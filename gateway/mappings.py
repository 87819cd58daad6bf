"""Mapping tables (``mappings/*.yaml``, carried inside the package by the wheel;
``GATEWAY_MAPPINGS_DIR`` points at a region's own copy) loaded into typed models and validated at start-up.

The tables are data so a region can change them without touching code; each file names its
source in a comment at its top.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from gateway import yamlio
from gateway.domain import notifications
from gateway.domain.booking import ResourceKind
from gateway.domain.identity import IdKind, PersonId, recognise
from gateway.errors import ConfigurationError

AppointmentStatus = Literal[
    "proposed",
    "pending",
    "booked",
    "arrived",
    "fulfilled",
    "cancelled",
    "noshow",
    "entered-in-error",
    "checked-in",
    "waitlist",
]

#: The tables: the repository's top-level ``mappings/``, which the wheel carries as
#: ``gateway/data/mappings`` (pyproject.toml ``force-include``), so an installed package has them.
_PACKAGED = Path(__file__).resolve().parent / "data" / "mappings"
DEFAULT_DIR = _PACKAGED if _PACKAGED.is_dir() else Path(__file__).resolve().parent.parent / "mappings"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PersonIdentifierMapping(_Strict):
    oid: str
    kind: IdKind
    fhir_system: str
    region: str | None = None
    pattern: str | None = None

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            re.compile(value)
        return value


class HsaMapping(_Strict):
    oids: list[str]
    fhir_system: str


class IdentifierTable(_Strict):
    persons: list[PersonIdentifierMapping]
    hsa: HsaMapping


class TimeType(_Strict):
    display: str
    visible: bool
    kind: Literal["physical", "video", "phone"]
    appointment_type: Literal["ROUTINE", "FOLLOWUP", "CHECKUP", "WALKIN", "EMERGENCY"]


class ContactKind(_Strict):
    act_code: str
    display: str


class JournalInstance(_Strict):
    """One journal instance's numbering of time types in its booking web service (R-BK-4)."""

    #: The service's numeric ``TimeTypeId`` -> a time-type code of ``time_types``.
    time_type_ids: dict[str, str]

    @field_validator("time_type_ids", mode="before")
    @classmethod
    def _numeric(cls, value: object) -> object:
        # YAML reads an unquoted 11 as a number: ids are compared as the digits the service sends.
        if not isinstance(value, dict):
            return value
        out: dict[str, object] = {}
        for key, code in value.items():
            text = str(key).strip()
            if not text.isdigit():
                raise ValueError(f"time type id {key!r} is not a number")
            out[str(int(text))] = code
        return out


class TimeTypeTable(_Strict):
    code_system: str
    unknown_is_hidden: bool
    time_types: dict[str, TimeType]
    kinds: dict[str, ContactKind]
    #: Per journal instance (``GATEWAY_JOURNAL_WS_INSTANCE``): numeric TimeTypeId -> code.
    journal_instances: dict[str, JournalInstance] = {}


class TriggerMapping(_Strict):
    status: AppointmentStatus | Literal["from_filler_status"]
    default: AppointmentStatus | None = None
    cancelation_reason: str | None = None
    reason_from_event: bool = False


class StatusTable(_Strict):
    triggers: dict[str, TriggerMapping]
    filler_status: dict[str, AppointmentStatus]


class ResourceTypeTable(_Strict):
    default: ResourceKind = ResourceKind.PERSON
    codes: dict[str, ResourceKind] = {}
    texts: dict[str, ResourceKind] = {}

    def kind_of(self, code: str, text: str) -> ResourceKind:
        """AIG-4: the code exactly, else the text ignoring case, else the default."""
        found = self.codes.get(code) if code else None
        if found is None and text:
            wanted = text.strip().casefold()
            found = next((v for k, v in self.texts.items() if k.casefold() == wanted), None)
        return found or self.default


class SenderMapping(_Strict):
    identifier_system: str


class SenderTable(_Strict):
    senders: dict[str, SenderMapping] = {}


#: The default identifier system of a sender's own ids (mappings/senders.yaml).
LOCAL_SYSTEM_PREFIX = "urn:x-gateway:hl7v2-sender:"


def default_local_system(application: str, facility: str) -> str:
    def part(value: str) -> str:
        return urllib.parse.quote(value, safe="-._~") or "-"

    return f"{LOCAL_SYSTEM_PREFIX}{part(application)}:{part(facility)}"


@dataclass(frozen=True)
class Mappings:
    identifiers: IdentifierTable
    time_types: TimeTypeTable
    statuses: StatusTable
    resource_types: ResourceTypeTable = field(default_factory=ResourceTypeTable)
    senders: SenderTable = field(default_factory=SenderTable)

    def local_system(self, application: str, facility: str) -> str:
        """The identifier system of ids the sender (MSH-3.1, MSH-4.1) gives that are not HSA-ids."""
        found = self.senders.senders.get(f"{application}|{facility}")
        return found.identifier_system if found else default_local_system(application, facility)

    @cached_property
    def persons_by_oid(self) -> dict[str, PersonIdentifierMapping]:
        return {m.oid: m for m in self.identifiers.persons}

    @cached_property
    def reservnummer_patterns(self) -> dict[str, re.Pattern[str]]:
        return {
            m.oid: re.compile(m.pattern)
            for m in self.identifiers.persons
            if m.kind is IdKind.RESERVNUMMER and m.pattern
        }

    def _oid_of(self, kind: IdKind) -> str:
        return next(m.oid for m in self.identifiers.persons if m.kind is kind)

    def recognise(self, text: str, today: date | None = None) -> PersonId:
        """A bare number (no OID) to a checked identifier, reservnummer patterns from the tables;
        with ``today``, 10-digit ``YYMMDD-NNNC`` too (R-ID-1's century rule)."""
        return recognise(
            text,
            personnummer_oid=self._oid_of(IdKind.PERSONNUMMER),
            samordningsnummer_oid=self._oid_of(IdKind.SAMORDNINGSNUMMER),
            reservnummer_patterns=self.reservnummer_patterns,
            today=today,
        )

    def fhir_system_for(self, authority: str) -> str:
        return self.persons_by_oid[authority].fhir_system

    def authority_for_system(self, system: str) -> str | None:
        for m in self.identifiers.persons:
            if m.fhir_system == system:
                return m.oid
        return None

    def time_type_visible(self, code: str | None) -> bool:
        """R-BK-1: only listed, visible time types are shown; unknown ones are hidden."""
        if code is None:
            return not self.time_types.unknown_is_hidden
        found = self.time_types.time_types.get(code)
        if found is None:
            return not self.time_types.unknown_is_hidden
        return found.visible

    def journal_time_type_ids(self, instance: str) -> dict[str, str]:
        """The numeric TimeTypeId -> time-type code table of one journal instance (R-BK-4).

        An id missing from it is unknown, so a booking on it stays hidden (R-BK-1)."""
        found = self.time_types.journal_instances.get(instance)
        if found is None:
            known = ", ".join(sorted(self.time_types.journal_instances)) or "none"
            raise ConfigurationError(
                f"time_types.yaml: no journal_instances entry {instance!r} (known: {known})"
            )
        return dict(found.time_type_ids)

    def status_for(self, trigger: str, filler_status: str | None) -> AppointmentStatus:
        mapping = self.statuses.triggers[trigger]
        if mapping.status != "from_filler_status":
            return mapping.status
        if filler_status:
            found = self.statuses.filler_status.get(filler_status.strip().upper())
            if found is not None:
                return found
        assert mapping.default is not None  # checked by load()
        return mapping.default


def _read(path: Path) -> object:
    try:
        with path.open(encoding="utf-8") as fh:
            return yamlio.safe_load(fh)
    except FileNotFoundError as exc:
        raise ConfigurationError(f"mapping file missing: {path.name}") from exc
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"mapping file {path.name} is not valid YAML: {exc}") from exc


def load(directory: Path | None = None) -> Mappings:
    """Load and cross-check every table; raise ConfigurationError naming the file and problem."""
    directory = directory or DEFAULT_DIR
    parts: dict[str, BaseModel] = {}
    for name, model in (
        ("identifiers", IdentifierTable),
        ("time_types", TimeTypeTable),
        ("statuses", StatusTable),
    ):
        path = directory / f"{name}.yaml"
        try:
            parts[name] = model.model_validate(_read(path))
        except ValidationError as exc:
            raise ConfigurationError(f"mapping file {path.name} is invalid: {exc}") from exc
    # Optional tables: a mappings directory without them keeps the defaults.
    optional: tuple[tuple[str, type[BaseModel]], ...] = (
        ("resource_types", ResourceTypeTable),
        ("senders", SenderTable),
    )
    for name, table in optional:
        path = directory / f"{name}.yaml"
        if not path.exists():
            continue
        try:
            parts[name] = table.model_validate(_read(path))
        except ValidationError as exc:
            raise ConfigurationError(f"mapping file {path.name} is invalid: {exc}") from exc
    mappings = Mappings(**parts)  # type: ignore[arg-type]
    _cross_check(mappings)
    return mappings


def _cross_check(m: Mappings) -> None:
    for tt_code, tt in m.time_types.time_types.items():
        if tt.kind not in m.time_types.kinds:
            raise ConfigurationError(f"time_types.yaml: {tt_code} has unknown kind {tt.kind}")
    for instance, table in m.time_types.journal_instances.items():
        for tt_id, tt_code in table.time_type_ids.items():
            if tt_code not in m.time_types.time_types:
                raise ConfigurationError(
                    f"time_types.yaml: journal instance {instance} maps id {tt_id} to unknown {tt_code}"
                )
    for trigger, tm in m.statuses.triggers.items():
        if tm.status == "from_filler_status" and tm.default is None:
            raise ConfigurationError(f"statuses.yaml: {trigger} needs a default status")
        if tm.cancelation_reason and tm.status not in ("cancelled", "noshow"):
            # FHIR app-4: a cancelation reason only on a cancelled appointment or a no-show
            raise ConfigurationError(f"statuses.yaml: {trigger} has a cancelation reason but is {tm.status}")
    for pm in m.identifiers.persons:
        if pm.kind is IdKind.RESERVNUMMER and pm.pattern is None:
            raise ConfigurationError(f"identifiers.yaml: reservnummer {pm.oid} needs a pattern")
    kinds = {pm.kind for pm in m.identifiers.persons}
    for needed in (IdKind.PERSONNUMMER, IdKind.SAMORDNINGSNUMMER):
        if needed not in kinds:
            raise ConfigurationError(f"identifiers.yaml: no mapping for {needed.value}")


class _LeadTimeMapping(_Strict):
    days_before: int | None = None
    at: str | None = None
    minutes_before: int | None = None

    def lead(self, where: str) -> notifications.LeadTime:
        if self.minutes_before is not None:
            if self.days_before is not None or self.at is not None:
                raise ConfigurationError(f"notifications.yaml: {where}: minutes_before or days_before/at")
            return notifications.LeadTime(before=timedelta(minutes=self.minutes_before))
        return notifications.LeadTime(days_before=self.days_before or 0, at=_clock_time(self.at or "18:00"))


class _LeadTimes(_Strict):
    default: _LeadTimeMapping
    by_key: dict[str, _LeadTimeMapping] = {}


class _QuietHours(_Strict):
    start: str
    end: str


class _Video(_Strict):
    notice_when_booked: bool = True
    reminder_minutes_before: int = 15


class _Documents(_Strict):
    delay_minutes: int = 15


class NotificationTable(_Strict):
    login_link: str
    lead_times: _LeadTimes
    remind_when_booked_late: bool = False
    quiet_hours: _QuietHours | None
    video: _Video = _Video()
    documents: _Documents = _Documents()
    templates: dict[notifications.Kind, str]


def _clock_time(text: str) -> time:
    try:
        return time.fromisoformat(text)
    except ValueError as exc:
        raise ConfigurationError(f"notifications.yaml: {text!r} is not a time of day (HH:MM)") from exc


def load_notifications(directory: Path | None = None) -> notifications.Policy:
    """``notifications.yaml`` as the planner's Policy. A mappings directory without the file
    (one made before it existed) gets the defaults shipped in ``mappings/``."""
    path = (directory or DEFAULT_DIR) / "notifications.yaml"
    if not path.exists():
        path = DEFAULT_DIR / "notifications.yaml"
    try:
        table = NotificationTable.model_validate(_read(path))
    except ValidationError as exc:
        raise ConfigurationError(f"mapping file {path.name} is invalid: {exc}") from exc
    missing = set(notifications.Kind) - set(table.templates)
    if missing:
        raise ConfigurationError(f"notifications.yaml: no template for {', '.join(sorted(missing))}")
    for kind, text in table.templates.items():
        try:
            notifications.check_template(kind, text)
        except ValueError as exc:
            raise ConfigurationError(f"notifications.yaml: {exc}") from exc
    quiet = table.quiet_hours
    return notifications.Policy(
        login_link=table.login_link,
        default_lead=table.lead_times.default.lead("default"),
        leads={key: m.lead(key) for key, m in table.lead_times.by_key.items()},
        remind_when_booked_late=table.remind_when_booked_late,
        quiet_hours=(
            notifications.QuietHours(_clock_time(quiet.start), _clock_time(quiet.end)) if quiet else None
        ),
        video_booked_notice=table.video.notice_when_booked,
        video_reminder_before=timedelta(minutes=table.video.reminder_minutes_before),
        document_delay=timedelta(minutes=table.documents.delay_minutes),
        templates=dict(table.templates),
    )
