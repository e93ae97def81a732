"""The dashboard: today's figures and the charts of price, pool and dividends over time.

Today is the tenant's local date (its time zone, as its day closes).  The figures come from
the economy read and the daily series (:mod:`tokenmall.service.series`), the very rows
``GET /v1/tenants/{tenant}/series/daily`` answers, plus the day's order and member counts;
the charts are drawn in the browser by ECharts from the same rows, embedded in the page as
JSON (no second request, no inline script).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tokenmall.service import console, dayclose, reads, series
from tokenmall.store.db import read_only
from tokenmall.web.base import lang_of, render, services, viewer
from tokenmall.web.i18n import translations

__all__ = ["CHART_DAYS", "chart_data", "router"]

router = APIRouter(include_in_schema=False)
CHART_DAYS: Final = 30


def chart_data(rows: list[series.DailyRow], lang: str) -> dict[str, Any]:
    """What the charts draw: one point per day (dividends: none while a day is open)."""
    _ = translations(lang).gettext
    return {
        "dates": [r.date.isoformat() for r in rows],
        "price": [r.price for r in rows],
        "pool": [str(r.pool) for r in rows],
        "circulating": [str(r.circulating) for r in rows],
        "dividends": [r.dividends for r in rows],
        "labels": {
            "price": _("EP price"),
            "pool": _("Pool"),
            "circulating": _("Circulating EP"),
            "dividends": _("Dividends paid"),
        },
    }


@router.get("/console/{tenant}/")
def dashboard(request: Request, tenant: str) -> Response:
    who = viewer(request, tenant)
    now = time.time()
    with read_only(services(request).engine).connect() as conn:
        clock = dayclose.tenant_clock(conn, who.session.tenant_id)
        today = clock.today(now)
        economy = reads.economy(conn, who.session.tenant_id)
        first = today - dt.timedelta(days=CHART_DAYS - 1)
        rows = series.daily_series(conn, clock, first, today, now)
        start = dt.datetime.combine(today, dt.time(0), tzinfo=clock.zone).timestamp()
        end = dt.datetime.combine(
            today + dt.timedelta(days=1), dt.time(0), tzinfo=clock.zone
        ).timestamp()
        # the mall's own counts are the operator's; the economy and series are public figures
        counts = (
            console.window_counts(conn, who.session.tenant_id, start, end) if who.operator else None
        )
        status = dayclose.day_status(conn, clock, now)
    today_row = rows[-1] if rows and rows[-1].date == today else None
    return render(
        request,
        "dashboard.html",
        who,
        economy=economy,
        today=today,
        today_row=today_row,
        counts=counts,
        status=status,
        charts=chart_data(rows, lang_of(request)),
    )
