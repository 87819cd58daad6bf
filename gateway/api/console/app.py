"""The staff and operator console under ``/console``: server-rendered pages in Swedish.

Thin routes: each page calls the same functions the JSON API's routes call (print list, held
documents, the person view, the message browser, the report, the outbox, the audit trail) and
renders them with Jinja2. Forms work without JavaScript and post back with the session's CSRF
token; a change answers with a redirect (post/redirect/get) and a one-time notice.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Annotated, Any, cast
from urllib.parse import quote

import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import State
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response

from gateway import metrics
from gateway.api import auth
from gateway.api.console import web
from gateway.api.console.oidc import OidcClient, SignInFailed
from gateway.api.console.settings import ConsoleSettings, OidcSettings
from gateway.api.console.web import Access, BadForm, NotAllowed, NotSignedIn, Staff, audit, form, one, render
from gateway.api.patients import person_view, refresh_person
from gateway.api.reports import report_csv
from gateway.domain.documents import DocumentKind
from gateway.errors import (
    GatewayError,
    InboundError,
    InvalidRequest,
    NotFound,
    PermanentUpstreamError,
    TransientUpstreamError,
)
from gateway.journal_adapter.redaction import message_view
from gateway.print_pdf import combine, render_pdf
from gateway.service import held, outbox
from gateway.store import browser, overview, print_list, queries, reports
from gateway.store.audit import AuditFilter
from gateway.store.audit import search as audit_search
from gateway.store.inbox import STATES as MESSAGE_STATES

log = structlog.get_logger(__name__)

PAGE = 100
KINDS = tuple(k.value for k in DocumentKind)
MESSAGE_STATE_SV = {
    "received": "mottaget",
    "waiting": "väntar på registret",
    "processed": "behandlat",
    "failed": "misslyckat",
    "rejected": "avvisat",
    "duplicate": "dubblett",
}
OUTBOX_STATE_SV = {
    "pending": "väntar",
    "delivered": "levererat",
    "refused": "avvisat",
    "dead": "gav upp",
    "cancelled": "avbrutet",
}
UPSTREAM_SV = {
    "spar": "Folkbokföringen (SPAR)",
    "accounts": "Invånarkonton",
    "mailbox": "Digitala brevlådor",
    "journal": "Journalens bokningstjänst",
    "sms": "SMS-tjänsten",
}
BREAKER_SV = {
    "closed": "svarar (normalt)",
    "open": "svarar inte: anropas inte just nu",
    "half_open": "provas igen",
}
PRINT_STATE_SV = {"open": "Ej hanterade", "handled": "Hanterade", "all": "Alla"}
OUTCOME_SV = {"deliver": "levererat", "print-list": "utskriftslista", "hold": "vilande", "refuse": "stoppat"}


async def any_role(request: Request) -> Staff:
    return await web.signed_in(request)


async def staff_role(request: Request) -> Staff:
    staff = await web.signed_in(request)
    if auth.STAFF not in staff.roles:
        raise NotAllowed("this page is for staff")
    return staff


SignedIn = Annotated[Staff, Depends(any_role)]
StaffOnly = Annotated[Staff, Depends(staff_role)]
AdminOnly = Annotated[Staff, Depends(web.admin_only)]


def _offset(raw: str | None) -> int:
    if raw is None or raw == "":
        return 0
    if not raw.isdigit() or len(raw) > 9:
        raise InvalidRequest("sidan måste vara ett tal")
    return int(raw)


def _patient_number(raw: str) -> str:
    return raw.strip().replace("-", "").replace("+", "")[:32]


async def _notice(request: Request, staff: Staff, text: str) -> None:
    """A one-time notice for the next page (post/redirect/get)."""
    found = await web.load_session(request)
    if found is not None:
        token, data = found
        data["notice"] = text
        await web.save_session(request, token, data)


async def _take_notice(request: Request, staff: Staff) -> str | None:
    found = await web.load_session(request)
    if found is None or "notice" not in found[1]:
        return None
    token, data = found
    text = str(data.pop("notice"))
    await web.save_session(request, token, data)
    return text


def _local(target: str, prefix: str) -> bool:
    """A redirect target inside the console only (no open redirect)."""
    return target.startswith(prefix) and "//" not in target and "\\" not in target


def _back(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def create_console(state: State, settings: ConsoleSettings, oidc: OidcClient) -> FastAPI:
    """The console app, sharing the API's state (engine, adapters, audit writer)."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.state = state
    state.console_settings = settings
    state.oidc = oidc
    app.add_middleware(web.AuditAfter, writer=state.audit)
    app.add_middleware(web.ContentPolicy)  # outermost: error pages get it too
    app.mount("/static", StaticFiles(directory=str(web.HERE / "static")), name="static")
    _errors(app)

    # --- sign-in and sign-out ------------------------------------------------------------

    def redirect_uri(request: Request) -> str:
        return oidc.settings.redirect_uri or str(request.url_for("signed_in_callback"))

    @app.get("/logga-in")
    async def sign_in(request: Request, next: str = "/console/") -> Response:
        target = next if _local(next, "/console/") else "/console/"
        url, pending = await oidc.start(redirect_uri(request))
        token = await web.new_session(request, {"pending": pending, "next": target}, 15)
        response = _back(url)
        web.set_cookie(request, response, token, 15)
        return response

    @app.get("/inloggad", name="signed_in_callback")
    async def callback(request: Request) -> Response:
        found = await web.load_session(request)
        if found is None or "pending" not in found[1]:
            raise SignInFailed("no sign-in in progress in this browser (it expired, or cookies are off)")
        old, data = found
        who = await oidc.finish(str(request.url), data["pending"], redirect_uri(request))
        await web.end_session(request, old)  # a new id once signed in: no session fixation
        signed = {"subject": who.subject, "name": who.name, "roles": list(who.roles),
                  "csrf": secrets.token_urlsafe(32)}  # fmt: skip
        token = await web.new_session(request, signed, settings.session_minutes)
        response = _back(data.get("next", "/console/"))
        web.set_cookie(request, response, token, settings.session_minutes)
        log.info("console.signed_in", subject=who.subject, roles=list(who.roles))
        return response

    @app.post("/logga-ut")
    async def sign_out(request: Request, staff: SignedIn) -> Response:
        await form(request, staff)
        await web.end_session(request, staff.token)
        request.state.staff = None
        response = render(request, "utloggad.html")
        web.clear_cookie(response)
        return response

    # --- Översikt --------------------------------------------------------------------------

    @app.get("/")
    async def start(request: Request, staff: SignedIn) -> Response:
        engine = web.engine_of(request)
        at = web.now()

        def load() -> dict[str, Any]:
            with engine.connect() as conn:
                hour = overview.messages_by_type_and_state(conn, at - timedelta(hours=1))
                day = overview.messages_by_type_and_state(conn, at - timedelta(days=1))
                by_state = queries.count_by_state(conn)
                boxes = overview.outbox_by_state(conn)
                open_items, _ = print_list.list_items(
                    conn, print_list.PrintListFilter("open", None, None, 1, 0)
                )
                _, failures = queries.list_messages(
                    conn, queries.MessageFilter("failed", None, None, None, None, None, None, 10, 0)
                )
            held_total, _ = held.list_held(engine, limit=1)
            return {
                "hour": hour,
                "day": day,
                "by_state": by_state,
                "outbox": boxes,
                "open_items": open_items,
                "held_total": held_total,
                "failures": failures,
            }

        data = await run_in_threadpool(load)
        types = sorted({t for t, _ in data["day"]})
        outside = _outside_systems(request.app.state)
        return render(
            request,
            "oversikt.html",
            types=types,
            states=MESSAGE_STATES,
            state_sv=MESSAGE_STATE_SV,
            outbox_sv=OUTBOX_STATE_SV,
            backlog=data["by_state"].get("received", 0) + data["by_state"].get("waiting", 0),
            outside=outside,
            notice=await _take_notice(request, staff),
            **data,
        )

    # --- Utskriftslista (R-DOC-9) --------------------------------------------------------

    @app.get("/utskriftslista")
    async def print_list_page(
        request: Request,
        staff: StaffOnly,
        state: str = "open",
        kind: str = "",
        unit: str = "",
        sida: str | None = None,
    ) -> Response:
        if state not in print_list.STATES:
            raise InvalidRequest("okänt läge")
        if kind and kind not in KINDS:
            raise InvalidRequest("okänd dokumenttyp")
        offset = _offset(sida)
        f = print_list.PrintListFilter(
            cast(print_list.State, state), kind or None, unit.strip() or None, PAGE, offset
        )

        def load() -> tuple[int, list[print_list.PrintItem]]:
            with web.engine_of(request).connect() as conn:
                return print_list.list_items(conn, f)

        total, items = await run_in_threadpool(load)
        audit(request, Access("PrintItem", "search"))
        return render(
            request,
            "utskriftslista.html",
            items=items,
            total=total,
            offset=offset,
            page=PAGE,
            state=state,
            kind=kind,
            unit=unit,
            kinds=KINDS,
            states=PRINT_STATE_SV,
            notice=await _take_notice(request, staff),
        )

    @app.post("/utskriftslista")
    async def print_list_action(request: Request, staff: StaffOnly) -> Response:
        fields = await form(request, staff)
        chosen = web.ids(fields)
        action = one(fields, "action")
        back = one(fields, "back", "/console/utskriftslista")
        back = back if _local(back, "/console/utskriftslista") else "/console/utskriftslista"
        if not chosen:
            await _notice(request, staff, "Välj minst en rad först.")
            return _back(back)
        if len(chosen) > 1000:
            raise InvalidRequest("för många rader på en gång")
        audit(request, Access("PrintItem", "update" if action != "pdf" else "read", tuple(map(str, chosen))))
        engine = web.engine_of(request)
        if action in ("handle", "unhandle"):
            mark = print_list.mark_handled if action == "handle" else print_list.mark_unhandled

            def change() -> print_list.MarkResult:
                with engine.begin() as conn:
                    return mark(conn, chosen, staff.subject)

            result = await run_in_threadpool(change)
            verb = "hanterade" if action == "handle" else "ej hanterade"
            text = f"{len(result.changed)} markerade som {verb}."
            if result.unchanged:
                text += f" {len(result.unchanged)} var redan {verb}."
            await _notice(request, staff, text)
            return _back(back)
        if action == "pdf":
            pdf = await run_in_threadpool(_selection_pdf, engine, chosen)
            return Response(
                pdf,
                media_type="application/pdf",
                headers={"Content-Disposition": 'inline; filename="utskrift.pdf"'},
            )
        raise InvalidRequest("okänd åtgärd")

    @app.get("/utskriftslista/{item_id}")
    async def print_item_page(request: Request, staff: StaffOnly, item_id: int) -> Response:
        def load() -> tuple[Any, Any, Any]:
            with web.engine_of(request).connect() as conn:
                item = print_list.get_item(conn, item_id)
                if item is None:
                    raise NotFound(f"utskrift {item_id} finns inte")
                return (
                    item,
                    print_list.history(conn, item.document_id),
                    print_list.attachments(conn, item.document_id),
                )

        audit(request, Access("PrintItem", "read", (str(item_id),)))
        item, events, files = await run_in_threadpool(load)
        return render(request, "utskrift.html", item=item, events=events, files=files)

    @app.get("/utskriftslista/{item_id}/dokument.pdf")
    async def print_item_pdf(request: Request, staff: StaffOnly, item_id: int) -> Response:
        audit(request, Access("PrintItem", "read", (str(item_id),)))
        pdf = await run_in_threadpool(_selection_pdf, web.engine_of(request), [item_id])
        return Response(
            pdf,
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="utskrift-{item_id}.pdf"'},
        )

    # --- Vilande dokument (R-ID-4) -------------------------------------------------------

    @app.get("/vilande")
    async def held_page(request: Request, staff: StaffOnly, sida: str | None = None) -> Response:
        offset = _offset(sida)
        total, items = await run_in_threadpool(
            held.list_held, web.engine_of(request), limit=PAGE, offset=offset
        )
        audit(request, Access("Communication", "search"))
        return render(
            request,
            "vilande.html",
            items=items,
            total=total,
            offset=offset,
            page=PAGE,
            notice=await _take_notice(request, staff),
        )

    @app.post("/vilande/{document_id}")
    async def held_decision(request: Request, staff: StaffOnly, document_id: str) -> Response:
        fields = await form(request, staff)
        why = one(fields, "why")
        action = one(fields, "action")
        if not why:
            await _notice(request, staff, "Skriv varför innan du släpper eller skriver ut dokumentet.")
            return _back("/console/vilande")
        audit(request, Access("Communication", "update", (document_id,)))
        st = request.app.state
        engine = web.engine_of(request)
        if action == "release":
            decision = await held.release(
                engine,
                document_id,
                by=staff.subject,
                why=why,
                accounts=st.accounts,
                mailbox=st.mailbox,
                register=st.register,
                mappings=st.mappings,
                unit_rules=st.settings.unit_rules,
                now=st.clock(),
            )
        elif action == "print":
            decision = await run_in_threadpool(
                held.send_to_print_list,
                engine,
                document_id,
                by=staff.subject,
                why=why,
                mappings=st.mappings,
                now=st.clock(),
            )
        else:
            raise InvalidRequest("okänd åtgärd")
        where = OUTCOME_SV.get(decision.outcome.value, decision.outcome.value)
        await _notice(
            request, staff, f"Dokumentet {document_id} är nu: {where} ({', '.join(decision.rules)})."
        )
        return _back("/console/vilande")

    # --- Person (R-BK-4, R-ID-3) -----------------------------------------------------------

    @app.get("/person")
    async def person_page(request: Request, staff: StaffOnly, id: str = "") -> Response:
        number = id.strip()
        person = None
        refreshed = None
        if number:
            audit(request, Access("Patient", "read", (_patient_number(number),), _patient_number(number)))
            engine = web.engine_of(request)
            person = await person_view(request.app.state, engine, number)
            known = (person["identifier"], person["current_identifier"], *person["former_identifiers"])
            numbers = [p["value"] for p in known if p]
            await run_in_threadpool(request.app.state.audit.flush)  # a refresh just made is counted

            def last() -> Any:
                with engine.connect() as conn:
                    return overview.last_refresh(conn, numbers)

            refreshed = await run_in_threadpool(last)
        return render(
            request,
            "person.html",
            number=number,
            person=person,
            refreshed=refreshed,
            outcome_sv=OUTCOME_SV,
            notice=await _take_notice(request, staff),
        )

    @app.post("/person/uppdatera")
    async def person_refresh(request: Request, staff: StaffOnly) -> Response:
        fields = await form(request, staff)
        number = one(fields, "id")
        unit = one(fields, "unit") or None
        audit(request, Access("Patient", "update", (_patient_number(number),), _patient_number(number)))
        result = await refresh_person(request.app.state, web.engine_of(request), number, unit)
        text = (
            f"Uppdaterat {web.now().astimezone(reports.STOCKHOLM):%Y-%m-%d %H:%M}: "
            f"{result.created} nya, {result.updated} ändrade, {result.unchanged} oförändrade bokningar."
        )
        if result.refused:
            text += f" {len(result.refused)} kunde inte tas emot."
        await _notice(request, staff, text)
        return _back(f"/console/person?id={quote(number)}")

    # --- Meddelanden (admin) ---------------------------------------------------------------

    @app.get("/meddelanden")
    async def messages_page(
        request: Request,
        staff: AdminOnly,
        state: str = "",
        type: str = "",
        trigger: str = "",
        control_id: str = "",
        patient: str = "",
        fran: str = "",
        till: str = "",
        sida: str | None = None,
    ) -> Response:
        if state and state not in MESSAGE_STATES:
            raise InvalidRequest("okänt läge")
        offset = _offset(sida)
        f = queries.MessageFilter(
            state or None,
            type.strip().upper() or None,
            trigger.strip().upper() or None,
            control_id.strip() or None,
            _patient_number(patient) or None,
            _local_moment(fran, "från"),
            _local_moment(till, "till"),
            PAGE,
            offset,
        )

        def load() -> tuple[int, list[dict[str, Any]]]:
            with web.engine_of(request).connect() as conn:
                return queries.list_messages(conn, f)

        total, rows = await run_in_threadpool(load)
        audit(request, Access("Message", "search", patient=_patient_number(patient) or None))
        return render(
            request,
            "meddelanden.html",
            rows=rows,
            total=total,
            offset=offset,
            page=PAGE,
            state=state,
            type=type,
            trigger=trigger,
            control_id=control_id,
            patient=patient,
            fran=fran,
            till=till,
            states=MESSAGE_STATES,
            state_sv=MESSAGE_STATE_SV,
            notice=await _take_notice(request, staff),
        )

    @app.get("/meddelanden/{message_id}")
    async def message_page(request: Request, staff: AdminOnly, message_id: int) -> Response:
        def load() -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
            with web.engine_of(request).connect() as conn:
                row = queries.get_message(conn, message_id)
                return row, browser.outputs(conn, message_id) if row is not None else []

        audit(request, Access("Message", "read", (str(message_id),)))
        row, outputs = await run_in_threadpool(load)
        if row is None:
            raise NotFound(f"meddelande {message_id} finns inte")
        return render(
            request,
            "meddelande.html",
            m=message_view(row),
            outputs=outputs,
            state_sv=MESSAGE_STATE_SV,
            notice=await _take_notice(request, staff),
        )

    @app.post("/meddelanden/omkor")
    async def reprocess(request: Request, staff: AdminOnly) -> Response:
        fields = await form(request, staff)
        chosen = web.ids(fields)
        if not chosen:
            await _notice(request, staff, "Välj minst ett meddelande först.")
            return _back("/console/meddelanden")
        if len(chosen) > 1000:
            raise InvalidRequest("för många meddelanden på en gång")
        audit(request, Access("Message", "update", tuple(map(str, chosen))))
        outcomes = await run_in_threadpool(browser.reprocess, web.engine_of(request), chosen)
        again = [o for o in outcomes if o.after == "received"]
        text = f"{len(again)} av {len(outcomes)} meddelanden körs om."
        skipped = [o for o in outcomes if o.after != "received"]
        if skipped:
            text += " Inte omkörda: " + ", ".join(
                f"{o.message_id} ({MESSAGE_STATE_SV.get(o.before or '', 'finns inte')})" for o in skipped[:10]
            )
        await _notice(request, staff, text)
        target = f"/console/meddelanden/{chosen[0]}" if len(chosen) == 1 else "/console/meddelanden"
        return _back(target)

    # --- Rapporter (R-DOC-8) -------------------------------------------------------------

    @app.get("/rapporter")
    async def report_page(request: Request, staff: StaffOnly) -> Response:
        start = request.query_params.get("from", "")
        end = request.query_params.get("to", "")
        unit = request.query_params.get("unit", "").strip()
        rows = None
        if start or end:
            p = reports.period(start, end)
            audit(request, Access("Communication", "search"))

            def load() -> Any:
                with web.engine_of(request).connect() as conn:
                    return reports.document_report(conn, p, unit or None)

            rows = await run_in_threadpool(load)
        return render(
            request,
            "rapporter.html",
            start=start,
            end=end,
            unit=unit,
            rows=rows,
            outcome_sv=OUTCOME_SV,
        )

    @app.get("/rapporter.csv")
    async def report_csv_download(request: Request, staff: StaffOnly) -> Response:
        p = reports.period(request.query_params.get("from"), request.query_params.get("to"))
        unit = request.query_params.get("unit", "").strip()
        audit(request, Access("Communication", "search"))

        def load() -> Any:
            with web.engine_of(request).connect() as conn:
                return reports.document_report(conn, p, unit or None)

        rows = await run_in_threadpool(load)
        name = f"dokumentrapport_{p.start.astimezone(reports.STOCKHOLM):%Y-%m-%d}.csv"
        return Response(
            report_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    # --- Utkorg ------------------------------------------------------------------------------

    @app.get("/utkorg")
    async def outbox_page(
        request: Request, staff: SignedIn, state: str = "", sida: str | None = None
    ) -> Response:
        if state and state not in outbox.STATES:
            raise InvalidRequest("okänt läge")
        offset = _offset(sida)
        total, items = await run_in_threadpool(
            outbox.list_outbox, web.engine_of(request), state=state or None, limit=PAGE, offset=offset
        )
        audit(request, Access("MailboxLetter", "search"))
        return render(
            request,
            "utkorg.html",
            items=items,
            total=total,
            offset=offset,
            page=PAGE,
            state=state,
            states=outbox.STATES,
            state_sv=OUTBOX_STATE_SV,
            notice=await _take_notice(request, staff),
        )

    @app.post("/utkorg/{outbox_id}")
    async def outbox_retry(request: Request, staff: SignedIn, outbox_id: int) -> Response:
        await form(request, staff)
        audit(request, Access("MailboxLetter", "update", (str(outbox_id),)))
        await run_in_threadpool(
            outbox.retry, web.engine_of(request), outbox_id, by=staff.subject, now=request.app.state.clock()
        )
        await _notice(request, staff, f"Brev {outbox_id} försöks igen.")
        return _back("/console/utkorg")

    # --- Logg (admin) ------------------------------------------------------------------------

    @app.get("/logg")
    async def audit_page(
        request: Request, staff: AdminOnly, patient: str = "", caller: str = "", sida: str | None = None
    ) -> Response:
        offset = _offset(sida)
        writer = request.app.state.audit
        await run_in_threadpool(writer.flush)
        f = AuditFilter(
            patient=_patient_number(patient) or None,
            caller=caller.strip() or None,
            count=PAGE,
            offset=offset,
        )

        def load() -> tuple[int, list[dict[str, Any]]]:
            with web.engine_of(request).connect() as conn:
                return audit_search(conn, f)

        total, rows = await run_in_threadpool(load)
        audit(request, Access("AuditEvent", "search", patient=f.patient))
        return render(
            request,
            "logg.html",
            rows=rows,
            total=total,
            offset=offset,
            page=PAGE,
            patient=patient,
            caller=caller,
        )

    return app


def _selection_pdf(engine: Any, chosen: list[int]) -> bytes:
    """One PDF for the chosen print-list items, in the order chosen."""
    with engine.connect() as conn:
        docs = []
        for item_id in chosen:
            item = print_list.get_item(conn, item_id)
            if item is None:
                raise NotFound(f"utskrift {item_id} finns inte")
            doc = print_list.printable(conn, item)
            if doc is None:
                raise NotFound(f"utskrift {item_id}: dokumentet finns inte kvar")
            docs.append(doc)
    return combine([render_pdf(d) for d in docs])


def _errors(app: FastAPI) -> None:
    """Every refusal as a Swedish page; bad input is never a 500."""

    def page(request: Request, status: int, title: str, detail: str | None = None) -> Response:
        return render(request, "fel.html", status, title=title, detail=detail)

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, _exc: NotSignedIn) -> Response:
        target = request.url.path if request.method == "GET" else "/console/"
        if request.url.query and request.method == "GET":
            target += "?" + request.url.query
        return _back("/console/logga-in?next=" + quote(target, safe=""))

    @app.exception_handler(NotAllowed)
    async def not_allowed(request: Request, _exc: NotAllowed) -> Response:
        return page(request, 403, "Du har inte behörighet till den här sidan",
                    "Sidan kräver en annan roll. Kontakta din administratör om du behöver den.")  # fmt: skip

    @app.exception_handler(BadForm)
    async def bad_form(request: Request, _exc: BadForm) -> Response:
        why = "Formulärets säkerhetskod saknas eller stämmer inte. Ladda om sidan och försök igen."
        return page(request, 403, "Formuläret kunde inte tas emot", why)

    @app.exception_handler(SignInFailed)
    async def sign_in_failed(request: Request, exc: SignInFailed) -> Response:
        log.warning("console.sign_in_failed", reason=str(exc))
        return page(request, 400, "Inloggningen misslyckades", "Försök logga in igen.")

    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, exc: GatewayError) -> Response:
        if isinstance(exc, NotFound):
            return page(request, 404, "Hittades inte", str(exc))
        if isinstance(exc, InvalidRequest | InboundError):
            return page(request, 400, "Felaktig uppgift", str(exc))
        if isinstance(exc, TransientUpstreamError):
            return page(request, 503, "Ett externt system svarar inte just nu", "Försök igen om en stund.")
        if isinstance(exc, PermanentUpstreamError):
            return page(request, 502, "Ett externt system nekade frågan", str(exc))
        log.error("console.error", error=type(exc).__name__)
        return page(request, 500, "Något gick fel", "Försök igen. Kvarstår felet, kontakta förvaltningen.")

    @app.exception_handler(ValueError)
    async def bad_value(request: Request, _exc: ValueError) -> Response:
        return page(request, 400, "Felaktig uppgift", "Ett värde i formuläret kunde inte läsas.")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, _exc: RequestValidationError) -> Response:
        return page(
            request, 400, "Felaktig uppgift", "Adressen eller formuläret innehåller ett ogiltigt värde."
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return page(request, 404, "Sidan finns inte")
        if exc.status_code == 405:
            return page(request, 405, "Det går inte att göra så här", "Använd knapparna på sidan.")
        return page(request, exc.status_code, "Något gick fel")

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> Response:
        log.error("console.crash", error=type(exc).__name__)
        return page(request, 500, "Något gick fel", "Försök igen. Kvarstår felet, kontakta förvaltningen.")


__all__ = ["ConsoleSettings", "OidcSettings", "create_console"]


def _outside_systems(state: Any) -> list[dict[str, Any]]:
    """Each outside system on Översikt: its circuit breaker, calls, failures, mean latency and
    the last failed call (gateway/metrics.py; every process's figures where they are shared)."""
    breakers: dict[str, str] = {}
    for name, adapter in (("spar", state.register), ("accounts", state.accounts), ("mailbox", state.mailbox)):
        # Adapters that expose their circuit breaker (the fakes in tests do not).
        breaker = getattr(adapter, "breaker", None)
        if breaker is not None and hasattr(breaker, "state"):
            breakers[name] = BREAKER_SV.get(str(breaker.state.value), str(breaker.state.value))
    rows = []
    for summary in metrics.upstream_summary():
        state_sv = breakers.get(summary.upstream)
        if state_sv is None and summary.breaker_open is not None:
            state_sv = BREAKER_SV["open"] if summary.breaker_open else BREAKER_SV["closed"]
        rows.append(
            {
                "name": UPSTREAM_SV.get(summary.upstream, summary.upstream),
                "state": state_sv or "–",
                "calls": summary.calls,
                "failed": summary.failed,
                "mean_ms": summary.mean_ms,
                "last_error": summary.last_error,
                "last_error_at": summary.last_error_at,
            }
        )
    return rows


def _local_moment(text: str, name: str) -> datetime | None:
    """A time typed in the console (``2026-12-07T10:30``, Swedish local time) as an aware moment."""
    text = text.strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidRequest(f"{name}: skriv tiden som ÅÅÅÅ-MM-DD TT:MM") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=reports.STOCKHOLM)
