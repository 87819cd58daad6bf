"""A Communication's check when it changes (``gateway.fhir.communication.check_change``): a receipt
arriving is checked by the model's own ``Extension``, everything else whole, and the verdict is
always the one the whole model gives (the outbox's receipt transaction relies on it)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gateway.domain.documents import Channel, DocumentKind, MailboxProvider, Outcome
from gateway.fhir import communication as fhir_comm

SENT = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
PERSON = fhir_comm.Identifier("http://electronichealth.se/identifier/personnummer", "191212121212")


def facts(**changes: Any) -> fhir_comm.CommunicationFacts:
    base = fhir_comm.CommunicationFacts(
        id="0b9a7f3e-0000-5e6f-8a1b-3c5d7e9f1a2b",
        namespace="TAKECARE",
        document_number="D000001",
        kind=DocumentKind.E_BREV,
        subject=PERSON,
        title="Svar på remiss",
        text="Hej!\nProvsvaren är normala.\n[4US:LPAT]",
        outcome=Outcome.DELIVER,
        rules=("R-DOC-4",),
        reason="to mailbox Kivra",
        recipients=(fhir_comm.Recipient(Channel.MAILBOX, PERSON, MailboxProvider.KIVRA),),
        sent=SENT,
    )
    return fhir_comm.CommunicationFacts(**{**{f: getattr(base, f) for f in base.__slots__}, **changes})


def stored(resource: dict[str, Any]) -> dict[str, Any] | None:
    """What the store gives back for a resource written at version 1."""
    return fhir_comm.stored_content(fhir_comm.render(resource, 1, SENT))


def whole_verdict(resource: dict[str, Any]) -> bool:
    try:
        fhir_comm.check(resource)
    except ValueError:
        return False
    return True


def change_verdict(resource: dict[str, Any], previous: dict[str, Any] | None) -> bool:
    try:
        fhir_comm.check_change(resource, previous)
    except ValueError:
        return False
    return True


def test_a_receipt_is_checked_without_the_whole_model() -> None:
    before = fhir_comm.build_communication(facts())
    after = fhir_comm.build_communication(facts(mailbox_delivered=SENT, mailbox_receipt="T-1"))
    with mock.patch.object(fhir_comm, "check", side_effect=AssertionError("whole check")):
        fhir_comm.check_change(after, stored(before))


@settings(max_examples=200, deadline=None)
@given(receipt=st.text(max_size=40))
def test_a_receipt_gets_the_verdict_of_the_whole_model(receipt: str) -> None:
    before = fhir_comm.build_communication(facts())
    after = fhir_comm.build_communication(facts(mailbox_delivered=SENT, mailbox_receipt=receipt))
    assert change_verdict(after, stored(before)) == whole_verdict(after)


def test_an_empty_receipt_is_refused_as_the_model_refuses_it() -> None:
    before = fhir_comm.build_communication(facts())
    after = fhir_comm.build_communication(facts(mailbox_delivered=SENT, mailbox_receipt=""))
    with pytest.raises(ValidationError):
        fhir_comm.check_change(after, stored(before))


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r.update(status="not-done"),
        lambda r: r["payload"][0].update(contentString="Något annat"),
        lambda r: r.update(received="2026-12-02T08:00:00Z"),
        lambda r: r.pop("topic"),
        lambda r: r["extension"].append({"url": "x", "valueString": "y"}) or r.update(status="on-hold"),
    ],
)
def test_any_other_change_is_checked_whole(change: Any) -> None:
    before = fhir_comm.build_communication(facts())
    after = copy.deepcopy(before)
    change(after)
    with mock.patch.object(fhir_comm, "check") as whole:
        fhir_comm.check_change(after, stored(before))
    whole.assert_called_once_with(after)


def test_an_invalid_change_outside_the_extensions_is_refused() -> None:
    before = fhir_comm.build_communication(facts())
    after = copy.deepcopy(before)
    after["subject"] = "Patient/1"  # a string where FHIR has a Reference
    with pytest.raises(ValidationError):
        fhir_comm.check_change(after, stored(before))


def test_a_document_never_stored_is_checked_whole() -> None:
    resource = fhir_comm.build_communication(facts())
    assert fhir_comm.stored_content(b"") is None
    with mock.patch.object(fhir_comm, "check") as whole:
        fhir_comm.check_change(resource, None)
    whole.assert_called_once_with(resource)


def test_the_stored_content_is_the_resource_without_its_meta() -> None:
    resource = fhir_comm.build_communication(facts())
    assert stored(resource) == resource
    labelled = fhir_comm.stored_content(fhir_comm.render(resource, 3, SENT, "N"))
    assert labelled == resource
