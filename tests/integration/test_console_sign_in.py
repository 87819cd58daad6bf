"""Console sign-in: the OIDC client (Authlib, PyJWT) against the mock provider, in-process.

The browser's part (the authorize page and its redirect) is played by plain HTTP calls here;
tests/e2e/test_console.py does the same in Chromium.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, parse_qsl, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from gateway.api.console.oidc import OidcClient, SignInFailed
from gateway.api.console.settings import OidcSettings
from mocks.oidc import CLIENT_ID, CLIENT_SECRET, create_app

BASE = "http://127.0.0.1"
REDIRECT = "http://127.0.0.1:8000/console/inloggad"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url=BASE) as client:
        yield client


@pytest.fixture
def oidc(http: httpx.AsyncClient) -> OidcClient:
    settings = OidcSettings(
        issuer=f"{BASE}/oidc", client_id=CLIENT_ID, client_secret=SecretStr(CLIENT_SECRET)
    )
    return OidcClient(settings, http)


async def _authorize(http: httpx.AsyncClient, url: str, user: str) -> str:
    """What the browser does at the provider: open the page, pick the user, follow back."""
    page = await http.get(url)
    assert page.status_code == 200 and 'lang="sv"' in page.text and f'value="{user}"' in page.text
    params = dict(parse_qsl(urlsplit(url).query))
    answer = await http.post("/oidc/authorize", data={**params, "user": user})
    assert answer.status_code == 303
    return answer.headers["location"]


@pytest.mark.parametrize(("user", "roles"), [("anna.vard", ("staff",)), ("olle.admin", ("staff", "admin"))])
async def test_code_flow_with_pkce_signs_in_with_roles_from_the_tokens_scopes(
    http: httpx.AsyncClient, oidc: OidcClient, user: str, roles: tuple[str, ...]
) -> None:
    url, pending = await oidc.start(REDIRECT)
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"] and query["state"] == [pending["state"]]
    expected = base64.urlsafe_b64encode(hashlib.sha256(pending["verifier"].encode()).digest()).rstrip(b"=")
    assert query["code_challenge"] == [expected.decode()]
    back = await _authorize(http, url, user)
    who = await oidc.finish(back, pending, REDIRECT)
    assert who.subject == user and who.roles == roles


async def test_an_answer_for_another_sign_in_is_refused(http: httpx.AsyncClient, oidc: OidcClient) -> None:
    url, pending = await oidc.start(REDIRECT)
    back = await _authorize(http, url, "anna.vard")
    with pytest.raises(SignInFailed, match="does not match"):
        await oidc.finish(back, {**pending, "state": "another"}, REDIRECT)


async def test_a_wrong_pkce_verifier_or_a_reused_code_gets_no_tokens(
    http: httpx.AsyncClient, oidc: OidcClient
) -> None:
    url, pending = await oidc.start(REDIRECT)
    back = await _authorize(http, url, "anna.vard")
    with pytest.raises(SignInFailed, match="invalid_grant"):
        await oidc.finish(back, {**pending, "verifier": "x" * 64}, REDIRECT)
    with pytest.raises(SignInFailed, match="invalid_grant"):  # the code was spent on the try above
        await oidc.finish(back, pending, REDIRECT)


async def test_a_replayed_id_token_for_another_nonce_is_refused(
    http: httpx.AsyncClient, oidc: OidcClient
) -> None:
    url, pending = await oidc.start(REDIRECT)
    back = await _authorize(http, url, "anna.vard")
    with pytest.raises(SignInFailed, match="nonce"):
        await oidc.finish(back, {**pending, "nonce": "another"}, REDIRECT)


async def test_the_mock_provider_refuses_requests_without_pkce_or_from_elsewhere(
    http: httpx.AsyncClient,
) -> None:
    good = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "scope": "openid staff",
        "code_challenge": "abc",
        "code_challenge_method": "S256",
    }
    assert (await http.get("/oidc/authorize", params=good)).status_code == 200
    for change in (
        {"code_challenge_method": "plain"},
        {"redirect_uri": "https://evil.example/cb"},
        {"client_id": "someone"},
        {"scope": "staff"},
    ):
        assert (await http.get("/oidc/authorize", params={**good, **change})).status_code == 400, change
    token = await http.post("/oidc/token", data={"grant_type": "authorization_code", "code": "x"})
    assert token.status_code == 401 and token.json()["error"] == "invalid_client"


async def test_a_provider_naming_another_issuer_is_not_trusted(http: httpx.AsyncClient) -> None:
    settings = OidcSettings(
        issuer=f"{BASE}/oidc/", client_id=CLIENT_ID, client_secret=SecretStr(CLIENT_SECRET)
    )
    assert (await OidcClient(settings, http).metadata()).token_endpoint.endswith("/oidc/token")
    other = settings.model_copy(update={"issuer": "http://127.0.0.1/oidc-elsewhere"})
    with pytest.raises(SignInFailed):
        await OidcClient(other, http).metadata()
