"""The operator's view of the platform's own money and days: the balance sheet with its
identities, the day close (status and a manual close) and the daily series for charts.

The balance sheet and the day close are the operator's (an admin's too); the daily series is
the mall's public figures per day, like the economy and its history, so any credential of the
tenant may read it.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated

from fastapi import APIRouter, Query

from tokenmall.api.deps import AnyCaller, Context, OperatorCaller
from tokenmall.api.errors import ERROR_RESPONSES
from tokenmall.api.routes import API_PREFIX
from tokenmall.api.schemas.operations import (
    BalanceSheetOut,
    DailyRowOut,
    DailySeriesOut,
    DayCloseIn,
    DayCloseOut,
    DayStatusOut,
)
from tokenmall.service import accounting, dayclose, series
from tokenmall.store.db import read_only

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["operations"], responses=ERROR_RESPONSES)


def _days_before(day: dt.date, n: int) -> dt.date:
    return day - dt.timedelta(days=n) if day.toordinal() > n else dt.date.min


@router.get("/tenants/{tenant}/balance-sheet")
def read_balance_sheet(caller: OperatorCaller, ctx: Context) -> BalanceSheetOut:
    """The tenant's accounts (pool, dividend fund, revenue, SP reserve, escrow, held
    withdrawals, treasury) and the members' totals, in one snapshot, with every identity
    between them checked and shown (``ok`` false names a broken one: a bug to report)."""
    with read_only(ctx.engine).connect() as conn:
        accounting.snapshot(conn)
        return BalanceSheetOut.of(accounting.balance_sheet(conn, caller.tenant_id))


@router.get("/tenants/{tenant}/day-close")
def read_day_close(caller: OperatorCaller, ctx: Context) -> DayStatusOut:
    """The tenant's time zone and local date, the last date closed, the next scheduled close
    and the past dates still to close."""
    with read_only(ctx.engine).connect() as conn:
        clock = dayclose.tenant_clock(conn, caller.tenant_id)
        return DayStatusOut.of(dayclose.day_status(conn, clock, time.time()))


@router.post("/tenants/{tenant}/day-close")
def close_day(caller: OperatorCaller, ctx: Context, body: DayCloseIn) -> DayCloseOut:
    """Close a tenant-local date now: pay the dividend fund out, then run exits (R9).  Today
    may be closed early (the scheduler then leaves it); a date not begun yet, or before the
    tenant existed, is refused.  Closing a date again answers ``replayed`` and pays nothing."""
    with read_only(ctx.engine).connect() as conn:
        clock = dayclose.tenant_clock(conn, caller.tenant_id)
    return DayCloseOut.of(dayclose.close_requested(ctx.store, clock, body.date, time.time()))


@router.get("/tenants/{tenant}/series/daily")
def read_daily_series(
    caller: AnyCaller,
    ctx: Context,
    start: Annotated[
        dt.date | None,
        Query(alias="from", description="First local date (YYYY-MM-DD); default: to - 29 days."),
    ] = None,
    end: Annotated[
        dt.date | None,
        Query(alias="to", description="Last local date (YYYY-MM-DD); default: today."),
    ] = None,
) -> DailySeriesOut:
    """One row per local day: price, pool and circulating at its end, sales, the dividends of
    its close and exits.  At most 366 days; clipped to the tenant's first day and today."""
    now = time.time()
    with read_only(ctx.engine).connect() as conn:
        clock = dayclose.tenant_clock(conn, caller.tenant_id)
        last = end if end is not None else clock.today(now)
        first = start if start is not None else _days_before(last, 29)
        rows = series.daily_series(conn, clock, first, last, now)
    return DailySeriesOut(timezone=clock.zone.key, days=[DailyRowOut.of(r) for r in rows])
