"""The mock OpenID provider's ASGI app (see the package docstring)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

PATH = "/oidc"
#: The console's registration at the mock (development only; a real provider issues its own).
CLIENT_ID = "gateway-console"
CLIENT_SECRET = "mock-console-secret"
KEY_ID = "mock-oidc-1"
CODE_SECONDS = 60
TOKEN_SECONDS = 3600


@dataclass(frozen=True, slots=True)
class TestUser:
    subject: str
    name: str
    scopes: tuple[str, ...]
    description: str


#: No personnummer here: staff sign in with their own identity, never a patient's.
TEST_USERS: tuple[TestUser, ...] = (
    TestUser("anna.vard", "Anna Andersson", ("staff",), "vårdpersonal (staff)"),
    TestUser("olle.admin", "Olle Olsson", ("staff", "admin"), "förvaltare (staff och admin)"),
)


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    user: TestUser
    scope: str
    expires: float


@dataclass
class _Provider:
    clients: dict[str, str]
    codes: dict[str, _Grant] = field(default_factory=dict)
    _key: rsa.RSAPrivateKey | None = None

    @property
    def key(self) -> rsa.RSAPrivateKey:
        # Made at first use: every gateway on the mocks builds this app, few sign anyone in.
        if self._key is None:
            self._key = rsa.generate_private_key(65537, 2048)
        return self._key

    def jwks(self) -> dict[str, Any]:
        jwk: dict[str, Any] = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": KEY_ID, "use": "sig", "alg": "RS256"}]}


def _issuer(request: Request) -> str:
    return str(request.base_url).rstrip("/") + PATH


def _error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def _redirect_allowed(uri: str) -> bool:
    # Development only: the console runs on the tester's own machine.
    parts = urlsplit(uri)
    return parts.scheme in ("http", "https") and parts.hostname in ("127.0.0.1", "localhost", "::1")


_PAGE = """<!doctype html>
<html lang="sv"><head><meta charset="utf-8"><title>Logga in – testinloggning</title></head>
<body><main>
<h1>Logga in (testinloggning)</h1>
<p>Det här är regionens identitetstjänst i testläge. Välj en testanvändare.</p>
<form method="post" action="{action}">
{hidden}
<fieldset><legend>Testanvändare</legend>
{users}
</fieldset>
<button type="submit">Logga in</button>
</form>
</main></body></html>
"""


def _authorize_page(request: Request, params: dict[str, str]) -> HTMLResponse:
    hidden = "\n".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">' for k, v in params.items()
    )
    users = "\n".join(
        f'<p><input type="radio" name="user" id="user-{u.subject}" value="{u.subject}"'
        f"{' checked' if i == 0 else ''}>"
        f' <label for="user-{u.subject}">{html.escape(u.name)}, {html.escape(u.description)}</label></p>'
        for i, u in enumerate(TEST_USERS)
    )
    body = _PAGE.format(action=html.escape(f"{PATH}/authorize"), hidden=hidden, users=users)
    return HTMLResponse(body)


def create_app(clients: dict[str, str] | None = None) -> Starlette:
    """``clients``: client id to secret (default: the console's development registration)."""
    provider = _Provider(clients or {CLIENT_ID: CLIENT_SECRET})

    async def discovery(request: Request) -> Response:
        issuer = _issuer(request)
        return JSONResponse(
            {
                "issuer": issuer,
                "authorization_endpoint": f"{issuer}/authorize",
                "token_endpoint": f"{issuer}/token",
                "jwks_uri": f"{issuer}/jwks",
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "profile", "staff", "admin"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "code_challenge_methods_supported": ["S256"],
                "claims_supported": ["sub", "name", "scope", "nonce", "iss", "aud", "exp", "iat"],
            }
        )

    async def jwks(_request: Request) -> Response:
        return JSONResponse(provider.jwks())

    def _check_request(params: dict[str, str]) -> str | None:
        if params.get("response_type") != "code":
            return "response_type must be code"
        if params.get("client_id") not in provider.clients:
            return "unknown client_id"
        if not _redirect_allowed(params.get("redirect_uri", "")):
            return "redirect_uri is not registered"
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            return "PKCE with code_challenge_method S256 is required"
        if "openid" not in params.get("scope", "").split():
            return "scope must include openid"
        return None

    _keep = ("response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "code_challenge",
             "code_challenge_method")  # fmt: skip

    async def authorize(request: Request) -> Response:
        if request.method == "GET":
            params = dict(request.query_params)
        else:
            params = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        problem = _check_request(params)
        if problem is not None:
            return HTMLResponse(
                f'<!doctype html><html lang="sv"><head><title>Fel</title></head><body><main>'
                f"<h1>Inloggningen kan inte göras</h1><p>{html.escape(problem)}</p></main></body></html>",
                status_code=400,
            )
        if request.method == "GET":
            return _authorize_page(request, {k: params[k] for k in _keep if k in params})
        user = next((u for u in TEST_USERS if u.subject == params.get("user")), None)
        if user is None:
            return HTMLResponse("unknown test user", status_code=400)
        requested = set(params["scope"].split())
        granted = " ".join(s for s in ("openid", "profile", *user.scopes) if s in requested or s == "openid")
        code = secrets.token_urlsafe(32)
        provider.codes[code] = _Grant(
            client_id=params["client_id"],
            redirect_uri=params["redirect_uri"],
            challenge=params["code_challenge"],
            nonce=params.get("nonce"),
            user=user,
            scope=granted,
            expires=time.time() + CODE_SECONDS,
        )
        answer = {"code": code, **({"state": params["state"]} if "state" in params else {})}
        sep = "&" if "?" in params["redirect_uri"] else "?"
        return RedirectResponse(params["redirect_uri"] + sep + urlencode(answer), status_code=303)

    def _client(request: Request, form: dict[str, str]) -> str | None:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                raw = base64.b64decode(header[6:]).decode()
            except ValueError:
                return None
            client_id, _, secret = raw.partition(":")
        else:
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        expected = provider.clients.get(client_id)
        if expected is None or not hmac.compare_digest(expected, secret):
            return None
        return client_id

    async def token(request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        client_id = _client(request, form)
        if client_id is None:
            return _error(401, "invalid_client", "client authentication failed")
        if form.get("grant_type") != "authorization_code":
            return _error(400, "unsupported_grant_type", "only authorization_code")
        grant = provider.codes.pop(form.get("code", ""), None)  # a code is good once
        if grant is None or grant.expires < time.time() or grant.client_id != client_id:
            return _error(400, "invalid_grant", "unknown, used or expired code")
        if form.get("redirect_uri") != grant.redirect_uri:
            return _error(400, "invalid_grant", "redirect_uri differs from the authorization request")
        verifier = form.get("code_verifier", "")
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if not hmac.compare_digest(digest, grant.challenge):
            return _error(400, "invalid_grant", "PKCE code_verifier does not match")
        now = int(time.time())
        issuer = _issuer(request)
        common = {"iss": issuer, "sub": grant.user.subject, "iat": now, "exp": now + TOKEN_SECONDS}
        id_claims = {**common, "aud": client_id, "name": grant.user.name, "scope": grant.scope}
        if grant.nonce:
            id_claims["nonce"] = grant.nonce
        access_claims = {**common, "aud": client_id, "client_id": client_id, "scope": grant.scope,
                         "jti": secrets.token_hex(8)}  # fmt: skip
        headers = {"kid": KEY_ID}
        return JSONResponse(
            {
                "access_token": jwt.encode(access_claims, provider.key, algorithm="RS256", headers=headers),
                "id_token": jwt.encode(id_claims, provider.key, algorithm="RS256", headers=headers),
                "token_type": "Bearer",
                "expires_in": TOKEN_SECONDS,
                "scope": grant.scope,
            },
            headers={"Cache-Control": "no-store"},
        )

    return Starlette(
        routes=[
            Route(f"{PATH}/.well-known/openid-configuration", discovery),
            Route(f"{PATH}/authorize", authorize, methods=["GET", "POST"]),
            Route(f"{PATH}/token", token, methods=["POST"]),
            Route(f"{PATH}/jwks", jwks),
        ]
    )
