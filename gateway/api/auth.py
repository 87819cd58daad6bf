"""Who may call what: OAuth2 bearer tokens (JWT) with a scope per kind of caller.

Every HTTP route but ``/health`` needs a token signed with a key
the gateway trusts (``GATEWAY_AUTH_PUBLIC_KEY`` PEM file, or ``GATEWAY_AUTH_JWKS_FILE``), for
its audience (``GATEWAY_AUTH_AUDIENCE``), not expired, and carrying the route's scope in
``scope`` (a space-separated string, RFC 9068) or ``scp`` (a list of strings); a token with
``scope`` in any other shape (a list) is refused whole:

========== ======================================================================
scope      routes
========== ======================================================================
platform   the citizen platform: ``/fhir/...`` (read, search, ``$mark-read``)
journal    journal systems: ``POST /journal/hl7``
staff      ``/patients``, ``/print-list``, ``/held``, ``/reports``, ``/documents``, ``/outbox``
admin      ``/messages`` (browse, reprocess), ``/audit``
any        ``/openapi.json``, ``/docs``: any trusted token, whatever its scopes
========== ======================================================================

A missing or bad token is 401 (with ``WWW-Authenticate: Bearer``), whatever is wrong with it
(never a 5xx: :class:`Verifier`); a good token without the scope 403; an ``Authorization``
header over 8 KiB 431, unread. All are OperationOutcomes naming what was wrong.

With no key configured and the built-in mocks on (a developer's machine, the demo), the
gateway makes a development key pair under the data directory and trusts it; ``gateway token``
mints tokens with it. With the mocks off, a missing key is a configuration error: a production
gateway never starts without its issuer's key.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey, EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PrivateKey, Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from starlette.requests import Request  # fastapi.Request is this class; fastapi itself is not needed here

from gateway.errors import ConfigurationError, GatewayError
from gateway.settings import Settings

log = structlog.get_logger(__name__)

PLATFORM = "platform"
JOURNAL = "journal"
STAFF = "staff"
ADMIN = "admin"
SCOPES = (PLATFORM, JOURNAL, STAFF, ADMIN)
#: Any trusted token, whatever its scopes (the API's own description).
ANY = "any"
DEV_KEY_NAME = "dev-jwt-key.pem"
DEV_ISSUER = "gateway-dev"

# First match wins; None: open to anyone.
_POLICY: tuple[tuple[str, str | None], ...] = (
    ("/health", None),
    ("/openapi.json", ANY),
    ("/docs", ANY),
    ("/fhir/", PLATFORM),
    ("/rivta/", PLATFORM),  # RIV-TA crm:scheduling (docs/self-service.md)
    ("/journal/", JOURNAL),
    ("/patients", STAFF),
    ("/print-list", STAFF),
    ("/held", STAFF),
    ("/reports", STAFF),
    ("/documents", STAFF),
    ("/outbox", STAFF),
    ("/messages", ADMIN),
    ("/audit", ADMIN),
)


def required_scope(path: str) -> str | None:
    """The scope a path needs; an unlisted path needs ``admin`` (closed by default)."""
    for prefix, scope in _POLICY:
        if path == prefix.rstrip("/") or path.startswith(prefix):
            return scope
    return ADMIN


class Unauthorized(GatewayError):
    """No token, or one the gateway cannot trust (401). ``error`` is RFC 6750's code for the
    ``WWW-Authenticate`` header: ``invalid_token``, or None when no token was shown."""

    def __init__(self, message: str, *, error: str | None = "invalid_token") -> None:
        super().__init__(message)
        self.error = error

    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value (RFC 6750 3)."""
        return 'Bearer realm="gateway"' + (f', error="{self.error}"' if self.error else "")


class Forbidden(GatewayError):
    """A trusted token without the scope the route needs (403)."""


@dataclass(frozen=True, slots=True)
class Caller:
    subject: str
    scopes: frozenset[str]
    client: str | None = None


#: Algorithms each kind of key verifies (RFC 7518 3.1, RFC 8037). Never ``HS*`` (a shared
#: secret is not an issuer's public key) and never ``none``.
RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EC_ALGORITHMS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
OKP_CURVES = ("Ed25519", "Ed448")
#: The largest ``Authorization`` header looked at; a longer one is refused unread (431). Real
#: tokens are 1-2 KiB; 8 KiB is the common limit of proxies and servers for one header.
MAX_AUTHORIZATION_BYTES = 8192
_PUBLIC_KEYS = (RSAPublicKey, EllipticCurvePublicKey, Ed25519PublicKey, Ed448PublicKey)
#: The audit trail keeps a caller in 200 characters (gateway/store/tables.py): a longer subject
#: would be cut there, and could read as someone else.
_MAX_SUBJECT = 200


class AuthorizationTooLarge(GatewayError):
    """An ``Authorization`` header over :data:`MAX_AUTHORIZATION_BYTES` (431)."""


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """One issuer key, with one :class:`jwt.PyJWK` per algorithm it may verify."""

    kid: str | None
    by_algorithm: dict[str, jwt.PyJWK]


def trusted_key(jwk: dict[str, Any]) -> TrustedKey:
    """The algorithms a public JWK verifies: by its type and curve, narrowed to its ``alg`` if it
    declares one. Raises ``ConfigurationError`` saying why a key cannot check tokens."""
    kty, crv, declared, kid = jwk.get("kty"), jwk.get("crv"), jwk.get("alg"), jwk.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise ConfigurationError("its kid is not a string")
    if jwk.get("use", "sig") != "sig":
        raise ConfigurationError(f"it is for use {jwk.get('use')!r}, not sig")
    if kty == "RSA":
        algorithms: tuple[str, ...] = RSA_ALGORITHMS
    elif kty == "EC" and crv in EC_ALGORITHMS:
        algorithms = (EC_ALGORITHMS[crv],)
    elif kty == "OKP" and crv in OKP_CURVES:
        algorithms = ("EdDSA",)
    else:
        raise ConfigurationError(f"key type {kty!r} (curve {crv!r}) cannot verify issuer tokens")
    if declared is not None:
        if declared not in algorithms:
            raise ConfigurationError(f"its alg {declared!r} does not fit a {kty} key (curve {crv!r})")
        algorithms = (declared,)
    by_algorithm: dict[str, jwt.PyJWK] = {}
    for algorithm in algorithms:
        try:
            key = jwt.PyJWK(jwk, algorithm)
        except jwt.PyJWTError as exc:
            raise ConfigurationError(f"it cannot be read: {exc}") from exc
        if not isinstance(key.key, _PUBLIC_KEYS):
            raise ConfigurationError("it is not a public key (give the issuer's public key only)")
        by_algorithm[algorithm] = key
    return TrustedKey(kid, by_algorithm)


def jwk_of_pem(pem: bytes) -> dict[str, Any]:
    """A PEM public key (``GATEWAY_AUTH_PUBLIC_KEY``) as a JWK without ``kid`` or ``alg``."""
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise ConfigurationError(f"the issuer's public key is not a PEM public key: {exc}") from exc
    if isinstance(key, RSAPublicKey):
        return jwt.algorithms.RSAAlgorithm.to_jwk(key, as_dict=True)
    if isinstance(key, EllipticCurvePublicKey):
        return jwt.algorithms.ECAlgorithm.to_jwk(key, as_dict=True)
    if isinstance(key, Ed25519PublicKey | Ed448PublicKey):
        return jwt.algorithms.OKPAlgorithm.to_jwk(key, as_dict=True)
    raise ConfigurationError(f"the issuer's public key is a {type(key).__name__}; RSA, EC or Ed25519 only")


def jwks_keys(text: str) -> list[dict[str, Any]]:
    """The keys of a JWKS document, as :class:`jwt.PyJWKSet` reads it."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(f"GATEWAY_AUTH_JWKS_FILE is not JSON: {exc}") from exc
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise ConfigurationError('GATEWAY_AUTH_JWKS_FILE is not a JWKS ({"keys": [...]})')
    return [k for k in keys if isinstance(k, dict)]


class Verifier:
    """Checks bearer tokens against the issuer's keys; answers a :class:`Caller` or raises
    :class:`Unauthorized`, nothing else, whatever the token holds.

    The token's ``kid`` picks the key (a key without ``kid``, e.g. a PEM, stands for any); then
    its ``alg`` must be one that key verifies (RSA: RS/PS 256-512; EC: the curve's ES; OKP:
    EdDSA); without ``kid``, every key of the fitting type is tried. Each key is a
    :class:`jwt.PyJWK` bound to one algorithm, so a token can never choose how it is checked.
    """

    def __init__(self, keys: Sequence[TrustedKey], *, audience: str, issuer: str | None) -> None:
        if not keys:
            raise ConfigurationError("no key to check tokens with")
        self._keys = list(keys)
        self._audience = audience
        self._issuer = issuer
        self.algorithms = frozenset(a for k in self._keys for a in k.by_algorithm)

    def verify(self, token: str) -> Caller:
        try:
            return self._verify(token)
        except Unauthorized:
            raise
        except Exception as exc:  # PyJWT or cryptography raising what it does not document
            log.warning("auth.token_check_failed", error=type(exc).__name__)
            raise Unauthorized("the token is not valid: it could not be checked") from exc

    def _verify(self, token: str) -> Caller:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("the token is not valid: it is not a well-formed JWT") from exc
        algorithm, kid = header.get("alg"), header.get("kid")
        if not isinstance(algorithm, str) or algorithm not in self.algorithms:
            raise Unauthorized(
                f"the token is not valid: its algorithm {_shown(algorithm)} is not accepted "
                f"(the issuer's keys verify {', '.join(sorted(self.algorithms))})"
            )
        if kid is not None and not isinstance(kid, str):
            raise Unauthorized("the token is not valid: its kid is not a string")
        keys = self._keys
        if kid is not None:
            keys = [k for k in self._keys if k.kid == kid] or [k for k in self._keys if k.kid is None]
            if not keys:
                raise Unauthorized("the token's key id (kid) is not a trusted key (retired, or never ours)")
        candidates = [k.by_algorithm[algorithm] for k in keys if algorithm in k.by_algorithm]
        if not candidates:
            raise Unauthorized(f"the token is not valid: no trusted key of its kid verifies {algorithm}")
        for key in candidates:
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=[algorithm],
                    audience=self._audience,
                    issuer=self._issuer,
                    options={"require": ["exp", "sub"]},
                )
            except jwt.InvalidSignatureError:
                continue
            except jwt.ExpiredSignatureError as exc:
                raise Unauthorized("the token has expired") from exc
            except jwt.InvalidAudienceError as exc:
                raise Unauthorized(f"the token is not for this audience ({self._audience})") from exc
            except jwt.InvalidIssuerError as exc:
                raise Unauthorized("the token's issuer is not trusted") from exc
            except jwt.MissingRequiredClaimError as exc:
                raise Unauthorized(f"the token lacks the claim {exc.claim!r}") from exc
            except jwt.PyJWTError as exc:
                raise Unauthorized(f"the token is not valid: {exc}") from exc
            return _caller(claims)
        raise Unauthorized("the token's signature does not match a trusted key")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 20 else text[:17] + "..."


def _caller(claims: dict[str, Any]) -> Caller:
    subject = claims["sub"]
    if not isinstance(subject, str) or not 0 < len(subject) <= _MAX_SUBJECT:
        raise Unauthorized(f"the token is not valid: sub must be a string of 1-{_MAX_SUBJECT} characters")
    client = claims.get("client_id") or claims.get("azp")
    if not isinstance(client, str) or len(client) > _MAX_SUBJECT:
        client = None
    return Caller(subject, _scopes(claims), client)


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    """``scope`` is a space-separated string (RFC 8693 4.2, RFC 9068 2.2.3); ``scp`` a list of
    strings. Any other shape makes the token invalid: a list in ``scope`` is not read as scopes."""
    if "scope" in claims:
        raw = claims["scope"]
        if not isinstance(raw, str):
            raise Unauthorized(
                "the token is not valid: scope must be a space-separated string (RFC 9068); "
                "a list of scopes goes in scp"
            )
        return frozenset(raw.split())
    if "scp" in claims:
        listed = claims["scp"]
        if not isinstance(listed, list) or not all(isinstance(s, str) for s in listed):
            raise Unauthorized("the token is not valid: scp must be a list of strings")
        return frozenset(listed)
    return frozenset()


def dev_key_path(settings: Settings) -> Path:
    return settings.data_dir / DEV_KEY_NAME


def load_or_create_dev_key(path: Path) -> rsa.RSAPrivateKey:
    """The development signing key: made once, kept beside the development database."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ConfigurationError(f"{path} is not an RSA private key")
        return key
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.touch(mode=0o600)
    path.write_bytes(pem)
    return key


def verifier_for(settings: Settings) -> Verifier | None:
    """None when authentication is off (``GATEWAY_AUTH=off``: tests of other things only)."""
    if settings.auth == "off":
        log.warning("auth.off", hint="every route is open; never in production")
        return None
    keys: list[TrustedKey] = []
    issuer = settings.auth_issuer
    if settings.auth_public_key is not None:
        try:
            keys.append(trusted_key(jwk_of_pem(settings.auth_public_key.read_bytes())))
        except ConfigurationError as exc:
            raise ConfigurationError(f"GATEWAY_AUTH_PUBLIC_KEY cannot check tokens: {exc}") from exc
    if settings.auth_jwks_file is not None:
        found = jwks_keys(settings.auth_jwks_file.read_text(encoding="utf-8"))
        for n, jwk in enumerate(found):
            try:
                keys.append(trusted_key(jwk))
            except ConfigurationError as exc:  # an encryption key beside the signing ones, say
                log.warning("auth.jwks_key_skipped", index=n, kid=str(jwk.get("kid"))[:64], why=str(exc))
        if not keys:
            raise ConfigurationError("GATEWAY_AUTH_JWKS_FILE holds no key that can check tokens")
    if not keys:
        if not settings.mocks:
            raise ConfigurationError(
                "GATEWAY_AUTH_PUBLIC_KEY or GATEWAY_AUTH_JWKS_FILE must name the token issuer's key "
                "(or GATEWAY_AUTH=off, never in production)"
            )
        path = dev_key_path(settings)
        dev_jwk = jwt.algorithms.RSAAlgorithm.to_jwk(load_or_create_dev_key(path).public_key(), as_dict=True)
        keys.append(trusted_key(dev_jwk))
        issuer = issuer or DEV_ISSUER
        log.warning("auth.development_key", key=str(path), hint="gateway token --scope ... mints tokens")
    return Verifier(keys, audience=settings.auth_audience, issuer=issuer)


def mint(
    key: Any,
    *,
    subject: str,
    scopes: Sequence[str],
    audience: str,
    issuer: str = DEV_ISSUER,
    minutes: float = 60,
    kid: str | None = None,
    algorithm: str | None = None,
    claims: dict[str, Any] | None = None,
) -> str:
    """A signed token (development and tests; production tokens come from the region's issuer).
    ``claims`` are added to (or replace) the usual ones."""
    now = int(time.time())
    body: dict[str, Any] = {
        "sub": subject,
        "scope": " ".join(scopes),
        "aud": audience,
        "iss": issuer,
        "iat": now,
        "exp": now + int(minutes * 60),
        "jti": uuid.uuid4().hex,
    }
    headers = {"kid": kid} if kid else None
    algorithm = algorithm or signing_algorithm(key)
    return jwt.encode(body | (claims or {}), key, algorithm=algorithm, headers=headers)


def signing_algorithm(key: Any) -> str:
    """The algorithm a private key signs with by default: RS256, its curve's ES, or EdDSA."""
    if isinstance(key, EllipticCurvePrivateKey):
        by_curve = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
        if key.curve.name in by_curve:
            return by_curve[key.curve.name]
    if isinstance(key, Ed25519PrivateKey | Ed448PrivateKey):
        return "EdDSA"
    return "RS256"


def dev_token(
    settings: Settings, scopes: Sequence[str], *, subject: str = "developer", minutes: float = 60
) -> str:
    """A token the gateway with these settings trusts when it runs on its development key."""
    key = load_or_create_dev_key(dev_key_path(settings))
    return mint(
        key,
        subject=subject,
        scopes=scopes,
        audience=settings.auth_audience,
        issuer=settings.auth_issuer or DEV_ISSUER,
        minutes=minutes,
    )


async def authorize(request: Request) -> None:
    """The app-wide dependency: check the token against the route's scope."""
    verifier: Verifier | None = request.app.state.verifier
    scope = required_scope(request.url.path)
    if verifier is None or scope is None:
        return
    raw = next((value for name, value in request.scope["headers"] if name == b"authorization"), b"")
    if len(raw) > MAX_AUTHORIZATION_BYTES:  # refused before it is decoded or parsed
        raise AuthorizationTooLarge(f"the Authorization header is over {MAX_AUTHORIZATION_BYTES} bytes")
    kind, _, token = raw.decode("latin-1").partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        raise Unauthorized("a bearer token is required (Authorization: Bearer <token>)", error=None)
    caller = verifier.verify(token.strip())
    request.state.caller = caller
    if scope != ANY and scope not in caller.scopes:
        # The scope, not the path: a path can carry a personnummer (/patients/{id}).
        log.warning("auth.forbidden", subject=caller.subject, needed=scope)
        raise Forbidden(
            f"this route needs the scope {scope!r}; the token has {sorted(caller.scopes) or 'none'}"
        )


def public_jwk(key: Any, *, kid: str | None, alg: str | None = None) -> dict[str, Any]:
    """A public key (RSA, EC or Ed25519/Ed448) as a JWK for signatures."""
    pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    jwk = jwk_of_pem(pem) | {"use": "sig"}
    if kid is not None:
        jwk["kid"] = kid
    if alg is not None:
        jwk["alg"] = alg
    return jwk


def jwks_of(key: rsa.RSAPublicKey, kid: str) -> str:
    """A JWKS document holding one public key (for operators setting up GATEWAY_AUTH_JWKS_FILE)."""
    return json.dumps({"keys": [public_jwk(key, kid=kid, alg="RS256")]})
