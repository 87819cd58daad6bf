"""The shared test population (``mocks/persons.yaml``, or ``GATEWAY_MOCK_PERSONS``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict

DEFAULT_FILE = Path(__file__).resolve().parent / "persons.yaml"

OIDS = {
    "personnummer": "1.2.752.129.2.1.3.1",
    "samordningsnummer": "1.2.752.129.2.1.3.3",
    "reservnummer": "1.2.752.97.3.1.3",
}


class TestPerson(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    id: str
    id_type: Literal["personnummer", "samordningsnummer", "reservnummer"]
    given: str
    family: str
    note: str = ""

    @property
    def oid(self) -> str:
        return OIDS[self.id_type]


class Population(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    persons: list[TestPerson]

    def by_id(self, person_id: str) -> TestPerson:
        for p in self.persons:
            if p.id == person_id:
                return p
        raise KeyError(person_id)


def load(path: Path | None = None) -> Population:
    chosen = path or Path(os.environ.get("GATEWAY_MOCK_PERSONS", DEFAULT_FILE))
    with chosen.open(encoding="utf-8") as fh:
        return Population.model_validate(yaml.safe_load(fh))
