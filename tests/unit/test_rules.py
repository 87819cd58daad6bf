"""Which bookings leave the gateway: one row per case, each naming its rule."""

from __future__ import annotations

import pytest

from gateway.domain.identity import IdKind, PersonId
from gateway.domain.register import RegisterRecord
from gateway.domain.rules import booking_exposure
from tests import fakes

RESERV = PersonId(IdKind.RESERVNUMMER, "999929013705", "1.2.752.97.3.1.3")


@pytest.mark.parametrize(
    ("case", "time_type_visible", "patient", "record", "visible", "rule"),
    [
        ("ordinary adult", True, fakes.TOLVAN.person, fakes.TOLVAN, True, None),
        ("R-BK-1 hidden time type", False, fakes.TOLVAN.person, fakes.TOLVAN, False, "R-BK-1"),
        ("R-ID-3 sekretessmarkering", True, fakes.SEKRET.person, fakes.SEKRET, False, "R-ID-3"),
        ("R-ID-3 skyddad folkbokföring", True, fakes.SKYDDAD.person, fakes.SKYDDAD, False, "R-ID-3"),
        ("R-ID-5 deceased", True, fakes.DECEASED.person, fakes.DECEASED, False, "R-ID-5"),
        (
            "R-ID-5 emigrated is flagged, not withheld",
            True,
            fakes.EMIGRATED.person,
            fakes.EMIGRATED,
            True,
            None,
        ),
        ("R-ID-2 reservnummer", True, RESERV, None, False, "R-ID-2"),
        ("R-ID-7 not in the register", True, fakes.TOLVAN.person, None, False, "R-ID-7"),
        ("R-BK-1 hidden beats everything", False, fakes.SKYDDAD.person, fakes.SKYDDAD, False, "R-BK-1"),
    ],
)
def test_booking_exposure_r_id_3_r_id_5_r_id_2_r_id_7_r_bk_1(
    case: str,
    time_type_visible: bool,
    patient: PersonId,
    record: RegisterRecord | None,
    visible: bool,
    rule: str | None,
) -> None:
    exposure = booking_exposure(time_type_visible, patient, record)
    assert exposure.visible is visible, case
    if rule is None:
        assert exposure.reason is None
    else:
        assert exposure.reason is not None and exposure.reason.startswith(rule), case
