"""Mapping tables: loaded, validated at start, and the rules that read them (R-BK-1, R-BK-2)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway import mappings as mapping_tables
from gateway.errors import ConfigurationError

M = mapping_tables.load()


def test_the_shipped_tables_load() -> None:
    assert M.fhir_system_for("1.2.752.129.2.1.3.1") == "http://electronichealth.se/identifier/personnummer"
    assert M.fhir_system_for("1.2.752.97.3.1.3") == "urn:oid:1.2.752.97.3.1.3"


def test_r_bk_1_hidden_and_unknown_time_types_are_not_shown() -> None:
    assert M.time_type_visible("NYB") is True
    assert M.time_type_visible("DOLD") is False
    assert M.time_type_visible("NEVER-MAPPED") is False
    assert M.time_type_visible(None) is False


@pytest.mark.parametrize(
    ("trigger", "filler", "status"),
    [
        ("S12", None, "booked"),
        ("S12", "Pending", "pending"),
        ("S14", "Complete", "fulfilled"),
        ("S13", "nonsense", "booked"),
        ("S15", "Booked", "cancelled"),
        ("S16", "Booked", "cancelled"),
        ("S17", None, "entered-in-error"),
        ("S12", "Deleted", "entered-in-error"),
        ("S26", None, "noshow"),
    ],
)
def test_r_bk_2_trigger_and_filler_status_decide_the_appointment_status(
    trigger: str, filler: str | None, status: str
) -> None:
    assert M.status_for(trigger, filler) == status


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "mappings"
    shutil.copytree(mapping_tables.DEFAULT_DIR, target)
    return target


def test_a_broken_table_stops_start_up_naming_the_file(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    (d / "time_types.yaml").write_text(
        (d / "time_types.yaml").read_text(encoding="utf-8").replace("kind: video", "kind: hologram"),
        encoding="utf-8",
    )
    with pytest.raises(ConfigurationError, match=r"time_types\.yaml"):
        mapping_tables.load(d)


def test_a_missing_table_stops_start_up(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    (d / "statuses.yaml").unlink()
    with pytest.raises(ConfigurationError, match=r"statuses\.yaml"):
        mapping_tables.load(d)


def test_a_reservnummer_needs_a_pattern(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    text = (d / "identifiers.yaml").read_text(encoding="utf-8").replace('    pattern: "99\\\\d{10}"\n', "")
    (d / "identifiers.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigurationError, match="pattern"):
        mapping_tables.load(d)


def test_r_bk_1_journal_time_type_ids_are_a_table_per_instance() -> None:
    ids = M.journal_time_type_ids("SIM")
    assert (ids["11"], ids["92"]) == ("NYB", "DOLD")
    assert "4711" not in ids  # unknown: the booking stays hidden
    with pytest.raises(ConfigurationError, match="no journal_instances entry 'SLL-PROD'"):
        M.journal_time_type_ids("SLL-PROD")


def test_r_bk_1_an_instance_table_naming_an_unknown_time_type_stops_start_up(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    text = (d / "time_types.yaml").read_text(encoding="utf-8")
    (d / "time_types.yaml").write_text(text.replace('"11": NYB', '"11": NYBESOK'), encoding="utf-8")
    with pytest.raises(ConfigurationError, match="maps id 11 to unknown NYBESOK"):
        mapping_tables.load(d)


def test_journal_time_type_ids_written_as_yaml_numbers_are_read_as_digits(tmp_path: Path) -> None:
    d = _copy(tmp_path)
    text = (d / "time_types.yaml").read_text(encoding="utf-8")
    (d / "time_types.yaml").write_text(text.replace('"12": ATB', "12: ATB"), encoding="utf-8")
    assert mapping_tables.load(d).journal_time_type_ids("SIM")["12"] == "ATB"
