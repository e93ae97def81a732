"""Group buys in the pages: the shared group link and "my groups" for members (``/m``), the
public draw record anyone may open, and the operator's list of offers and groups.

A member shares a group as ``/m/{mall}/groups/{public_id}``.  Anyone with the link sees the
offer, its price, the places taken, the deadline, the state and the draw's commitment (public
from the moment the group opened); a logged-in member of the mall also gets "join" (the call
behind ``POST .../groupbuys/groups/{public_id}/places``) and then "pay" (the order routes'
``start_payment``; with the sandbox provider the page then plays the customer at the sandbox,
as ``POST .../payments/sandbox/intents/{id}/complete`` does; a WeChat payment would hand
``wx.requestPayment`` its parameters instead, which these pages do not do yet).  A refusal
(full, closed, already in) is the service's own, shown with nothing charged.

The draw record (``/m/{mall}/groups/{public_id}/draw``, no login) is the JSON of
``GET /v1/groupbuys/groups/{public_id}/draw``, laid out with how to check it with
``tokenmall groupbuy verify``: the page shows what the service published, it decides nothing.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tokenmall.errors import NotFound, TokenmallError
from tokenmall.service import dayclose
from tokenmall.service.groupbuys import GroupBuys, GroupView, PlaceView
from tokenmall.service.tenants import tenant_id_for
from tokenmall.store.db import read_only
from tokenmall.web.base import (
    ConsoleError,
    Viewer,
    in_thread,
    operator_only,
    posted,
    render,
    service_error,
    services,
    tr,
    viewer,
)
from tokenmall.web.i18n import N_, format_datetime, format_money
from tokenmall.web.member import member_viewer
from tokenmall.web.session import MEMBER_COOKIE

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
PUBLIC_ID: Final = re.compile(r"[a-z0-9]{1,32}")
LIST_LIMIT: Final = 100  # the first 100 in opening order (shown newest first); the API pages on

MODES: Final = {
    "multi": N_("Group buy"),
    "lottery": N_("Lottery group"),
    "merchant": N_("Merchant group"),
    "activity": N_("Activity group"),
}
STATES: Final = {
    "open": N_("open"),
    "full": N_("full, waiting for the draw"),
    "succeeded": N_("succeeded"),
    "failed": N_("failed"),
    "lost": N_("not drawn"),
}
PLACES: Final = {
    "pending": N_("taken, to pay"),
    "held": N_("paid, held until the group is decided"),
    "confirmed": N_("confirmed: an ordinary order"),
    "refunded": N_("refunded in full"),
    "released": N_("given up"),
}


def groupbuys_of(request: Request) -> GroupBuys:
    return services(request).groupbuys


def _tenant(request: Request, tenant: str) -> tuple[int, ZoneInfo]:
    """The mall of the path and its time zone (an unknown mall: 404, as any page)."""
    with read_only(services(request).engine).connect() as conn:
        try:
            tid = tenant_id_for(conn, tenant)
        except NotFound:
            raise ConsoleError(404, N_("No such page.")) from None
        return tid, dayclose.tenant_clock(conn, tid).zone


def _group(request: Request, tenant_id: int, public_id: str) -> GroupView:
    """The mall's group ``public_id`` (another mall's, or none: 404)."""
    if not PUBLIC_ID.fullmatch(public_id):
        raise ConsoleError(404, N_("No such page."))
    try:
        return groupbuys_of(request).get_group(tenant_id, public_id)
    except NotFound:
        raise ConsoleError(404, N_("No such page.")) from None


def _maybe_member(request: Request, tenant: str) -> Viewer | None:
    """The member of the session if it is one of this mall's; anyone else reads the page."""
    if MEMBER_COOKIE not in request.cookies:
        return None
    try:
        return member_viewer(request, tenant)
    except ConsoleError:
        return None


def own_place(group: GroupView, member: str | None) -> PlaceView | None:
    """The member's latest place in the group (a place given up may be followed by another)."""
    mine = [p for p in group.places if member is not None and p.member == member]
    return mine[-1] if mine else None


def render_group(
    request: Request,
    tenant: str,
    public_id: str,
    who: Viewer | None,
    *,
    notice: str | None = None,
    error: str | None = None,
    http_status: int = 200,
) -> Response:
    tid, zone = _tenant(request, tenant)
    group = _group(request, tid, public_id)
    record = groupbuys_of(request).public_group(public_id)
    place = own_place(group, who.session.member if who is not None else None)
    return render(
        request,
        "m_group.html",
        who,
        mall=tenant,
        group=group,
        place=place,
        mode=MODES.get(group.mode, group.mode),
        state=STATES.get(group.state, group.state),
        place_state=PLACES.get(place.status, place.status) if place is not None else None,
        deadline=format_datetime(group.deadline, zone),
        drawn=record.get("seed") is not None,
        notice=notice,
        error=error,
        http_status=http_status,
    )


@router.get("/m/{tenant}/groups")
def my_groups(request: Request, tenant: str) -> Response:
    """The groups the member has (or had) a place in, newest first, with their place."""
    who = member_viewer(request, tenant)
    member = who.session.member or ""
    found = groupbuys_of(request).list_groups(
        who.session.tenant_id, limit=LIST_LIMIT, cursor=None, member=member
    )
    items: list[dict[str, Any]] = []
    for g in reversed(found.items):
        place = own_place(g, member)
        items.append(
            {
                "group": g,
                "mode": MODES.get(g.mode, g.mode),
                "state": STATES.get(g.state, g.state),
                "place": PLACES.get(place.status, place.status) if place else "",
                "place_status": place.status if place else "",
                "deadline": format_datetime(g.deadline, who.zone),
            }
        )
    return render(request, "m_groups.html", who, mall=tenant, items=items)


@router.get("/m/{tenant}/groups/{public_id}")
def group_page(request: Request, tenant: str, public_id: str) -> Response:
    return render_group(request, tenant, public_id, _maybe_member(request, tenant))


@router.post("/m/{tenant}/groups/{public_id}/join")
async def join_group(request: Request, tenant: str, public_id: str) -> Response:
    """Take a free place (the API's join): its order is then paid with "pay"."""
    who = await in_thread(member_viewer, request, tenant)
    await posted(request, who)
    member = who.session.member or ""
    if not PUBLIC_ID.fullmatch(public_id):
        raise ConsoleError(404, N_("No such page."))
    try:
        view = await in_thread(
            groupbuys_of(request).join, who.session.tenant_id, public_id, member=member
        )
    except NotFound:
        raise ConsoleError(404, N_("No such page.")) from None
    except TokenmallError as exc:
        error = service_error(request, exc)
        return await in_thread(
            render_group, request, tenant, public_id, who, error=error, http_status=409
        )
    place = own_place(view, member)
    assert place is not None
    notice = tr(
        request,
        N_("You have place %(no)s: pay %(amount)s to hold it."),
        no=place.no,
        amount=format_money(view.price),
    )
    return await in_thread(render_group, request, tenant, public_id, who, notice=notice)


def _pay(request: Request, tenant: str, public_id: str, who: Viewer) -> Response:
    """Pay the member's place: ``start_payment`` as the order routes, then (sandbox) the
    customer's side at the sandbox, whose notification applies the payment."""
    tid, member = who.session.tenant_id, who.session.member or ""
    group = _group(request, tid, public_id)
    place = own_place(group, member)
    if place is None or place.status != "pending":
        error = tr(request, N_("You have no place to pay in this group."))
        return render_group(request, tenant, public_id, who, error=error, http_status=409)
    orders = services(request).orders
    try:
        pay = orders.start_payment(tid, tenant, place.order, member=member)
        if pay.intent_id is not None and pay.provider == "sandbox":
            orders.complete_sandbox(tid, tenant, pay.intent_id, succeed=True, member=member)
    except TokenmallError as exc:
        error = service_error(request, exc)
        return render_group(request, tenant, public_id, who, error=error, http_status=409)
    # paid, the place is held, or already confirmed or refunded if this payment decided the
    # group (its draw, its fill): the page shows which
    after = own_place(_group(request, tid, public_id), member)
    if after is not None and after.status != "pending":
        notice = tr(request, N_("Paid %(amount)s."), amount=format_money(group.price))
        return render_group(request, tenant, public_id, who, notice=notice)
    error = tr(request, N_("The payment has not arrived yet: open this page again shortly."))
    return render_group(request, tenant, public_id, who, error=error, http_status=202)


@router.post("/m/{tenant}/groups/{public_id}/pay")
async def pay_place(request: Request, tenant: str, public_id: str) -> Response:
    who = await in_thread(member_viewer, request, tenant)
    await posted(request, who)
    return await in_thread(_pay, request, tenant, public_id, who)


@router.get("/m/{tenant}/groups/{public_id}/draw")
def draw_page(request: Request, tenant: str, public_id: str) -> Response:
    """The group's public draw record: no login, the same JSON as the public API route."""
    tid, _zone = _tenant(request, tenant)
    group = _group(request, tid, public_id)
    record = groupbuys_of(request).public_group(public_id)
    return render(
        request,
        "m_draw.html",
        None,
        mall=tenant,
        group=group,
        mode=MODES.get(group.mode, group.mode),
        record=record,
        record_json=json.dumps(record, indent=2, ensure_ascii=False),
        commands=(
            f"curl {request.base_url}v1/groupbuys/groups/{public_id}/draw > draw.json\n"
            "tokenmall groupbuy verify draw.json"
        ),
        drawn=record.get("seed") is not None,
    )


@router.get("/console/{tenant}/groupbuys")
def console_groupbuys(request: Request, tenant: str) -> Response:
    """The operator's view: offers (each open one with "close") and the latest groups."""
    who = viewer(request, tenant)
    operator_only(who)
    return console_groupbuys_page(request, who)


def console_groupbuys_page(
    request: Request, who: Viewer, *, notice: str | None = None, http_status: int = 200
) -> Response:
    gb = groupbuys_of(request)
    tid = who.session.tenant_id
    offers = gb.list_offers(tid, limit=LIST_LIMIT, cursor=None).items
    groups = list(reversed(gb.list_groups(tid, limit=LIST_LIMIT, cursor=None).items))
    return render(
        request,
        "groupbuys.html",
        who,
        offers=offers,
        groups=groups,
        modes=MODES,
        states=STATES,
        notice=notice,
        http_status=http_status,
    )
