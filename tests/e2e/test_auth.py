"""Who may call what (issue 7, item 1): bearer tokens and scopes on every route but /health."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from structlog.testing import capture_logs

from gateway.api import auth
from gateway.bootstrap import Gateway, build
from gateway.errors import ConfigurationError
from gateway.settings import Settings
from gateway.testing import GatewayThread
from mocks.services import MockServices
from tests.e2e.test_cli import GATEWAY, _env
from tests.fakes import FakeAccounts, FakeDelivery, FakeMailbox, FakeRegister
from tests.support import TOLVAN, migrated, siu


def _settings(tmp_path: Path, **extra: object) -> Settings:
    return Settings(
        data_dir=migrated(tmp_path),
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


# --- Token checking that never throws (issue 14, point 3): in process, with the issuer's keys ---

ISSUER = "https://idp.region.example"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_NEXT = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
EC_384 = ec.generate_private_key(ec.SECP384R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()
STRANGER_EC = ec.generate_private_key(ec.SECP256R1())
#: A mixed JWKS, as during a rotation from EC to RSA: every kind of key the gateway verifies.
MIXED = [
    auth.public_jwk(EC_KEY.public_key(), kid="ec-1"),
    auth.public_jwk(RSA_KEY.public_key(), kid="rsa-1"),
    auth.public_jwk(EC_384.public_key(), kid="ec-384"),
    auth.public_jwk(ED_KEY.public_key(), kid="ed-1", alg="EdDSA"),
]


def _build(tmp_path: Path, name: str, jwks: list[dict[str, Any]] | None = None, **extra: object) -> Gateway:
    """A gateway built but not started: its app is called in process."""
    if jwks is not None:
        path = tmp_path / f"jwks-{name}.json"
        path.write_text(json.dumps({"keys": jwks}), encoding="utf-8")
        extra |= {"auth_jwks_file": path, "auth_issuer": ISSUER}
    return build(
        _settings(tmp_path, **extra),
        register=FakeRegister(),
        accounts=FakeAccounts(),
        mailbox=FakeMailbox(),
        mailbox_delivery=FakeDelivery(),
        journal=object(),  # type: ignore[arg-type]
    )


def _close(gw: Gateway) -> None:
    gw.app.state.audit.stop()
    gw.engine.dispose()


@pytest.fixture
def gateways(tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    """Gateways built but not started: their app is called in process."""
    built: list[Gateway] = []

    def make(jwks: list[dict[str, Any]] | None = None, **extra: object) -> Gateway:
        gw = _build(tmp_path, str(len(built)), jwks, **extra)
        built.append(gw)
        return gw

    yield make
    for gw in built:
        _close(gw)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One gateway trusting the MIXED key set for the table of forged tokens (each case only reads)."""
    gw = _build(tmp_path_factory.mktemp("mixed"), "mixed", MIXED)
    yield gw
    _close(gw)


def _client(gw: Gateway) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.app), base_url="http://gateway")


def _signed(key: Any, algorithm: str, kid: str | None, **claims: object) -> str:
    return auth.mint(
        key,
        subject="plattform-1177",
        scopes=[auth.PLATFORM],
        audience="gateway",
        issuer=ISSUER,
        kid=kid,
        algorithm=algorithm,
        claims=dict(claims),
    )


def _bearer(token: str | bytes) -> dict[str, str | bytes]:
    return {"Authorization": (b"Bearer " + token) if isinstance(token, bytes) else f"Bearer {token}"}


def _b64(data: bytes | dict[str, Any]) -> str:
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims() -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "x", "scope": "platform", "aud": "gateway", "iss": ISSUER, "exp": now + 600}


def _hs256(secret: bytes, kid: str | None = None) -> str:
    header = {"alg": "HS256", "typ": "JWT"} | ({"kid": kid} if kid else {})
    signing_input = f"{_b64(header)}.{_b64(_claims())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def _rs256(header: dict[str, Any]) -> str:
    """Signed by the trusted RSA key, with a header PyJWT itself would not write."""
    signing_input = f"{_b64(header)}.{_b64(_claims())}"
    signature = RSA_KEY.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def _cut(token: str) -> str:
    """The token with its signature's first half only (still good base64)."""
    head, payload, signature = token.split(".")
    raw = base64.urlsafe_b64decode(signature + "==")
    return f"{head}.{payload}.{_b64(raw[: len(raw) // 2])}"


def _unsigned(alg: object) -> str:
    return f"{_b64({'alg': alg, 'typ': 'JWT'})}.{_b64(_claims())}."


def _assert_refused(answer: httpx.Response, words: str = "") -> None:
    assert answer.status_code == 401, answer.text
    assert answer.headers["www-authenticate"].startswith('Bearer realm="gateway"')
    body = answer.json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == "login"
    assert words in body["issue"][0]["diagnostics"]


@pytest.mark.parametrize(
    ("key", "algorithm", "kid"),
    [
        (RSA_KEY, "RS256", "rsa-1"),
        (RSA_KEY, "RS384", "rsa-1"),
        (RSA_KEY, "RS512", "rsa-1"),
        (RSA_KEY, "PS256", "rsa-1"),
        (RSA_KEY, "PS512", "rsa-1"),
        (EC_KEY, "ES256", "ec-1"),
        (EC_384, "ES384", "ec-384"),
        (ED_KEY, "EdDSA", "ed-1"),
        # Without kid: each key of the fitting type is tried.
        (RSA_KEY, "RS256", None),
        (EC_KEY, "ES256", None),
        (EC_384, "ES384", None),
    ],
)
async def test_tokens_from_every_key_of_a_mixed_jwks_are_trusted(
    gateways: Callable[..., Gateway], key: Any, algorithm: str, kid: str | None
) -> None:
    async with _client(gateways(MIXED)) as client:
        answer = await client.get("/fhir/metadata", headers=_bearer(_signed(key, algorithm, kid)))
    assert answer.status_code == 200, answer.text


async def test_a_rotated_out_key_is_refused_by_its_kid_and_the_new_one_trusted(
    gateways: Callable[..., Gateway],
) -> None:
    old = _signed(RSA_KEY, "RS256", "rsa-1")
    new = _signed(RSA_NEXT, "RS256", "rsa-2")
    during = gateways([*MIXED, auth.public_jwk(RSA_NEXT.public_key(), kid="rsa-2", alg="RS256")])
    after = gateways([auth.public_jwk(RSA_NEXT.public_key(), kid="rsa-2", alg="RS256")])
    async with _client(during) as client:
        for token in (old, new):
            assert (await client.get("/fhir/metadata", headers=_bearer(token))).status_code == 200
    async with _client(after) as client:
        _assert_refused(await client.get("/fhir/metadata", headers=_bearer(old)), "kid")
        assert (await client.get("/fhir/metadata", headers=_bearer(new))).status_code == 200
        # Without its kid, the old key's token meets the new key, and its signature does not fit.
        no_kid = _signed(RSA_KEY, "RS256", None)
        _assert_refused(await client.get("/fhir/metadata", headers=_bearer(no_kid)), "signature")
        # And the EC key retired with it: its algorithm is no longer accepted at all.
        ec_token = _signed(EC_KEY, "ES256", "ec-1")
        _assert_refused(await client.get("/fhir/metadata", headers=_bearer(ec_token)), "'ES256' is not")


RSA_PEM = RSA_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)
VALID = _signed(RSA_KEY, "RS256", "rsa-1")
HEADER, PAYLOAD, SIGNATURE = VALID.split(".")
#: Forged and odd tokens of every kind, each with words of its reason.
FORGED: list[tuple[str, str | bytes, str]] = [
    ("alg none", _unsigned("none"), "'none' is not accepted"),
    ("alg None", _unsigned("None"), "not accepted"),
    ("alg missing", f"{_b64({'typ': 'JWT'})}.{PAYLOAD}.{SIGNATURE}", "None is not accepted"),
    ("alg a list", _unsigned(["RS256"]), "not accepted"),
    ("HS256 with the RSA public key as secret", _hs256(RSA_PEM, kid="rsa-1"), "'HS256' is not accepted"),
    ("HS256 with a secret", _hs256(b"secret"), "'HS256' is not accepted"),
    ("ES256 under the RSA key's kid", _signed(EC_KEY, "ES256", "rsa-1"), "no trusted key of its kid"),
    ("RS256 under the EC key's kid", _signed(RSA_KEY, "RS256", "ec-1"), "no trusted key of its kid"),
    ("ES384 under the P-256 key's kid", _signed(EC_384, "ES384", "ec-1"), "no trusted key of its kid"),
    ("EdDSA under the RSA key's kid", _signed(ED_KEY, "EdDSA", "rsa-1"), "no trusted key of its kid"),
    ("a stranger's ES256 with our kid", _signed(STRANGER_EC, "ES256", "ec-1"), "signature"),
    ("a stranger's ES256 without kid", _signed(STRANGER_EC, "ES256", None), "signature"),
    ("an unknown kid", _signed(RSA_KEY, "RS256", "who-1"), "kid"),
    ("kid a number", _rs256({"alg": "RS256", "kid": 5}), "not valid"),
    ("unknown crit header", _rs256({"alg": "RS256", "kid": "rsa-1", "crit": ["x"]}), "not valid"),
    ("ES512: no P-521 key", _signed(ec.generate_private_key(ec.SECP521R1()), "ES512", None), "not accepted"),
    ("signature cut short", VALID[:-10], "signature"),
    ("signature not base64", f"{HEADER}.{PAYLOAD}.!!!!", "not valid"),
    ("signature of another token", f"{HEADER}.{_b64(_claims())}.{SIGNATURE}", "signature"),
    ("ES256 signature of the wrong length", _cut(_signed(EC_KEY, "ES256", "ec-1")), "signature"),
    ("two parts", f"{HEADER}.{PAYLOAD}", "well-formed"),
    ("four parts", f"{VALID}.{SIGNATURE}", "well-formed"),
    ("header not base64", f"!!!.{PAYLOAD}.{SIGNATURE}", "well-formed"),
    ("header not JSON", f"{_b64(b'not json')}.{PAYLOAD}.{SIGNATURE}", "well-formed"),
    ("header a JSON list", f"{_b64(b'[1]')}.{PAYLOAD}.{SIGNATURE}", "well-formed"),
    ("not a JWT", "not-a-jwt", "well-formed"),
    ("dots only", "..", "well-formed"),
    ("bytes beyond ASCII", "é.ö.å".encode("latin-1"), "well-formed"),
    ("payload not JSON, signed", jwt.api_jws.encode(b"[1]", RSA_KEY, "RS256", {"kid": "rsa-1"}), "not valid"),
    ("exp not a number", _signed(RSA_KEY, "RS256", "rsa-1", exp="tomorrow"), "not valid"),
    ("sub a number", _signed(RSA_KEY, "RS256", "rsa-1", sub=42), "not valid"),
    ("sub too long", _signed(RSA_KEY, "RS256", "rsa-1", sub="x" * 201), "sub must be"),
    ("aud a number", _signed(RSA_KEY, "RS256", "rsa-1", aud=7), "audience"),
]


@pytest.mark.parametrize(("token", "words"), [(t, w) for _, t, w in FORGED], ids=[n for n, _, _ in FORGED])
async def test_forged_and_odd_tokens_are_401_operation_outcomes_never_5xx(
    mixed: Gateway, token: str | bytes, words: str
) -> None:
    gw = mixed
    with capture_logs() as logs:
        async with _client(gw) as client:
            answer = await client.get("/fhir/metadata", headers=_bearer(token))
    _assert_refused(answer, words)
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]
    assert logs == []  # a refused token is an answer, not a log line (nor a traceback)


async def test_an_exception_pyjwt_does_not_document_is_still_a_401_with_one_short_log_line(
    gateways: Callable[..., Gateway], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise TypeError("Expecting a PEM-formatted key.")  # what PyJWT 2 raises for a wrong key type

    gw = gateways(MIXED)
    monkeypatch.setattr(jwt, "decode", broken)
    with capture_logs() as logs:
        async with _client(gw) as client:
            answer = await client.get("/fhir/metadata", headers=_bearer(VALID))
    _assert_refused(answer, "could not be checked")
    assert logs == [{"event": "auth.token_check_failed", "error": "TypeError", "log_level": "warning"}]


@pytest.mark.parametrize(
    ("claims", "status"),
    [
        ({"scope": "platform staff"}, 200),  # RFC 9068: a space-separated string
        ({"scope": None, "scp": ["platform"]}, 200),  # scp: a list of strings
        ({"scope": ["platform"]}, 401),  # a list in scope is not read as scopes
        ({"scope": None, "scp": "platform"}, 401),
        ({"scope": None, "scp": ["platform", 7]}, 401),
        ({"scope": 7}, 401),
        ({"scope": None}, 403),  # no scope at all: trusted, but may not
    ],
)
async def test_scope_is_a_space_separated_string_and_scp_a_list(
    gateways: Callable[..., Gateway], claims: dict[str, Any], status: int
) -> None:
    token = _signed(RSA_KEY, "RS256", "rsa-1", **claims)
    if claims.get("scope", "") is None:  # drop the claim mint writes
        body = jwt.decode(token, options={"verify_signature": False})
        del body["scope"]
        token = jwt.encode(body, RSA_KEY, "RS256", {"kid": "rsa-1"})
    async with _client(gateways(MIXED)) as client:
        answer = await client.get("/fhir/metadata", headers=_bearer(token))
    assert answer.status_code == status, answer.text
    if status == 401:
        assert "scope must be" in answer.text or "scp must be" in answer.text


async def test_an_authorization_header_over_8_kib_is_refused_unread(
    gateways: Callable[..., Gateway],
) -> None:
    class Untouched:
        def verify(self, token: str) -> auth.Caller:
            raise AssertionError("a token over the limit was parsed")

    gw = gateways(MIXED)
    trusting = gw.app.state.verifier
    gw.app.state.verifier = Untouched()
    async with _client(gw) as client:
        for size in (auth.MAX_AUTHORIZATION_BYTES - 6, 1024 * 1024):  # "Bearer " + token
            answer = await client.get("/fhir/metadata", headers=_bearer("a" * size))
            assert answer.status_code == 431, answer.text
            assert answer.json()["issue"][0]["code"] == "too-costly"
        gw.app.state.verifier = trusting
        assert (await client.get("/fhir/metadata", headers=_bearer(VALID))).status_code == 200


async def test_an_ec_public_key_as_pem_checks_es256_and_nothing_else(
    gateways: Callable[..., Gateway], tmp_path: Path
) -> None:
    pem = tmp_path / "issuer-ec.pem"
    pem.write_bytes(
        EC_KEY.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    gw = gateways(auth_public_key=pem, auth_issuer=ISSUER)
    async with _client(gw) as client:
        for kid in (None, "whatever-the-issuer-calls-it"):  # a PEM has no kid: it stands for any
            token = _signed(EC_KEY, "ES256", kid)
            assert (await client.get("/fhir/metadata", headers=_bearer(token))).status_code == 200
        # mint (and so `gateway token --key`) signs with what the key's type verifies.
        minted = auth.mint(EC_KEY, subject="x", scopes=[auth.PLATFORM], audience="gateway", issuer=ISSUER)
        assert jwt.get_unverified_header(minted)["alg"] == "ES256"
        assert (await client.get("/fhir/metadata", headers=_bearer(minted))).status_code == 200
        for token in (VALID, _signed(EC_384, "ES384", None), _hs256(pem.read_bytes())):
            _assert_refused(await client.get("/fhir/metadata", headers=_bearer(token)), "not accepted")


def test_jwks_keys_that_cannot_check_tokens_are_skipped_and_none_left_refuses_to_start(
    gateways: Callable[..., Gateway],
) -> None:
    private = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA_NEXT)) | {"kid": "leaked"}
    unusable = [
        {"kty": "oct", "k": _b64(b"shared secret"), "kid": "hmac"},  # HS*: never
        auth.public_jwk(RSA_NEXT.public_key(), kid="enc-1") | {"use": "enc"},
        auth.public_jwk(EC_KEY.public_key(), kid="wrong-alg", alg="ES384"),
        private,
        {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
    ]
    with capture_logs() as logs:
        gw = gateways([*unusable, auth.public_jwk(RSA_KEY.public_key(), kid="rsa-1")])
    assert [e["kid"] for e in logs if e["event"] == "auth.jwks_key_skipped"] == [
        "hmac",
        "enc-1",
        "wrong-alg",
        "leaked",
        "broken",
    ]
    assert gw.app.state.verifier.algorithms == set(auth.RSA_ALGORITHMS)
    with pytest.raises(ConfigurationError, match="no key that can check tokens"):
        gateways(unusable)


# --- Response headers (issue 14, point 6) ---

SECURITY_HEADERS = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
}


async def test_every_answer_with_personal_data_or_an_error_is_not_stored_sniffed_or_framed(
    gateways: Callable[..., Gateway],
) -> None:
    gw = gateways()  # on the development key
    every = {"Authorization": "Bearer " + auth.dev_token(gw.settings, auth.SCOPES)}
    staff_only = {"Authorization": "Bearer " + auth.dev_token(gw.settings, [auth.STAFF])}

    @gw.app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    calls: list[tuple[str, str, dict[str, Any], int]] = [
        ("GET", "/fhir/metadata", every, 200),
        ("GET", "/fhir/Appointment", every, 200),
        ("GET", "/fhir/Communication", every, 200),
        ("GET", "/fhir/Appointment/999", every, 404),
        ("GET", f"/patients/{TOLVAN}", every, 200),
        ("GET", "/messages", every, 200),
        ("GET", "/print-list", every, 200),
        ("GET", "/audit", every, 200),
        ("GET", "/openapi.json", every, 200),
        ("GET", "/health", {}, 200),
        ("GET", "/no-such-route", every, 404),
        ("DELETE", "/audit", every, 405),
        ("GET", "/print-list", {}, 401),
        ("GET", "/audit", staff_only, 403),
        ("GET", "/audit?_count=0", every, 400),  # a validation error (FastAPI's 422) is a 400 here
        ("POST", "/fhir/Appointment/_search", every | {"Content-Length": "99999999"}, 413),
        ("GET", "/fhir/metadata", {"Authorization": "Bearer " + "a" * 10_000}, 431),
        ("GET", "/boom", every, 500),
    ]
    transport = httpx.ASGITransport(app=gw.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        for method, path, headers, status in calls:
            answer = await client.request(method, path, headers=headers)
            assert answer.status_code == status, (method, path, answer.text)
            assert {k: answer.headers.get(k) for k in SECURITY_HEADERS} == SECURITY_HEADERS, path
            assert answer.headers["referrer-policy"] == "no-referrer"
        docs = await client.get("/docs", headers=every)
    # Swagger UI loads its scripts: only the frame rule in its CSP, the rest as everywhere.
    assert docs.headers["content-security-policy"] == "frame-ancestors 'none'"
    assert docs.headers["x-frame-options"] == "DENY" and docs.headers["cache-control"] == "no-store"


def test_neither_the_gateway_nor_the_mocks_name_their_server(secured: GatewayThread) -> None:
    answer = httpx.get(f"{secured.http_url}/health", timeout=10)
    assert answer.status_code == 200 and "server" not in answer.headers
    mocks = MockServices.default(port=0).start()
    try:
        mocked = httpx.get(f"{mocks.url}/accounts/v1/nothing-here", timeout=10)
    finally:
        mocks.stop()
    assert "server" not in mocked.headers
