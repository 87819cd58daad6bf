"""The replay's differ: ACKs field by field, FHIR resources path by path, the ignore list."""

from __future__ import annotations

from gateway.recording.diff import DEFAULT_IGNORE, Difference, Ignore, diff_ack, diff_json, hl7_fields

ACK = "MSH|^~\\&|GATEWAY|REGION|TC|SLL|20261201101500+0100||ACK^S12^ACK|GW1|P|2.5.1\rMSA|AA|TC0001\r"
MAILBOX_DELIVERY = "https://gateway.vard.example/fhir/StructureDefinition/mailbox-delivery"
RULES = "https://gateway.vard.example/fhir/StructureDefinition/routing-rules"


def test_hl7_fields_number_msh_as_hl7_does_and_label_repeated_segments() -> None:
    fields = hl7_fields("MSH|^~\\&|A\rERR|||101\rERR|||102\r")
    assert fields["MSH-1"] == "|" and fields["MSH-2"] == "^~\\&" and fields["MSH-3"] == "A"
    assert fields["ERR-3"] == "101" and fields["ERR(2)-3"] == "102"


def test_an_ack_differs_only_in_its_own_time_and_control_id_by_default() -> None:
    replayed = ACK.replace("20261201101500+0100", "20270101090000+0100").replace("GW1", "GW999")
    assert diff_ack(ACK, replayed, Ignore()) == []
    assert {d.path for d in diff_ack(ACK, replayed, Ignore(()))} == {"ACK.MSH-7", "ACK.MSH-10"}


def test_an_ack_that_turned_into_a_nack_names_the_fields() -> None:
    replayed = ACK.replace("MSA|AA|TC0001", "MSA|AE|TC0001|bad PID-3") + "ERR|||102\r"
    found = {d.path: d for d in diff_ack(ACK, replayed, Ignore())}
    assert set(found) == {"ACK.MSA-1", "ACK.MSA-3", "ACK.ERR-3"}
    assert found["ACK.MSA-1"] == Difference("ACK.MSA-1", "AA", "AE")
    assert "recorded (absent)" in str(found["ACK.MSA-3"])


def test_resources_differ_by_readable_path_and_ignore_meta_by_default() -> None:
    recorded = {
        "resourceType": "Appointment",
        "meta": {"versionId": "1", "lastUpdated": "2026-12-01T10:00:00.000Z"},
        "status": "booked",
        "participant": [{"actor": {"display": "Dr A"}}, {"actor": {"display": "Rum 1"}}],
    }
    replayed = {
        "resourceType": "Appointment",
        "meta": {"versionId": "3", "lastUpdated": "2027-01-01T10:00:00.000Z"},
        "status": "booked",
        "participant": [{"actor": {"display": "Dr A"}}, {"actor": {"display": "Rum 2"}}],
        "description": "new",
    }
    found = diff_json(recorded, replayed, "Appointment", Ignore())
    assert [d.path for d in found] == ["Appointment.participant[1].actor.display", "Appointment.description"]


def test_extensions_are_compared_by_url_so_a_new_one_does_not_shift_the_others() -> None:
    recorded = {"extension": [{"url": RULES, "valueString": "R-DOC-4"}]}
    replayed = {
        "extension": [
            {"url": MAILBOX_DELIVERY, "extension": [{"url": "receipt", "valueString": "tx-1"}]},
            {"url": RULES, "valueString": "R-DOC-4 R-DOC-5"},
        ]
    }
    paths = [d.path for d in diff_json(recorded, replayed, "Communication", Ignore(()))]
    assert paths == [
        f"Communication.extension[url={RULES}].valueString",
        f"Communication.extension[url={MAILBOX_DELIVERY}]",
    ]
    # The operator's receipt is left out by default; the routing rules are not.
    assert [d.path for d in diff_json(recorded, replayed, "Communication", Ignore())] == [paths[0]]


def test_ignore_patterns_match_one_step_per_star_and_anything_with_two() -> None:
    ignore = Ignore(["Appointment.participant[*].actor.display", "Communication.**"])
    assert ignore("Appointment.participant[3].actor.display")
    assert not ignore("Appointment.participant[3].actor.reference")
    assert not ignore("Appointment.participant[3].actor.display.x")
    assert ignore("Communication.payload[0].contentString")
    assert Ignore(DEFAULT_IGNORE)("Communication.meta.versionId")
    assert not Ignore(DEFAULT_IGNORE)("Communication.id")


def test_a_type_change_is_a_difference() -> None:
    assert [d.path for d in diff_json({"a": 1}, {"a": "1"}, "X", Ignore(()))] == ["X.a"]
