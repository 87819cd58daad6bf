"""Sign-in with OpenID Connect: authorization code flow with PKCE (S256).

Authlib builds the authorization request, the PKCE pair and the token request and checks the
state on the way back; PyJWT (as ``gateway/api/auth.py``) checks the tokens' signatures against
the provider's JWKS. Roles are the token's scopes the API knows (``staff``, ``admin``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from authlib.common.errors import AuthlibBaseError
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import (
    parse_authorization_code_response,
    prepare_grant_uri,
    prepare_token_request,
)
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from gateway.api import auth
from gateway.api.console.settings import OidcSettings
from gateway.errors import GatewayError

ROLES = (auth.STAFF, auth.ADMIN)
_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]


class SignInFailed(GatewayError):
    """The provider's answer cannot be trusted or used (the page says so, in Swedish)."""


@dataclass(frozen=True, slots=True)
class SignedIn:
    subject: str
    name: str
    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Metadata:
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


class OidcClient:
    def __init__(self, settings: OidcSettings, http: httpx.AsyncClient) -> None:
        if settings.issuer is None or settings.client_secret is None:
            raise ValueError("OidcClient needs an issuer and a client secret")
        self.settings = settings
        self.issuer = settings.issuer.rstrip("/")
        self._secret = settings.client_secret
        self._http = http
        self._metadata: _Metadata | None = None
        self._keys: jwt.PyJWKSet | None = None

    async def _get(self, url: str) -> Any:
        try:
            response = await self._http.get(url, timeout=self.settings.timeout)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SignInFailed(
                f"identity provider unreachable or answered badly ({type(exc).__name__})"
            ) from exc

    async def metadata(self) -> _Metadata:
        if self._metadata is None:
            doc = await self._get(f"{self.issuer}/.well-known/openid-configuration")
            if str(doc.get("issuer", "")).rstrip("/") != self.issuer:
                raise SignInFailed("the provider's discovery document names another issuer")
            self._metadata = _Metadata(doc["authorization_endpoint"], doc["token_endpoint"], doc["jwks_uri"])
        return self._metadata

    async def _key(self, token: str) -> Any:
        kid = jwt.get_unverified_header(token).get("kid")
        for refresh in (False, True):  # a key the provider rotated in: fetch the set once more
            if self._keys is None or refresh:
                self._keys = jwt.PyJWKSet.from_dict(await self._get((await self.metadata()).jwks_uri))
            for key in self._keys.keys:
                if kid is None or key.key_id == kid:
                    return key.key
        raise SignInFailed("the token is signed with a key the provider does not publish")

    async def start(self, redirect_uri: str) -> tuple[str, dict[str, str]]:
        """The provider's authorization URL, and what the session keeps until the callback."""
        meta = await self.metadata()
        pending = {"state": generate_token(32), "nonce": generate_token(32), "verifier": generate_token(64)}
        url = prepare_grant_uri(
            meta.authorization_endpoint,
            self.settings.client_id,
            "code",
            redirect_uri=redirect_uri,
            scope=self.settings.scope,
            state=pending["state"],
            nonce=pending["nonce"],
            code_challenge=create_s256_code_challenge(pending["verifier"]),
            code_challenge_method="S256",
        )
        return url, pending

    async def finish(self, callback_url: str, pending: dict[str, str], redirect_uri: str) -> SignedIn:
        """Check the callback, exchange the code, check the tokens; who signed in and their roles."""
        try:
            params = parse_authorization_code_response(callback_url, state=pending["state"])
        except AuthlibBaseError as exc:
            raise SignInFailed(
                f"the answer from the provider does not match this sign-in ({exc.error})"
            ) from exc
        meta = await self.metadata()
        body = prepare_token_request(
            "authorization_code",
            code=params["code"],
            redirect_uri=redirect_uri,
            code_verifier=pending["verifier"],
        )
        try:
            response = await self._http.post(
                meta.token_endpoint,
                content=body,
                headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
                auth=(self.settings.client_id, self._secret.get_secret_value()),
                timeout=self.settings.timeout,
            )
            tokens = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SignInFailed(f"the token endpoint failed ({type(exc).__name__})") from exc
        if response.status_code != 200 or "id_token" not in tokens:
            raise SignInFailed(
                f"the token endpoint refused the code ({tokens.get('error', response.status_code)})"
            )
        claims = await self._verify(tokens["id_token"])
        if claims.get("nonce") != pending["nonce"]:
            raise SignInFailed("the ID token's nonce does not match this sign-in")
        scopes: set[str] = set()
        access = tokens.get("access_token")
        if isinstance(access, str) and access.count(".") == 2:
            scopes = _scopes(await self._verify(access))
        else:  # an opaque access token: the scopes the token response granted
            scopes = set(str(tokens.get("scope", "")).split())
        return SignedIn(
            subject=str(claims["sub"]),
            name=str(claims.get("name") or claims["sub"]),
            roles=tuple(r for r in ROLES if r in scopes),
        )

    async def _verify(self, token: str) -> dict[str, Any]:
        try:
            key = await self._key(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=_ALGORITHMS,
                audience=self.settings.client_id,
                issuer=self.issuer,
                options={"require": ["exp", "sub", "iss"]},
            )
        except jwt.InvalidTokenError as exc:
            raise SignInFailed(f"a token from the provider is not valid ({type(exc).__name__})") from exc
        return claims


def _scopes(claims: dict[str, Any]) -> set[str]:
    raw = claims.get("scope", claims.get("scp", ""))
    if isinstance(raw, list):
        return {str(s) for s in raw}
    return set(str(raw).split())
