"""Loads ``mappings/self_service.yaml`` into :class:`gateway.domain.self_service.SelfServicePolicy`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from gateway import yamlio
from gateway.domain.self_service import SelfServicePolicy, UnitPolicy
from gateway.errors import ConfigurationError
from gateway.mappings import DEFAULT_DIR


class _Unit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    change_deadline_hours: float = 24
    book_lead_hours: float = 0
    enabled: bool = True
    health_centre: bool = False


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    default: _Unit = _Unit()
    units: dict[str, _Unit] = {}


def _policy(unit: str, u: _Unit) -> UnitPolicy:
    return UnitPolicy(
        unit,
        timedelta(hours=u.change_deadline_hours),
        timedelta(hours=u.book_lead_hours),
        u.enabled,
        u.health_centre,
    )


def load_self_service(directory: Path | None = None) -> SelfServicePolicy:
    path = (directory or DEFAULT_DIR) / "self_service.yaml"
    try:
        data = _File.model_validate(yamlio.safe_load(path.read_text(encoding="utf-8")) or {})
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ConfigurationError(f"{path.name}: {exc}") from exc
    return SelfServicePolicy(_policy("*", data.default), tuple(_policy(k, v) for k, v in data.units.items()))
