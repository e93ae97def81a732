"""Day close per tenant at local midnight (rule R9 of docs/RULES.md; issue 3 item 7).

A tenant's day is a calendar date in the tenant's time zone.  Closing date D pays the dividend
fund out (water-filling) and runs exits, as one ledger command ``CloseDay(D)`` under the key
``close:<D>`` (ISO date).  That key is the whole of the bookkeeping:

* idempotent: closing D again replays the first result and pays nothing (the ledger keys are
  unique per tenant, and checked after the tenant's lock, so two schedulers racing on the same
  date, in two processes, still pay once);
* crash-safe: the close is one database transaction; a process killed during it leaves no
  trace, and one killed after it leaves the key, so a restart neither loses nor repeats it;
* catch-up: the dates still to close are every local date from the tenant's creation up to
  yesterday without a ``close:<date>`` key, closed oldest first (:func:`catch_up`).  A gap left
  by a down-time, or by a date closed by hand out of order, is filled the same way.

Closing the current date before midnight is allowed (on demand); the scheduler then sees it
closed and does not close it again.  Dates after the tenant's today are refused.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from tokenmall.domain.economy import CloseDay
from tokenmall.domain.events import DayClosed
from tokenmall.errors import InvalidCommand, NotFound
from tokenmall.service.ledger import Ledger
from tokenmall.service.uow import Store, as_store
from tokenmall.store import schema as s

__all__ = [
    "CloseOutcome",
    "DayStatus",
    "TenantClock",
    "catch_up",
    "close_day",
    "close_key",
    "close_requested",
    "closed_dates",
    "day_status",
    "due_dates",
    "next_midnight",
    "parse_date",
    "tenant_clock",
    "tenant_clocks",
]

_PREFIX = "close:"
_PREFIX_END = "close;"  # the next character after ":": the range of every close key


def close_key(day: dt.date) -> str:
    return f"{_PREFIX}{day.isoformat()}"


def parse_date(text: str) -> dt.date:
    """A calendar date as YYYY-MM-DD, or InvalidCommand."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidCommand(f"date must be YYYY-MM-DD, got {text!r}") from None


@dataclass(frozen=True, slots=True)
class TenantClock:
    """What the schedule of one tenant depends on."""

    tenant_id: int
    code: str
    zone: zoneinfo.ZoneInfo
    created_at: float

    def today(self, now: float) -> dt.date:
        return dt.datetime.fromtimestamp(now, self.zone).date()

    def first_date(self) -> dt.date:
        return self.today(self.created_at)


def _clock(row: Any) -> TenantClock:
    try:
        zone = zoneinfo.ZoneInfo(row.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        # tenants are created with a checked zone; a broken row must not stop every tenant
        zone = zoneinfo.ZoneInfo("Asia/Shanghai")
    return TenantClock(int(row.id), str(row.code), zone, float(row.created_at))


def tenant_clock(conn: Connection, tenant_id: int) -> TenantClock:
    t = s.tenants.c
    row = conn.execute(
        select(t.id, t.code, t.timezone, t.created_at).where(t.id == tenant_id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no tenant {tenant_id}")
    return _clock(row)


def tenant_clocks(conn: Connection) -> list[TenantClock]:
    """Every tenant (the scheduler's one query across tenants; each close is per tenant)."""
    t = s.tenants.c
    return [
        _clock(r)
        for r in conn.execute(select(t.id, t.code, t.timezone, t.created_at).order_by(t.id))
    ]


def next_midnight(clock: TenantClock, now: float) -> float:
    """The Unix time of the tenant's next local midnight after ``now`` (zoneinfo: DST-aware)."""
    tomorrow = clock.today(now) + dt.timedelta(days=1)
    return dt.datetime.combine(tomorrow, dt.time(0), tzinfo=clock.zone).timestamp()


def closed_dates(conn: Connection, tenant_id: int) -> set[dt.date]:
    """Dates closed so far: the ``close:<date>`` keys, read as one range of the key index.

    Keys that are not dates (a scenario's ``close:day-1``) are someone else's and ignored.
    """
    t = s.ledger_tx.c
    out = set()
    for key in conn.execute(
        select(t.key).where(t.tenant_id == tenant_id, t.key >= _PREFIX, t.key < _PREFIX_END)
    ).scalars():
        try:
            out.add(dt.date.fromisoformat(key[len(_PREFIX) :]))
        except ValueError:
            continue
    return out


def due_dates(conn: Connection, clock: TenantClock, now: float) -> list[dt.date]:
    """Past local dates since the tenant's creation that are not closed yet, oldest first."""
    first, today = clock.first_date(), clock.today(now)
    if first >= today:
        return []
    done = closed_dates(conn, clock.tenant_id)
    days = (today - first).days
    return [d for d in (first + dt.timedelta(days=i) for i in range(days)) if d not in done]


@dataclass(frozen=True, slots=True)
class CloseOutcome:
    tenant: str
    day: dt.date
    replayed: bool  # True: the date was already closed; nothing was paid now
    seq: int
    paid: str
    recipients: str
    exits: str
    result: dict[str, Any]


def close_day(
    ledger: Ledger | Store, clock: TenantClock, day: dt.date, *, now: float | None = None
) -> CloseOutcome:
    """Close ``day`` for the tenant (idempotent).  ``now`` given: refuse dates after today."""
    if now is not None and day > clock.today(now):
        raise InvalidCommand(
            f"{day} has not begun yet in {clock.zone.key} (today there is {clock.today(now)})"
        )
    with as_store(ledger).tenant_tx(clock.tenant_id) as tx:
        outcome = tx.apply_one(close_key(day), CloseDay(day.isoformat()))
        result = outcome.result or {}
        figures = result.get("figures", {})
        if outcome.status == "applied":
            tx.emit(
                DayClosed(
                    day.isoformat(),
                    paid=Decimal(str(figures.get("paid", "0"))),
                    recipients=int(figures.get("recipients", 0)),
                    exits=int(figures.get("exits", 0)),
                )
            )
    return CloseOutcome(
        tenant=clock.code,
        day=day,
        replayed=outcome.status == "replayed",
        seq=outcome.seq or 0,
        paid=str(figures.get("paid", "0")),
        recipients=str(figures.get("recipients", "0")),
        exits=str(figures.get("exits", "0")),
        result=result,
    )


def catch_up(ledger: Ledger | Store, clock: TenantClock, now: float) -> list[CloseOutcome]:
    """Close every due date of the tenant, oldest first; each close is its own transaction."""
    with as_store(ledger).read() as conn:
        due = due_dates(conn, clock, now)
    return [close_day(ledger, clock, day) for day in due]


@dataclass(frozen=True, slots=True)
class DayStatus:
    """Where a tenant's day closes stand: what ``tokenmall day status`` prints."""

    zone: str
    today: dt.date
    last_closed: dt.date | None
    next_close: float  # the next local midnight, Unix time
    due: list[dt.date]


def day_status(conn: Connection, clock: TenantClock, now: float) -> DayStatus:
    closed = closed_dates(conn, clock.tenant_id)
    first, today = clock.first_date(), clock.today(now)
    days = max(0, (today - first).days)
    due = [d for d in (first + dt.timedelta(days=i) for i in range(days)) if d not in closed]
    return DayStatus(
        zone=clock.zone.key,
        today=today,
        last_closed=max(closed) if closed else None,
        next_close=next_midnight(clock, now),
        due=due,
    )


def close_requested(store: Store, clock: TenantClock, day: dt.date, now: float) -> CloseOutcome:
    """An operator's close of ``day`` (HTTP): as :func:`close_day`, and also refused for a date
    before the tenant existed, which would pay today's fund under a date it never had."""
    if day < clock.first_date():
        raise InvalidCommand(
            f"{day} is before the tenant's first day ({clock.first_date()} in {clock.zone.key})"
        )
    return close_day(store, clock, day, now=now)
