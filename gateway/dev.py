"""Development wiring: the built-in mocks, and the only module under ``gateway/`` that imports
``mocks``.

Production wiring (``bootstrap.py``) asks :func:`gateway.bootstrap.fallback_for` what serves an
outside system whose URL is not set; only with ``GATEWAY_MOCKS`` on does that import this module,
and then the built-in mocks (one HTTP server, started on first use) answer for every such system.
The worker process gets the same mocks through the adapters' URL variables (:meth:`BuiltInMocks.env`),
so a tester's switch on a mock (the SPAR outage) reaches it too. The development commands
(``gateway mocks``, ``gateway demo``) take their mocks from here as well.
"""

from __future__ import annotations

import json
import os

import structlog

from gateway.settings import Settings
from mocks.journal import JournalSimulator, push
from mocks.journal.book import JournalBook
from mocks.journal.simulator import UNITS as SIMULATED_UNITS
from mocks.mailbox import RECIPIENT_PATH as MAILBOX_MOCK_PATH
from mocks.oidc import CLIENT_SECRET as OIDC_MOCK_SECRET
from mocks.oidc import PATH as OIDC_MOCK_PATH
from mocks.oidc import TEST_USERS
from mocks.population import load as load_population
from mocks.services import MockServices
from mocks.sms import PREFIX as SMS_MOCK_PATH
from mocks.spar import PATH as SPAR_MOCK_PATH

__all__ = [
    "TEST_USERS",
    "BuiltInMocks",
    "JournalBook",
    "JournalSimulator",
    "MockServices",
    "Offline",
    "load_population",
    "mock_env",
    "push",
]

log = structlog.get_logger(__name__)

#: Where each system's mock answers under the mocks' one base URL.
PATHS = {
    "accounts": "",
    "spar": SPAR_MOCK_PATH,
    "mailbox": MAILBOX_MOCK_PATH,
    "journal": "/booking/BookingService",
    "sms": SMS_MOCK_PATH,
    "oidc": OIDC_MOCK_PATH,
}


class BuiltInMocks:
    """Serves every outside system that has no URL, from one in-process HTTP server."""

    serves_live = True

    #: The mock identity provider's client secret (the console signs in with it).
    oidc_secret = OIDC_MOCK_SECRET
    #: The simulated journal's units, so "Uppdatera nu" without a unit asks them all.
    journal_units = tuple(unit.hsa_id for unit in SIMULATED_UNITS)

    def __init__(self, settings: Settings, journal_book: JournalBook | None = None) -> None:
        self._settings = settings
        self._journal_book = journal_book
        self.services: MockServices | None = None

    def url(self, system: str) -> str:
        """The mock's URL for ``system`` (a key of :data:`PATHS`), starting the mocks on first use."""
        return self.base_url() + PATHS[system]

    def base_url(self) -> str:
        if self.services is None:
            self.services = MockServices.default(
                journal_book=self._journal_book,
                host=self._settings.mocks_host,
                port=self._settings.mocks_port,
            ).start()
            log.info("mocks.started", url=self.services.url, mocks=sorted(self.services.apps))
        return self.services.url

    @property
    def started(self) -> bool:
        return self.services is not None

    def env(self) -> dict[str, str]:
        """The adapters' URL variables pointing at these mocks, for the worker process."""
        return mock_env(self.base_url()) if self.started else {}

    def stop(self) -> None:
        if self.services is not None:
            self.services.stop()


class Offline:
    """A replay offline (docs/recording.md): every system with no URL is answered from the
    recording at the mocks' paths, so recorded and replayed requests match; nothing is started."""

    serves_live = False
    oidc_secret = OIDC_MOCK_SECRET
    journal_units = BuiltInMocks.journal_units
    services: MockServices | None = None

    def __init__(self, base: str) -> None:
        self._base = base

    def url(self, system: str) -> str:
        return self._base + PATHS[system]

    def base_url(self) -> str:
        return self._base

    def env(self) -> dict[str, str]:
        return {}

    def stop(self) -> None:
        return None


def mock_env(mocks_url: str) -> dict[str, str]:
    """The adapters' URL variables pointing at the parent's built-in mocks (where not set)."""
    # The same paths as bootstrap.connect_outside gives each adapter; a new adapter with a
    # built-in mock adds its line here (without it, the child would serve a private mock).
    wanted = {
        "GATEWAY_ACCOUNTS_URL": mocks_url,
        "GATEWAY_SPAR_URL": mocks_url + SPAR_MOCK_PATH,
        "GATEWAY_JOURNAL_WS_URL": mocks_url + "/booking/BookingService",
        "GATEWAY_MAILBOX_URL": mocks_url + MAILBOX_MOCK_PATH,
        # The mock's operators answer under its own address: allowed as bootstrap allows it.
        "GATEWAY_MAILBOX_SERVICE_ADDRESSES": json.dumps({"*": [f"{mocks_url}/mailbox/"]}),
        "GATEWAY_SMS_URL": mocks_url + "/sms",
        "GATEWAY_SMS_USERNAME": "mock",
        "GATEWAY_SMS_PASSWORD": "mock",
    }
    return {k: v for k, v in wanted.items() if k not in os.environ}
