"""Who may call what (issue 7, item 1): bearer tokens and scopes on every route but /health."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.api import auth
from gateway.bootstrap import GatewayThread, build
from gateway.errors import ConfigurationError
from gateway.settings import Settings
from tests.e2e.test_cli import GATEWAY, _env
from tests.fakes import FakeAccounts, FakeDelivery, FakeMailbox, FakeRegister
from tests.support import siu


def _settings(tmp_path: Path, **extra: object) -> Settings:
    return Settings(
        data_dir=tmp_path,
        http_port=0,
        mllp_port=0,
        mocks_port=0,
        auth="required",
        log_level="WARNING",
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[GatewayThread]:
    with GatewayThread(
        _settings(tmp_path), register=FakeRegister(), accounts=FakeAccounts(), mailbox=FakeMailbox()
    ) as gw:
        yield gw


def _token(gw: GatewayThread, *scopes: str, **kwargs: object) -> dict[str, str]:
    return {"Authorization": "Bearer " + auth.dev_token(gw.gateway.settings, scopes, **kwargs)}  # type: ignore[arg-type]


# One route of each kind and the scope it needs.
ROUTES = [
    ("GET", "/fhir/Appointment", auth.PLATFORM),
    ("GET", "/fhir/Communication", auth.PLATFORM),
    ("GET", "/fhir/metadata", auth.PLATFORM),
    ("POST", "/journal/hl7", auth.JOURNAL),
    ("GET", "/patients/191212121212", auth.STAFF),
    ("GET", "/print-list", auth.STAFF),
    ("GET", "/held", auth.STAFF),
    ("GET", "/reports/documents?from=2026-01-01&to=2026-02-01", auth.STAFF),
    ("GET", "/outbox", auth.STAFF),
    ("GET", "/messages", auth.ADMIN),
]


def _call(client: httpx.Client, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    if path == "/journal/hl7":
        return client.post(
            path, content=siu("S12"), headers={**headers, "Content-Type": "application/hl7-v2"}
        )
    return client.request(method, path, headers=headers)


def test_every_route_needs_a_token_with_its_scope_and_says_why_not(secured: GatewayThread) -> None:
    with httpx.Client(base_url=secured.http_url, timeout=10) as client:
        assert client.get("/health").status_code == 200  # open: load balancers ask it
        assert client.get("/openapi.json").status_code == 401  # every route but /health
        described = client.get("/openapi.json", headers=_token(secured, auth.JOURNAL))
        assert described.status_code == 200  # any trusted token may read the contract
        for method, path, scope in ROUTES:
            anonymous = _call(client, method, path, {})
            assert anonymous.status_code == 401, path
            assert anonymous.headers["www-authenticate"].startswith("Bearer")
            body = anonymous.json()
            assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == "login"
            others = [s for s in auth.SCOPES if s != scope]
            wrong = _call(client, method, path, _token(secured, *others))
            assert wrong.status_code == 403, path
            assert f"needs the scope '{scope}'" in wrong.json()["issue"][0]["diagnostics"]
            right = _call(client, method, path, _token(secured, scope))
            assert right.status_code not in (401, 403), (path, right.text)
            assert right.status_code < 500, (path, right.text)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda s: "Bearer " + auth.dev_token(s, ["staff"], minutes=-1), "expired"),
        (
            lambda s: (
                "Bearer "
                + auth.mint(
                    auth.load_or_create_dev_key(auth.dev_key_path(s)),
                    subject="x",
                    scopes=["staff"],
                    audience="someone-else",
                )
            ),
            "audience",
        ),
        (
            lambda s: (
                "Bearer "
                + auth.mint(
                    rsa.generate_private_key(public_exponent=65537, key_size=2048),
                    subject="x",
                    scopes=["staff"],
                    audience=s.auth_audience,
                )
            ),
            "signature",
        ),
        (lambda s: "Bearer not.a.jwt", "not valid"),
        (lambda s: "Basic dXNlcjpwYXNz", "bearer token is required"),
    ],
)
def test_untrusted_tokens_are_refused_with_the_reason(
    secured: GatewayThread, make: object, words: str
) -> None:
    header = make(secured.gateway.settings)  # type: ignore[operator]
    answer = httpx.get(f"{secured.http_url}/print-list", headers={"Authorization": header}, timeout=10)
    assert answer.status_code == 401
    assert words in answer.json()["issue"][0]["diagnostics"]


def test_gateway_token_command_mints_a_token_the_gateway_trusts(
    secured: GatewayThread, tmp_path: Path
) -> None:
    env = {k: v for k, v in _env().items() if k != "GATEWAY_AUTH"}
    env["GATEWAY_DATA_DIR"] = str(tmp_path)
    minted = subprocess.run(
        [*GATEWAY, "token", "--scope", "staff", "--subject", "ssk-anna", "--minutes", "5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    answer = httpx.get(
        f"{secured.http_url}/print-list", headers={"Authorization": f"Bearer {minted}"}, timeout=10
    )
    assert answer.status_code == 200, answer.text


def test_a_configured_jwks_is_trusted_and_the_development_key_is_not(tmp_path: Path) -> None:
    issuer_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(auth.jwks_of(issuer_key.public_key(), "region-1"), encoding="utf-8")
    settings = _settings(tmp_path, auth_jwks_file=jwks, auth_issuer="https://idp.region.example")
    with GatewayThread(
        settings, register=FakeRegister(), accounts=FakeAccounts(), mailbox=FakeMailbox()
    ) as gw:
        good = auth.mint(
            issuer_key,
            subject="platform-1",
            scopes=["platform"],
            audience="gateway",
            issuer="https://idp.region.example",
            kid="region-1",
        )
        assert (
            httpx.get(
                f"{gw.http_url}/fhir/Appointment", headers={"Authorization": f"Bearer {good}"}
            ).status_code
            == 200
        )
        dev = auth.dev_token(settings, ["platform"])  # a key lying around is not the issuer
        assert (
            httpx.get(
                f"{gw.http_url}/fhir/Appointment", headers={"Authorization": f"Bearer {dev}"}
            ).status_code
            == 401
        )


def test_a_production_gateway_without_the_issuers_key_does_not_start(tmp_path: Path) -> None:
    settings = _settings(tmp_path, mocks=False)
    with pytest.raises(ConfigurationError, match="GATEWAY_AUTH_PUBLIC_KEY"):
        build(
            settings,
            register=FakeRegister(),
            accounts=FakeAccounts(),
            mailbox=FakeMailbox(),
            mailbox_delivery=FakeDelivery(),
            journal=object(),  # type: ignore[arg-type]
        )
