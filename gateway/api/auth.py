"""Who may call what: OAuth2 bearer tokens (JWT) with a scope per kind of caller.

Every HTTP route but ``/health`` needs a token signed with a key
the gateway trusts (``GATEWAY_AUTH_PUBLIC_KEY`` PEM file, or ``GATEWAY_AUTH_JWKS_FILE``), for
its audience (``GATEWAY_AUTH_AUDIENCE``), not expired, and carrying the route's scope in
``scope`` (space-separated) or ``scp`` (a list):

========== ======================================================================
scope      routes
========== ======================================================================
platform   the citizen platform: ``/fhir/...`` (read, search, ``$mark-read``)
journal    journal systems: ``POST /journal/hl7``
staff      ``/patients``, ``/print-list``, ``/held``, ``/reports``, ``/documents``, ``/outbox``
admin      ``/messages`` (browse, reprocess), ``/audit``
any        ``/openapi.json``, ``/docs``: any trusted token, whatever its scopes
========== ======================================================================

A missing or bad token is 401 (with ``WWW-Authenticate: Bearer``), a good token without the
scope 403; both as OperationOutcomes naming what was wrong.

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
from fastapi import Request

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
ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]
DEV_KEY_NAME = "dev-jwt-key.pem"
DEV_ISSUER = "gateway-dev"

# First match wins; None: open to anyone.
_POLICY: tuple[tuple[str, str | None], ...] = (
    ("/health", None),
    ("/openapi.json", ANY),
    ("/docs", ANY),
    ("/fhir/", PLATFORM),
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
    """No token, or one the gateway cannot trust (401)."""


class Forbidden(GatewayError):
    """A trusted token without the scope the route needs (403)."""


@dataclass(frozen=True, slots=True)
class Caller:
    subject: str
    scopes: frozenset[str]
    client: str | None = None


class Verifier:
    """Checks bearer tokens against the configured key(s)."""

    def __init__(self, keys: Sequence[Any], *, audience: str, issuer: str | None) -> None:
        if not keys:
            raise ConfigurationError("no key to check tokens with")
        self._keys = list(keys)
        self._audience = audience
        self._issuer = issuer

    def verify(self, token: str) -> Caller:
        last: Exception | None = None
        for key in self._keys:
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=ALGORITHMS,
                    audience=self._audience,
                    issuer=self._issuer,
                    options={"require": ["exp", "sub"]},
                )
            except jwt.InvalidSignatureError as exc:
                last = exc
                continue
            except jwt.ExpiredSignatureError as exc:
                raise Unauthorized("the token has expired") from exc
            except jwt.InvalidAudienceError as exc:
                raise Unauthorized(f"the token is not for this audience ({self._audience})") from exc
            except jwt.InvalidIssuerError as exc:
                raise Unauthorized("the token's issuer is not trusted") from exc
            except jwt.MissingRequiredClaimError as exc:
                raise Unauthorized(f"the token lacks the claim {exc.claim!r}") from exc
            except jwt.InvalidTokenError as exc:
                raise Unauthorized(f"the token is not valid: {exc}") from exc
            return Caller(str(claims["sub"]), _scopes(claims), claims.get("client_id") or claims.get("azp"))
        raise Unauthorized("the token's signature does not match a trusted key") from last


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    raw = claims.get("scope", claims.get("scp", ""))
    if isinstance(raw, str):
        return frozenset(raw.split())
    if isinstance(raw, list):
        return frozenset(str(s) for s in raw)
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
    keys: list[Any] = []
    issuer = settings.auth_issuer
    if settings.auth_public_key is not None:
        keys.append(serialization.load_pem_public_key(settings.auth_public_key.read_bytes()))
    if settings.auth_jwks_file is not None:
        jwks = jwt.PyJWKSet.from_json(settings.auth_jwks_file.read_text(encoding="utf-8"))
        keys += [k.key for k in jwks.keys]
    if not keys:
        if not settings.mocks:
            raise ConfigurationError(
                "GATEWAY_AUTH_PUBLIC_KEY or GATEWAY_AUTH_JWKS_FILE must name the token issuer's key "
                "(or GATEWAY_AUTH=off, never in production)"
            )
        path = dev_key_path(settings)
        keys.append(load_or_create_dev_key(path).public_key())
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
) -> str:
    """A signed token (development and tests; production tokens come from the region's issuer)."""
    now = int(time.time())
    claims = {
        "sub": subject,
        "scope": " ".join(scopes),
        "aud": audience,
        "iss": issuer,
        "iat": now,
        "exp": now + int(minutes * 60),
        "jti": uuid.uuid4().hex,
    }
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, key, algorithm="RS256", headers=headers)


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
    header = request.headers.get("authorization", "")
    kind, _, token = header.partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        raise Unauthorized("a bearer token is required (Authorization: Bearer <token>)")
    caller = verifier.verify(token.strip())
    request.state.caller = caller
    if scope != ANY and scope not in caller.scopes:
        log.warning("auth.forbidden", subject=caller.subject, needed=scope, path=request.url.path)
        raise Forbidden(
            f"this route needs the scope {scope!r}; the token has {sorted(caller.scopes) or 'none'}"
        )


def jwks_of(key: rsa.RSAPublicKey, kid: str) -> str:
    """A JWKS document holding one public key (for operators setting up GATEWAY_AUTH_JWKS_FILE)."""
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key))
    jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
    return json.dumps({"keys": [jwk]})
