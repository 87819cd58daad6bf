"""The demo's part on SMS reminders and notices: bookings two days ahead, then the plan.

Called by ``gateway demo`` after its bookings and letters; reads the plan from the store (no
route exposes a day's plan across persons). Numbers are masked, and no text or mobile number is
shown (neither is stored).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any

import click
import httpx

from gateway.domain.identity import mask_id
from gateway.domain.notifications import STOCKHOLM
from gateway.store import notifications as store


def show(
    runner: Any, client: httpx.Client, journal: Any, push: Any, host: str, port: int, *, bookings: int = 20
) -> None:
    # The day after tomorrow: their reminders are due tomorrow evening whenever the demo runs
    # (a booking made inside its lead time gets none, R-NOT-1).
    later = date.today() + timedelta(days=2)
    messages = journal.day(later, bookings=bookings)
    click.echo(
        f"\nSimulated journal pushes {len(messages)} SIU messages for {later} over MLLP, "
        "to plan their SMS reminders (R-NOT-1, R-BK-5) ..."
    )
    asyncio.run(push(messages, host, port, connections=2))
    engine = runner.gateway.engine
    _wait_idle(client)
    start = datetime.combine(date.today(), datetime.min.time(), tzinfo=STOCKHOLM)
    with engine.connect() as conn:
        planned = store.planned_between(conn, start, start + timedelta(days=2))
        everything = conn.execute(store.summary()).all()
    click.echo(
        f"\nSMS reminders and notices planned for today and tomorrow ({len(planned)}; "
        "per person: GET /patients/ID):"
    )
    for row in planned[:25]:
        due = row["due_at"].astimezone(STOCKHOLM)
        click.echo(
            f"  {due:%a %H:%M}  {row['kind']:<15} to {row['role']:<8} of {mask_id(row['patient_value']):<15} "
            f"{row['rules']:<22} {row['reason'][:60]}"
        )
    if len(planned) > 25:
        click.echo(f"  ... and {len(planned) - 25} more")
    counts: Counter[tuple[str, str]] = Counter()
    for state, rules, n in everything:
        counts[(state, rules)] += n
    click.echo("  All notifications by state and rule (consent and mobile are checked when each is due):")
    for (state, rules), n in sorted(counts.items()):
        click.echo(f"    {state:<10} {rules:<26} {n}")


def _wait_idle(client: httpx.Client, timeout: float = 30) -> None:
    """Until the worker has processed tomorrow's bookings (their plan commits with them)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/messages", params={"state": "received", "limit": 1}).json()["total"] == 0:
            return
        time.sleep(0.1)
