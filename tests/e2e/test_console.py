"""The staff console in a real browser: Debian's Chromium driven by Playwright.

One gateway for the module, on its built-in mocks (SPAR, accounts, mailboxes, the journal's
booking service and the OpenID provider), fed a day of bookings and letters by the simulated
journal over real MLLP. Every sign-in goes through the mock provider's authorize page, so the
tests use the authorization code flow with PKCE the way production does. axe-core runs on every
page: no serious or critical violation.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from gateway.bootstrap import GatewayThread
from gateway.settings import Settings
from gateway.store.tables import audit_events, print_items
from mocks.journal import JournalSimulator, push
from mocks.population import DEFAULT_FILE
from mocks.population import load as load_population
from tests.conftest import wait_processed

playwright_sync = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright  # noqa: E402

CHROMIUM = os.environ.get("GATEWAY_TEST_CHROMIUM", "/usr/bin/chromium")
AXE = Path(__file__).parent.parent / "browser" / "node_modules" / "axe-core" / "axe.min.js"
STAFF_USER = "anna.vard"
ADMIN_USER = "olle.admin"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}")


class Console:
    """The running gateway, its simulated journal and the base URL of the console."""

    def __init__(self, gw: GatewayThread, sim: JournalSimulator) -> None:
        self.gw = gw
        self.sim = sim
        self.url = gw.http_url + "/console"

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.gw.http_url, timeout=10)  # GATEWAY_AUTH=off in tests

    def wait(self) -> None:
        with self.api() as client:
            wait_processed(client)


def _in_thread(work: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to its end on a loop of its own (the test's thread may have one)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    sim = JournalSimulator(load_population(DEFAULT_FILE), seed=3, run_id="CONSOLE")
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("console"),
        http_port=0,
        mllp_port=0,
        mocks_port=0,
        worker_poll_interval=0.1,
        log_level="WARNING",
    )
    with GatewayThread(settings, journal_book=sim.book) as gw:
        host, port = gw.mllp_address
        today = date.today()
        c = Console(gw, sim)
        _in_thread(push(sim.day(today, bookings=20), host, port, connections=2))
        c.wait()
        _in_thread(push(sim.letters(today), host, port, connections=1))
        c.wait()
        yield c


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


def _context(browser: Browser) -> BrowserContext:
    # bypass_csp: only so axe-core can be injected; the pages themselves need no exception.
    return browser.new_context(locale="sv-SE", bypass_csp=True)


def sign_in(browser: Browser, console: Console, user: str, path: str = "/") -> Page:
    page = _context(browser).new_page()
    page.goto(console.url + path)
    expect(page.get_by_role("heading", name="Logga in (testinloggning)")).to_be_visible()
    page.locator(f'input[name="user"][value="{user}"]').check()
    page.get_by_role("button", name="Logga in").click()
    expect(page.get_by_role("button", name="Logga ut")).to_be_visible()
    return page


@pytest.fixture
def staff(browser: Browser, console: Console) -> Iterator[Page]:
    page = sign_in(browser, console, STAFF_USER)
    yield page
    page.context.close()


@pytest.fixture
def admin(browser: Browser, console: Console) -> Iterator[Page]:
    page = sign_in(browser, console, ADMIN_USER)
    yield page
    page.context.close()


def axe_clean(page: Page) -> None:
    """No serious or critical WCAG 2.1 A/AA violation on the page as it is now."""
    page.add_script_tag(path=str(AXE))
    violations: list[dict[str, Any]] = page.evaluate(
        """async () => {
            const r = await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']});
            return r.violations.map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target)}));
        }"""
    )
    bad = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert bad == [], f"{page.url}: {bad}"


PAGES = [
    ("/", "Översikt"),
    ("/utskriftslista", "Utskriftslista"),
    ("/vilande", "Vilande dokument"),
    ("/person", "Person"),
    ("/rapporter", "Rapporter"),
    ("/utkorg", "Utkorg"),
    ("/meddelanden", "Meddelanden"),
    ("/logg", "Logg"),
]


def test_sign_in_through_the_mock_provider_then_every_page_loads_in_swedish_and_passes_axe(
    admin: Page, console: Console
) -> None:
    assert admin.locator("html").get_attribute("lang") == "sv"
    cookie = next(c for c in admin.context.cookies() if c["name"] == "gateway_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    for path, heading in PAGES:
        response = admin.goto(console.url + path)
        assert response is not None and response.status == 200, path
        expect(admin.get_by_role("heading", level=1, name=heading)).to_be_visible()
        axe_clean(admin)
    # Pages with data in them, too.
    admin.goto(console.url + "/person?id=" + _a_person(console))
    expect(admin.get_by_role("heading", name="Uppgifter från folkbokföringen")).to_be_visible()
    axe_clean(admin)
    today = date.today()
    admin.goto(f"{console.url}/rapporter?from={today - timedelta(days=1)}&to={today + timedelta(days=1)}")
    expect(admin.locator("#total")).to_contain_text("dokument")
    axe_clean(admin)
    admin.goto(console.url + "/meddelanden/1")
    expect(admin.get_by_role("heading", level=1, name="Meddelande 1")).to_be_visible()
    axe_clean(admin)


def _a_person(console: Console) -> str:
    with console.api() as api:
        for item in api.get("/messages", params={"state": "processed", "limit": 1}).json()["items"]:
            row = api.get(f"/messages/{item['id']}").json()
            found = re.search(r"PID\|[^|]*\|[^|]*\|(\d{12})", row["raw"])
            if found:
                return found.group(1)
    raise AssertionError("no processed message with a personnummer")
