"""The member's H5 pages (``/m``), mobile first: so far the home page.

A member arrives by a signed link, ``/m/login?token=tmt_...``: the member token the mall's
back end issues (``POST .../members/{member}/tokens``; in production after its WeChat login,
in the demo and the tests directly).  The token is checked as the API checks it and exchanged
for a session cookie (``tm_member``, scope "member", path ``/m``, no longer than the token),
then the browser is sent on to a URL without it.  Every page reads through the services the
API's member routes call (``reads.holdings``, the daily series, the reward history).

Home: EP held and its value at today's price, the price and its 30-day chart, quota left, SP,
today's dividend and the level.  Sell, exchange, withdrawals, orders, the referral link and
the board are the next pages; they add a module like this one.
"""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from tokenmall.errors import NotFound
from tokenmall.service import dayclose, reads, series
from tokenmall.service.credentials import verify_member_token
from tokenmall.service.members import get_profile
from tokenmall.service.tenants import tenant_id_for
from tokenmall.store.db import read_only
from tokenmall.web.base import ConsoleError, Viewer, lang_of, render, services
from tokenmall.web.dashboard import CHART_DAYS, chart_data
from tokenmall.web.i18n import N_
from tokenmall.web.session import MEMBER_COOKIE, open_session, seal_session

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
MAX_TOKEN: Final = 1024


def _secret(request: Request) -> str:
    return services(request).settings.secret_key.get_secret_value()


def member_viewer(request: Request, tenant: str) -> Viewer:
    """The member of the session, for ``tenant`` (another mall's: 404; none: the link page)."""
    session = open_session(_secret(request), request.cookies.get(MEMBER_COOKIE))
    if session is None or session.scope != "member" or session.member is None:
        raise ConsoleError(401, N_("Open the link your mall sent you to see your account."))
    if session.tenant != tenant:
        raise ConsoleError(404, N_("No such page."))
    with read_only(services(request).engine).connect() as conn:
        try:
            get_profile(conn, session.tenant_id, session.member)
        except NotFound:
            raise ConsoleError(404, N_("No such page.")) from None
        clock = dayclose.tenant_clock(conn, session.tenant_id)
    return Viewer(session, clock.zone)


@router.get("/m/{tenant}/login")
def member_login(request: Request, tenant: str) -> Response:
    """``?token=tmt_...`` of a member of ``tenant``: a session, then home (the token leaves
    the address bar at once).  A bad, expired or other mall's token: the same refusal."""
    token = (request.query_params.get("token") or "")[:MAX_TOKEN]
    claims = verify_member_token(_secret(request), token) if token else None
    tenant_id = None
    if claims is not None:
        with read_only(services(request).engine).connect() as conn:
            try:
                tenant_id = tenant_id_for(conn, tenant)
                get_profile(conn, tenant_id, claims.member)
            except NotFound:
                tenant_id = None
    if claims is None or tenant_id != claims.tenant_id:
        raise ConsoleError(401, N_("This link is not valid any more: ask your mall for a new one."))
    cookie, _ = seal_session(
        _secret(request),
        tenant_id=claims.tenant_id,
        tenant=tenant,
        key_id="",
        scope="member",
        merchant_id=None,
        member=claims.member,
        expires_at=claims.expires_at,
    )
    response = RedirectResponse(f"/m/{tenant}/", status_code=303)
    response.set_cookie(
        MEMBER_COOKIE,
        cookie,
        max_age=max(1, claims.expires_at - int(time.time())),
        httponly=True,
        samesite="lax",  # a link from the mall's app or a chat opens the page logged in
        secure=request.url.scheme == "https",
        path="/m",
    )
    return response


@router.get("/m/{tenant}/")
def member_home(request: Request, tenant: str) -> Response:
    who = member_viewer(request, tenant)
    member = who.session.member or ""
    now = time.time()
    tid = who.session.tenant_id
    with read_only(services(request).engine).connect() as conn:
        clock = dayclose.tenant_clock(conn, tid)
        today = clock.today(now)
        held = reads.holdings(conn, tid, member)
        profile = get_profile(conn, tid, member)
        rows = series.daily_series(
            conn, clock, today - dt.timedelta(days=CHART_DAYS - 1), today, now
        )
        midnight = dt.datetime.combine(today, dt.time(0), tzinfo=clock.zone).timestamp()
        recent = reads.reward_history(conn, tid, member, limit=50, cursor=None).items
    dividend_today = sum(
        (e.amount for e in recent if e.category == "dividend" and e.at >= midnight),
        Decimal(0),
    )
    return render(
        request,
        "m_home.html",
        who,
        held=held,
        profile=profile,
        dividend_today=dividend_today,
        charts=chart_data(rows, lang_of(request)),
    )
