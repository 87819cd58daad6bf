"""A mock OpenID Connect provider (the region's identity provider) for the staff console.

Real endpoints under ``/oidc``: discovery (``/.well-known/openid-configuration``), ``authorize``
(a Swedish page where a tester picks a test user), ``token`` (authorization code with PKCE S256
only, client secret by HTTP Basic or in the form), ``jwks``. Tokens are RS256 JWTs signed with a
key made when the mock is created. Contract and test users: ``docs/console.md``.
"""

from mocks.oidc.app import CLIENT_ID, CLIENT_SECRET, PATH, TEST_USERS, TestUser, create_app

__all__ = ["CLIENT_ID", "CLIENT_SECRET", "PATH", "TEST_USERS", "TestUser", "create_app"]
