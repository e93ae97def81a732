"""Daily series for charts: one row per local day of the tenant (its time zone, R9).

The per-transaction history (:func:`tokenmall.service.reads.price_history`) has a point per
ledger transaction; a chart of a year wants one per day.  Both come from the event log: every
``ledger_tx`` row stores the figures after it (``result``: price, pool, circulating, ...), its
command (``payload``) and its commit time, so the series is computed in one pass over the
window's rows, in sequence order, with no second copy of the numbers to keep in step.

What a row says, for local date D:

* ``price``, ``pool``, ``circulating``, ``dividend_fund``: as of the end of D (after the last
  transaction committed before the next local midnight; the day before's if D had none);
* ``sales``: the CNY of the orders paid during D (a payment's whole value: CNY, SP and the
  value of EP redeemed) plus the purchases applied during D (imported or scenario orders);
* ``dividends``, ``recipients``: what the close *of* D paid (key ``close:<D>``), whenever it ran
  (at the next midnight, or later by catch-up); null while D is not closed;
* ``exits``: forced exits in the transactions committed during D, plus those of the close of D
  (a close's exits belong to the day it closes, like its dividends);
* ``transactions``: ledger transactions committed during D.

Cost: the window's first and last sequence numbers are found by binary search on the
primary key (as the history does; no index on time is kept, it would cost every write), then
one range read of those rows and one index range of the close keys.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import Connection, case, select

from tokenmall.errors import InvalidCommand
from tokenmall.money import show_price
from tokenmall.service.dayclose import TenantClock, close_key
from tokenmall.service.reads import first_seq_at, tenant_params
from tokenmall.store import schema as s

__all__ = ["MAX_DAYS", "DailyRow", "daily_series"]

MAX_DAYS = 366
_ZERO = Decimal(0)


@dataclass(slots=True)
class DailyRow:
    date: dt.date
    price: str
    pool: str
    circulating: str
    dividend_fund: str
    sales: Decimal = _ZERO
    dividends: str | None = None
    recipients: int = 0
    exits: int = 0
    transactions: int = 0
    closed: bool = False


def _midnight(clock: TenantClock, day: dt.date) -> float:
    return dt.datetime.combine(day, dt.time(0), tzinfo=clock.zone).timestamp()


def _figure(result: dict[str, Any], name: str) -> Decimal:
    return Decimal(str(result.get("figures", {}).get(name, "0")))


def daily_series(
    conn: Connection, clock: TenantClock, start: dt.date, end: dt.date, now: float
) -> list[DailyRow]:
    """Rows for the local dates ``start`` .. ``end`` (inclusive), clipped to the tenant's life:
    from its first day to today (a day that has not begun has no figures yet)."""
    if start > end:
        raise InvalidCommand("from must not be after to")
    if (end - start).days >= MAX_DAYS:
        raise InvalidCommand(f"a series spans at most {MAX_DAYS} days")
    start = max(start, clock.first_date())
    end = min(end, clock.today(now))
    if start > end:
        return []
    tenant_id = clock.tenant_id
    days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    bounds = [_midnight(clock, d) for d in days] + [_midnight(clock, end + dt.timedelta(days=1))]

    t = s.ledger_tx.c
    last = conn.execute(
        select(s.tenant_state.c.seq).where(s.tenant_state.c.tenant_id == tenant_id)
    ).scalar()
    last = int(last or 0)
    first_seq = first_seq_at(conn, tenant_id, bounds[0], last)
    stop_seq = first_seq_at(conn, tenant_id, bounds[-1], last)

    # the state at the window's start: the result of the last transaction before it
    state: dict[str, Any]
    before = (
        conn.execute(
            select(t.result).where(t.tenant_id == tenant_id, t.seq == first_seq - 1)
        ).scalar()
        if first_seq > 1
        else None
    )
    if before is not None:
        state = orjson.loads(before)
    else:
        params = tenant_params(conn, tenant_id)
        state = {
            "price": show_price(_ZERO, _ZERO, params.initial_price),
            "pool": "0",
            "circulating": "0",
            "dividend_fund": "0",
        }

    rows = [
        DailyRow(
            date=d,
            price=state["price"],
            pool=state["pool"],
            circulating=state["circulating"],
            dividend_fund=state["dividend_fund"],
        )
        for d in days
    ]
    keys = {close_key(d): i for i, d in enumerate(days)}
    # the payload is read only where the figures do not carry the amount (a purchase's)
    payload = case((t.kind == "purchase", t.payload), else_=None)
    found = conn.execute(
        select(t.created_at, t.kind, t.key, t.result, payload)
        .where(t.tenant_id == tenant_id, t.seq >= first_seq, t.seq < stop_seq)
        .order_by(t.seq)
    )
    for at, kind, key, raw, purchase in found:
        i = bisect.bisect_right(bounds, float(at)) - 1
        if i < 0 or i >= len(rows):  # a wall clock that stepped back
            continue
        row = rows[i]
        result = orjson.loads(raw)
        row.transactions += 1
        row.price, row.pool = result["price"], result["pool"]
        row.circulating, row.dividend_fund = result["circulating"], result["dividend_fund"]
        if kind == "purchase" and purchase is not None:
            row.sales += Decimal(str(orjson.loads(purchase)["amount"]))
        elif kind == "pay":
            row.sales += _figure(result, "total")
        if key not in keys:  # the close of a day in the window is counted below, on its day
            row.exits += int(_figure(result, "exits"))
    # a day without transactions ends as the day before it ended
    for prev, row in itertools.pairwise(rows):
        if not row.transactions:
            row.price, row.pool = prev.price, prev.pool
            row.circulating, row.dividend_fund = prev.circulating, prev.dividend_fund

    closes = conn.execute(
        select(t.key, t.result).where(
            t.tenant_id == tenant_id, t.key >= close_key(start), t.key <= close_key(end)
        )
    )
    for key, raw in closes:
        day = keys.get(key)
        if day is None:  # a key in the range that is not a date of the window
            continue
        result = orjson.loads(raw)
        closed = rows[day]
        closed.closed = True
        closed.dividends = str(_figure(result, "paid"))
        closed.recipients = int(_figure(result, "recipients"))
        closed.exits += int(_figure(result, "exits"))
    return rows
