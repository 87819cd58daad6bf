"""One decision per SOAP-layer exception, the same in every SOAP adapter (gateway/soap.py)."""

from __future__ import annotations

import inspect

import pytest
from lxml import etree
from zeep import exceptions as zeep_exc

from gateway import soap
from gateway.errors import UpstreamError
from gateway.journal_adapter import booking_service
from gateway.mailbox_adapter import _errors as mailbox_errors
from gateway.spar_adapter import _errors as spar_errors

#: Decided in each adapter from the HTTP status or the fault code, not by class alone.
BY_CONTENT = {zeep_exc.TransportError, zeep_exc.Fault}


def _zeep_exceptions() -> set[type[BaseException]]:
    return {
        cls
        for _, cls in inspect.getmembers(zeep_exc, inspect.isclass)
        if issubclass(cls, Exception) and not issubclass(cls, Warning) and cls.__module__ == "zeep.exceptions"
    }


def test_every_zeep_exception_has_a_decision() -> None:
    assert _zeep_exceptions() - set(soap.DECISIONS) == set()


def test_every_decision_is_worded_and_every_lxml_error_decided() -> None:
    assert set(soap.DECISIONS) == set(soap.WORDING)
    lxml_errors = {
        cls
        for name, cls in inspect.getmembers(etree, inspect.isclass)
        if issubclass(cls, Exception) and cls.__module__.startswith("lxml") and not name.startswith("_")
    }
    assert lxml_errors
    for cls in lxml_errors:
        assert any(base in soap.DECISIONS for base in cls.__mro__), cls


def test_a_2xx_that_is_not_xml_is_transient_and_a_fault_goes_by_its_code_everywhere() -> None:
    """The SPAR and journal adapters used to disagree on a 2xx whose body is not XML."""
    not_xml = zeep_exc.TransportError("invalid XML", status_code=200)  # type: ignore[no-untyped-call]
    server = zeep_exc.Fault("busy", code="soap:Server")  # type: ignore[no-untyped-call]
    client = zeep_exc.Fault("wrong", code="soap:Client")  # type: ignore[no-untyped-call]
    for exc, want in ((not_xml, soap.TransientUpstreamError), (server, soap.TransientUpstreamError)):
        assert type(spar_errors.translate_exception(exc)) is want
        assert type(mailbox_errors.translate_exception(exc, "mailbox")) is want
        assert booking_service.error_class(exc) is want
    assert type(spar_errors.translate_exception(client)) is soap.PermanentUpstreamError
    assert booking_service.error_class(client) is soap.PermanentUpstreamError


def _instance(cls: type[BaseException]) -> BaseException:
    if issubclass(cls, etree.XMLSyntaxError):
        return cls("bad", 1, 1, 1)
    if issubclass(cls, zeep_exc.DTDForbidden):
        return cls("doc", "sys", "pub")
    if issubclass(cls, zeep_exc.EntitiesForbidden):
        return cls("ent", "content")
    return cls("bad")


@pytest.mark.parametrize(
    "cls", sorted(set(soap.DECISIONS) - BY_CONTENT, key=lambda c: f"{c.__module__}.{c.__qualname__}")
)
def test_the_three_adapters_agree_with_the_one_decision(cls: type[BaseException]) -> None:
    exc = _instance(cls)
    want: type[UpstreamError] = soap.DECISIONS[cls]
    spar = spar_errors.translate_exception(exc)
    mailbox = mailbox_errors.translate_exception(exc, "mailbox")
    assert type(spar) is want, spar
    assert type(mailbox) is want, mailbox
    assert booking_service.error_class(exc) is want


def test_an_answer_that_is_not_a_soap_envelope_is_transient_everywhere() -> None:
    """The three maps disagreed; a retry asks again, it does not re-read the same bytes."""
    exc = zeep_exc.XMLSyntaxError("no envelope")
    assert soap.decision(exc) is soap.TransientUpstreamError
    assert booking_service.error_class(exc) is soap.TransientUpstreamError
