"""The staff console in a real browser: Debian's Chromium driven by Playwright.

One gateway for the module, on its built-in mocks (SPAR, accounts, mailboxes, the journal's
booking service and the OpenID provider), fed a day of bookings and letters by the simulated
journal over real MLLP. Every sign-in goes through the mock provider's authorize page, so the
tests use the authorization code flow with PKCE the way production does. axe-core runs on every
page: no serious or critical violation.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import re
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import select, update

from gateway.settings import Settings
from gateway.store.tables import audit_events, console_sessions, mailbox_outbox, print_items
from gateway.testing import GatewayThread
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
FORBIDDEN = "Du har inte behörighet till den här sidan"

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


def _context(browser: Browser, *, bypass_csp: bool = True) -> BrowserContext:
    # bypass_csp: only so axe-core can be injected; the pages themselves need no exception.
    return browser.new_context(locale="sv-SE", bypass_csp=bypass_csp)


def sign_in(
    browser: Browser, console: Console, user: str, path: str = "/", *, bypass_csp: bool = True
) -> Page:
    page = _context(browser, bypass_csp=bypass_csp).new_page()
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
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `npm ci` in tests/browser (.ci/run does)")
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
    spar = admin.get_by_role("row", name="Folkbokföringen (SPAR) svarar (normalt)")
    expect(spar).to_be_visible()
    expect(spar.locator("td").nth(2)).not_to_have_text("0")  # calls counted, with their mean time
    expect(spar.locator("td").nth(4)).to_contain_text("ms")
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


def _csrf(page: Page) -> str:
    return page.locator('input[name="csrf"]').first.input_value()


def test_r_doc_9_staff_mark_many_print_items_handled_then_not_handled_and_print_them_as_one_pdf(
    staff: Page, console: Console
) -> None:
    staff.goto(console.url + "/utskriftslista")
    boxes = staff.locator('input[type="checkbox"][name="id"]')
    assert boxes.count() >= 2, "the simulated journal's letters put items on the print list"
    chosen = [boxes.nth(0).get_attribute("value"), boxes.nth(1).get_attribute("value")]
    boxes.nth(0).check()
    boxes.nth(1).check()
    staff.get_by_role("button", name="Markera valda som hanterade").click()
    expect(staff.get_by_role("status")).to_have_text("2 markerade som hanterade.")
    for item in chosen:
        expect(staff.locator(f"#item-{item}")).to_have_count(0)  # off the open list
    staff.get_by_label("Läge").select_option("handled")
    staff.get_by_role("button", name="Visa").click()
    for item in chosen:
        expect(staff.locator(f"#item-{item} .handled")).to_contain_text(f"av {STAFF_USER}")
        staff.locator(f"#v-{item}").check()
    staff.get_by_role("button", name="Markera valda som ej hanterade").click()
    expect(staff.get_by_role("status")).to_have_text("2 markerade som ej hanterade.")
    console.gw.gateway.app.state.audit.flush()
    with console.gw.gateway.engine.connect() as conn:
        changed = conn.execute(
            select(audit_events.c.resource_id).where(
                audit_events.c.caller == STAFF_USER,
                audit_events.c.route == "/console/utskriftslista",
                audit_events.c.action == "update",
            )
        ).scalars()
        assert set(chosen) <= set(changed)  # each item, with the signed-in person as caller
    staff.goto(f"{console.url}/utskriftslista/{chosen[0]}")
    history = staff.get_by_role("table")
    expect(history).to_contain_text("print-handled")
    expect(history).to_contain_text("print-unhandled")
    axe_clean(staff)
    # The selection as one PDF (the form's third button), with the session's cookie and token.
    body = f"csrf={_csrf(staff)}&action=pdf&id={chosen[0]}&id={chosen[1]}"
    pdf = staff.request.post(
        console.url + "/utskriftslista",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.body().startswith(b"%PDF-")


def test_r_id_4_staff_release_a_held_document_and_it_is_routed(staff: Page, console: Console) -> None:
    staff.goto(console.url + "/vilande")
    cards = staff.locator("section.card")
    assert cards.count() >= 1, "the simulated journal's kallelse to a protected person is held"
    card = cards.first
    held_id = (card.get_attribute("id") or "").removeprefix("held-")
    card.get_by_role("button", name="Släpp till mottagarna").click()
    # The reason is required: the browser stops the form (no JavaScript of ours involved).
    expect(staff).to_have_url(re.compile(r"/console/vilande$"))
    card.get_by_label("Varför").fill("Överenskommet per telefon: kallelse i 1177")
    card.get_by_role("button", name="Släpp till mottagarna").click()
    expect(staff.get_by_role("status")).to_contain_text(f"Dokumentet {held_id} är nu:")
    expect(staff.locator(f"#held-{held_id}")).to_have_count(0)
    with console.api() as api:
        doc = api.get(f"/documents/{held_id}").json()
    assert doc["outcome"] != "hold"
    decided = [e for e in doc["history"] if e["actor"] == STAFF_USER]
    assert decided and decided[-1]["detail"] == "Överenskommet per telefon: kallelse i 1177", doc["history"]


def test_r_bk_4_uppdatera_nu_fetches_a_booking_the_gateway_missed(staff: Page, console: Console) -> None:
    person = console.sim.population.by_id(_a_person(console))
    lost = console.sim.lost_booking(date.today(), person)  # in the journal's book, never pushed
    staff.goto(console.url + "/person?id=" + person.id)
    expect(staff.locator("#person-name")).to_be_visible()
    expect(staff.locator("#last-refresh")).to_have_text("Inte uppdaterad tidigare.")
    expect(staff.get_by_role("cell", name=lost.booking_id, exact=True)).to_have_count(0)
    staff.get_by_role("button", name="Uppdatera nu").click()
    expect(staff.get_by_role("status")).to_contain_text("1 nya")
    console.wait()
    staff.reload()
    expect(staff.get_by_role("cell", name=lost.booking_id, exact=True)).to_be_visible()
    expect(staff.locator("#last-refresh")).to_contain_text("Senast uppdaterad")
    console.gw.gateway.app.state.audit.flush()
    with console.gw.gateway.engine.connect() as conn:
        reads = conn.execute(
            select(audit_events.c.action, audit_events.c.route).where(
                audit_events.c.caller == STAFF_USER, audit_events.c.patient == person.id
            )
        ).all()
    assert ("read", "/console/person") in reads and ("update", "/console/person/uppdatera") in reads


def test_admin_finds_a_patients_messages_and_reprocesses_one(admin: Page, console: Console) -> None:
    admin.goto(console.url + "/meddelanden")
    admin.get_by_label("Patient").fill(_a_person(console))
    admin.get_by_role("button", name="Sök").click()
    expect(admin.locator("#total")).not_to_have_text("0 meddelanden.")
    # By time (Swedish local time): nothing has arrived tomorrow, everything since yesterday.
    tomorrow = (datetime.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    admin.get_by_label("Mottaget från").fill(tomorrow)
    admin.get_by_role("button", name="Sök").click()
    expect(admin.locator("#total")).to_have_text("0 meddelanden.")
    yesterday = (datetime.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    admin.get_by_label("Mottaget från").fill(yesterday)
    admin.get_by_role("button", name="Sök").click()
    expect(admin.locator("#total")).not_to_have_text("0 meddelanden.")
    admin.goto(console.url + "/meddelanden?state=processed")
    first = admin.locator("tbody tr").first.locator("a").first
    message_id = first.inner_text()
    first.click()
    expect(admin.get_by_role("heading", level=1, name=f"Meddelande {message_id}")).to_be_visible()
    admin.get_by_role("button", name="Kör om").click()
    expect(admin.get_by_role("status")).to_have_text("1 av 1 meddelanden körs om.")
    console.wait()
    admin.reload()
    expect(admin.locator("#message-state")).to_have_text("behandlat")


def test_staff_is_refused_admin_pages_with_a_swedish_403(staff: Page, console: Console) -> None:
    for path in ("/meddelanden", "/logg", "/meddelanden/1"):
        response = staff.goto(console.url + path)
        assert response is not None and response.status == 403
        expect(staff.get_by_role("heading", level=1)).to_have_text(FORBIDDEN)
    expect(staff.get_by_role("link", name="Meddelanden")).to_have_count(0)  # not offered either


def test_a_forged_or_missing_csrf_token_is_refused_and_nothing_changes(staff: Page, console: Console) -> None:
    staff.goto(console.url + "/utskriftslista")
    item = staff.locator('input[type="checkbox"][name="id"]').first.get_attribute("value")
    # Forged: the page's own form, with another token in it.
    staff.locator('form[method="post"] input[name="csrf"]').last.evaluate("e => e.value = 'forged'")
    staff.locator(f"#v-{item}").check()
    staff.get_by_role("button", name="Markera valda som hanterade").click()
    expect(staff.get_by_role("heading", level=1)).to_have_text("Formuläret kunde inte tas emot")
    # Missing: a post from elsewhere, with the cookie but without the token.
    missing = staff.request.post(
        console.url + "/utskriftslista",
        data=f"action=handle&id={item}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert missing.status == 403 and "Formuläret kunde inte tas emot" in missing.text()
    with console.gw.gateway.engine.connect() as conn:
        handled = conn.execute(select(print_items.c.handled_at).where(print_items.c.id == int(item or 0)))
        assert handled.scalar_one() is None


def test_bad_input_is_a_swedish_page_never_a_500(staff: Page, console: Console) -> None:
    for path, status, heading in (
        ("/person?id=12345", 400, "Felaktig uppgift"),
        ("/utskriftslista?state=nonsense", 400, "Felaktig uppgift"),
        ("/utskriftslista/abc", 400, "Felaktig uppgift"),
        ("/utskriftslista/99999999", 404, "Hittades inte"),
        ("/rapporter?from=igår&to=2026-01-01", 400, "Felaktig uppgift"),
        ("/utskriftslista?sida=-1", 400, "Felaktig uppgift"),
        ("/finns-inte", 404, "Sidan finns inte"),
    ):
        response = staff.goto(console.url + path)
        assert response is not None and response.status == status, path
        expect(staff.get_by_role("heading", level=1)).to_have_text(heading)


def test_sign_out_ends_the_session(browser: Browser, console: Console) -> None:
    page = sign_in(browser, console, STAFF_USER, "/utskriftslista")
    expect(page.get_by_role("heading", level=1, name="Utskriftslista")).to_be_visible()  # back where asked
    cookie = next(c["value"] for c in page.context.cookies() if c["name"] == "gateway_console")
    page.get_by_role("button", name="Logga ut").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Du är utloggad")
    axe_clean(page)
    # The old session id is gone on the server: replaying the cookie signs no one in.
    with httpx.Client(cookies={"gateway_console": cookie}) as client:
        again = client.get(console.url + "/utskriftslista")
    assert again.status_code == 303 and "/console/logga-in" in again.headers["location"]
    page.context.close()


def test_r_id_3_a_protected_person_shows_dold_uppgift_as_the_api_does(staff: Page, console: Console) -> None:
    protected = "198203152452"  # skyddad folkbokföring in mocks/persons.yaml
    with console.api() as api:
        shown = api.get(f"/patients/{protected}").json()
    staff.goto(console.url + "/person?id=19820315-2452")
    expect(staff.locator("#person-name")).to_have_text(shown["name"])
    expect(staff.locator("#person-name")).to_have_text("Dold uppgift")
    expect(staff.locator("#person-address")).to_have_text("Dold uppgift")
    expect(staff.locator("#person-flags")).to_contain_text("skyddad")
    assert "Folkbokförd" not in staff.content() and "Särskild postförmedling" not in staff.content()


def test_the_cookie_is_a_random_id_secure_except_over_http_on_loopback(console: Console) -> None:
    with httpx.Client(base_url=console.gw.http_url) as client:
        local = client.get("/console/logga-in")
        remote = client.get("/console/logga-in", headers={"Host": "konsol.regionen.se"})
    assert local.status_code == remote.status_code == 303
    local_cookie = local.headers["set-cookie"]
    remote_cookie = remote.headers["set-cookie"]
    for cookie in (local_cookie, remote_cookie):
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/console" in cookie
    assert "Secure" not in local_cookie and "Secure" in remote_cookie
    token = local_cookie.split(";")[0].split("=", 1)[1]
    with console.gw.gateway.engine.connect() as conn:
        ids = conn.execute(select(console_sessions.c.id)).scalars().all()
    assert token not in ids and hashlib.sha256(token.encode()).hexdigest() in ids  # kept hashed


@pytest.mark.skipif(not os.environ.get("GATEWAY_CONSOLE_SCREENSHOTS"), reason="only when asked for")
def test_screenshots_of_every_page_for_the_docs(admin: Page, console: Console) -> None:
    """``GATEWAY_CONSOLE_SCREENSHOTS=docs/console pytest -k screenshots`` refreshes docs/console/*.png."""
    out = Path(os.environ["GATEWAY_CONSOLE_SCREENSHOTS"])
    out.mkdir(parents=True, exist_ok=True)
    admin.set_viewport_size({"width": 1100, "height": 720})
    today = date.today()
    shots = [
        ("oversikt", "/"),
        ("utskriftslista", "/utskriftslista"),
        ("vilande", "/vilande"),
        ("person", "/person?id=191212121212"),
        ("rapporter", f"/rapporter?from={today}&to={today + timedelta(days=1)}"),
        ("utkorg", "/utkorg"),
        ("meddelanden", "/meddelanden"),
        ("meddelande", "/meddelanden/1"),
        ("logg", "/logg"),
    ]
    for name, path in shots:
        admin.goto(console.url + path)
        # 64 colours: a page of text stays legible and the PNG small enough to keep in git.
        shot = Image.open(io.BytesIO(admin.screenshot())).convert("RGB").quantize(64)
        shot.save(out / f"{name}.png", optimize=True)


def test_pages_work_under_their_strict_content_security_policy(browser: Browser, console: Console) -> None:
    """The console's own policy (``default-src 'self'``, no frames), as the gateway sends it with
    its security headers: no inline script or style, nothing from elsewhere; the overview's own
    script still runs and the style sheet applies."""
    page = sign_in(browser, console, STAFF_USER, bypass_csp=False)
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    for path in ("/", "/utskriftslista", "/vilande", "/person?id=191212121212", "/utkorg", "/finns-inte"):
        response = page.goto(console.url + path)
        assert response is not None
        headers = response.headers
        assert headers["content-security-policy"].startswith("default-src 'self'; frame-ancestors 'none'")
        assert headers["x-frame-options"] == "DENY" and headers["cache-control"] == "no-store"
        expect(page.get_by_role("heading", level=1)).to_be_visible()
    page.goto(console.url + "/")
    expect(page.get_by_label("Uppdatera själv var 30:e sekund")).to_be_visible()  # shown by console.js
    assert page.evaluate("getComputedStyle(document.querySelector('header.top')).display") == "flex"  # CSS
    assert refused == []
    page.context.close()


def test_a_dead_mailbox_letter_is_retried_from_the_utkorg(staff: Page, console: Console) -> None:
    engine = console.gw.gateway.engine
    with engine.begin() as conn:
        letter = conn.execute(select(mailbox_outbox.c.id).order_by(mailbox_outbox.c.id)).scalars().first()
        assert letter is not None, "the simulated journal's letters reach digital mailboxes"
        # As the outbox leaves a letter it gave up on (gateway/service/outbox.py _give_up).
        conn.execute(update(mailbox_outbox).where(mailbox_outbox.c.id == letter).values(state="dead"))
    staff.goto(console.url + "/utkorg?state=dead")
    row = staff.locator(f"#outbox-{letter}")
    expect(row).to_contain_text("gav upp")
    axe_clean(staff)
    row.get_by_role("button", name="Försök igen").click()
    expect(staff.get_by_role("status")).to_have_text(f"Brev {letter} försöks igen.")
    with engine.connect() as conn:
        state = conn.execute(select(mailbox_outbox.c.state).where(mailbox_outbox.c.id == letter)).scalar_one()
    assert state in ("pending", "delivered")  # the outbox may already have sent it again
