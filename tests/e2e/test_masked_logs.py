"""Logs never carry a full personnummer, a name or an address (R-ID-3, the developers' guide).

The whole demo (bookings and letters through SPAR, accounts and mailbox mocks over real HTTP,
mailbox deliveries signed with signxml, and held letters for protected persons released by
staff and delivered) runs with the most talkative log there is, JSON at DEBUG, and every line is
scanned for every test person's number in each written form, their full name, family name and
street address: in plain text and inside base64 (a signed delivery carries the letter so).
"""

from __future__ import annotations

import base64
import json
import subprocess

from mocks.population import load as load_population
from tests.e2e.test_cli import GATEWAY, _env, _free_port


def _forbidden() -> dict[str, str]:
    """What must never appear, mapped to why."""
    out: dict[str, str] = {}
    for person in load_population().persons:
        n = person.id
        for form in (n, f"{n[:8]}-{n[8:]}", n[2:], f"{n[2:8]}-{n[8:]}"):
            out[form] = f"personnummer of {person.note or person.given}"
        out[f"{person.given} {person.family}"] = "a full name"
        out[person.family] = "a family name"
        address = person.spar.address
        if address is not None:
            for line in (address.street1, address.street2, address.care_of):
                if line:
                    out[line] = "an address"
    return out


def _in_base64(text: str) -> list[str]:
    """The runs of base64 that ``text`` becomes wherever it starts in an encoded document: one
    per alignment, without the characters its neighbours share."""
    raw = text.encode()
    runs = []
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + raw).decode()
        start = 4 if pad else 0
        end = len(encoded) - (4 if (pad + len(raw)) % 3 else 0)
        if end - start >= 8:
            runs.append(encoded[start:end])
    return runs


def test_the_base64_runs_find_a_text_inside_an_encoded_document() -> None:
    document = base64.b64encode(b"<Brev>Hej Tolvan Tolvansson, 191212121212</Brev>").decode()
    assert any(run in document for run in _in_base64("Tolvansson"))
    assert any(run in document for run in _in_base64("191212121212"))
    assert not any(run in document for run in _in_base64("Markersson"))


def test_r_id_3_a_whole_demo_at_debug_logs_no_personnummer_name_or_address(tmp_path: object) -> None:
    run = subprocess.run(
        [
            *GATEWAY,
            "demo",
            "--http-port",
            str(_free_port()),
            "--mllp-port",
            str(_free_port()),
            "--log-format",
            "json",
            "--log-level",
            "DEBUG",
        ],
        cwd=str(tmp_path),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) > 100  # the demo really logged: intake, processing, routing, adapters
    events = [json.loads(line) for line in lines]  # every line is JSON
    names = {e.get("event") for e in events}
    assert {"intake.acknowledged", "document.routed", "document.released", "outbox.delivered"} <= names
    assert "Logging error" not in run.stderr and "Traceback" not in run.stderr
    leaks = [(why, text) for text, why in _forbidden().items() if text in run.stderr]
    assert leaks == []
    encoded = [
        (why, text) for text, why in _forbidden().items() for b64 in _in_base64(text) if b64 in run.stderr
    ]
    assert encoded == []
