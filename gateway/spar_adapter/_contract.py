"""Which SPAR PersonSök contract version the adapter speaks: the one place that says so.

A version is a folder of contract files (``contract/<version>/``, the gateway's own WSDL and
XSDs, equivalent to Skatteverket's where it matters) and a translation of its answers. Adding
one (2023.1 exists) is a new folder, a translation module and an entry in ``CONTRACTS``;
``docs/spar.md`` says how.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from gateway.domain.identity import PersonId
from gateway.domain.register import RegisterRecord
from gateway.spar_adapter import _translate

CONTRACT_DIR = Path(__file__).resolve().parent / "contract"

#: The version the adapter speaks unless ``GATEWAY_SPAR_CONTRACT`` names another.
CONTRACT_VERSION = "2021.1"

Translate = Callable[[Mapping[str, Any] | None, PersonId, date], RegisterRecord | None]


@dataclass(frozen=True, slots=True)
class Contract:
    version: str
    #: The packaged WSDL: startup reads it from disk, so it needs no network.
    wsdl: Path
    #: ``{namespace}name`` of the SOAP binding zeep binds to, as in the official WSDL.
    binding: str
    operation: str
    soap_action: str
    translate: Translate


CONTRACTS: Mapping[str, Contract] = {
    "2021.1": Contract(
        version="2021.1",
        wsdl=CONTRACT_DIR / "2021.1" / "personsok.wsdl",
        binding="{http://statenspersonadressregister.se/personsok/2021.1}PersonsokServiceSOAP",
        operation="PersonSok",
        soap_action="http://skatteverket.se/spar/personsok/2021.1/PersonsokService/Personsok",
        translate=_translate.translate,
    ),
}

PACKAGED_WSDL = CONTRACTS[CONTRACT_VERSION].wsdl
