"""Opening and leaving groups from the member pages, and the operator's lottery campaigns.

Members (``/m``): the offers a group can still be opened of (``GET .../groupbuys/offers
?active=true``), "open a group" (``POST .../groupbuys/groups``: the member leads it, with
the first place and its order to pay on the group's page), and "leave" on a group's page
(``POST .../groupbuys/groups/{id}/cancel``: a paid place refunded in full at once, an unpaid
one's order cancelled; the leader may leave only while alone).  Each calls the same service
as the JSON API; a refusal is the service's own, shown with nothing changed.

Operators (``/console``): "close" on an open offer (``POST .../groupbuys/offers/{code}/close``),
the lottery campaigns (``GET .../groupbuys/campaigns``) and a
campaign's page: the next draw's commitment, the full groups waiting for it (``GET
.../groupbuys/groups?campaign=&state=full``) and its draws (``GET .../campaigns/{code}/draws``)
with links to their public records, which anyone can check without credentials.
"""

from __future__ import annotations

import re
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tokenmall.errors import NotFound, TokenmallError
from tokenmall.web.base import (
    ConsoleError,
    Viewer,
    in_thread,
    operator_only,
    posted,
    render,
    service_error,
    tr,
    viewer,
)
from tokenmall.web.groups import (
    LIST_LIMIT,
    MODES,
    PUBLIC_ID,
    STATES,
    console_groupbuys_page,
    groupbuys_of,
    own_place,
    render_group,
)
from tokenmall.web.i18n import N_, format_datetime, format_money
from tokenmall.web.member import member_viewer

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
_CODE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


@router.get("/m/{tenant}/offers")
def offers_page(request: Request, tenant: str) -> Response:
    """The offers a member can open a group of (closed ones are not shown)."""
    who = member_viewer(request, tenant)
    found = groupbuys_of(request).list_offers(
        who.session.tenant_id, limit=LIST_LIMIT, cursor=None, active=True
    )
    items = [{"offer": o, "mode": MODES.get(o.mode, o.mode)} for o in found.items]
    return render(request, "m_offers.html", who, mall=tenant, items=items)


def _offers_error(request: Request, tenant: str, who: Viewer, error: str) -> Response:
    found = groupbuys_of(request).list_offers(
        who.session.tenant_id, limit=LIST_LIMIT, cursor=None, active=True
    )
    items = [{"offer": o, "mode": MODES.get(o.mode, o.mode)} for o in found.items]
    return render(
        request, "m_offers.html", who, mall=tenant, items=items, error=error, http_status=409
    )


@router.post("/m/{tenant}/offers/{code}/open")
async def open_group(request: Request, tenant: str, code: str) -> Response:
    """Open a group of the offer as its leader (the API's open): the first place is the
    member's, its order to pay on the group's page."""
    who = await in_thread(member_viewer, request, tenant)
    await posted(request, who)
    if not _CODE.fullmatch(code):
        raise ConsoleError(404, N_("No such page."))
    member = who.session.member or ""
    try:
        view = await in_thread(
            groupbuys_of(request).open_group, who.session.tenant_id, offer=code, member=member
        )
    except NotFound:
        raise ConsoleError(404, N_("No such page.")) from None
    except TokenmallError as exc:
        error = service_error(request, exc)
        return await in_thread(_offers_error, request, tenant, who, error)
    notice = tr(
        request,
        N_("You opened this group: pay %(amount)s to hold your place, then share its link."),
        amount=format_money(view.price),
    )
    return await in_thread(render_group, request, tenant, view.public_id, who, notice=notice)


@router.post("/m/{tenant}/groups/{public_id}/leave")
async def leave_group(request: Request, tenant: str, public_id: str) -> Response:
    """Leave an open group (the API's cancel): a paid place is refunded in full at once."""
    who = await in_thread(member_viewer, request, tenant)
    await posted(request, who)
    if not PUBLIC_ID.fullmatch(public_id):
        raise ConsoleError(404, N_("No such page."))
    member = who.session.member or ""
    gb = groupbuys_of(request)
    tid = who.session.tenant_id
    try:
        view = await in_thread(gb.cancel, tid, public_id, member=member)
    except NotFound as exc:
        if "no group" in str(exc):
            raise ConsoleError(404, N_("No such page.")) from None
        error = service_error(request, exc)
        return await in_thread(
            render_group, request, tenant, public_id, who, error=error, http_status=409
        )
    except TokenmallError as exc:
        error = service_error(request, exc)
        return await in_thread(
            render_group, request, tenant, public_id, who, error=error, http_status=409
        )
    place = own_place(view, member)
    if place is not None and place.status == "refunded":
        notice = tr(
            request,
            N_("You left the group: %(amount)s is refunded in full."),
            amount=format_money(view.price),
        )
    else:
        notice = tr(request, N_("You left the group: your unpaid order is cancelled."))
    return await in_thread(render_group, request, tenant, public_id, who, notice=notice)


@router.post("/console/{tenant}/groupbuys/offers/{code}/close")
async def close_offer(request: Request, tenant: str, code: str) -> Response:
    """Stop an offer (the API's ``POST .../groupbuys/offers/{code}/close``): no new group
    opens of it; groups already open run to their end."""
    who = await in_thread(viewer, request, tenant)
    operator_only(who)
    await posted(request, who)
    if not _CODE.fullmatch(code):
        raise ConsoleError(404, N_("No such page."))
    try:
        await in_thread(
            groupbuys_of(request).close_offer,
            who.session.tenant_id,
            code,
            actor=who.session.actor,
        )
    except NotFound:
        raise ConsoleError(404, N_("No such page.")) from None
    notice = tr(
        request,
        N_("Offer %(code)s is closed: no new group opens of it; open groups run to their end."),
        code=code,
    )
    return await in_thread(console_groupbuys_page, request, who, notice=notice)


@router.get("/console/{tenant}/campaigns")
def campaigns_page(request: Request, tenant: str) -> Response:
    """The lottery campaigns: winners per draw, draws so far, full groups waiting."""
    who = viewer(request, tenant)
    operator_only(who)
    found = groupbuys_of(request).list_campaigns(
        who.session.tenant_id, limit=LIST_LIMIT, cursor=None
    )
    items = []
    for c in found.items:
        # the list carries no count of waiting groups: read each campaign (100 at most)
        full = groupbuys_of(request).get_campaign(who.session.tenant_id, c.code)
        items.append(full)
    return render(request, "campaigns.html", who, campaigns=items)


@router.get("/console/{tenant}/campaigns/{code}")
def campaign_page(request: Request, tenant: str, code: str) -> Response:
    """One campaign: the next draw's commitment, its groups waiting, its draws."""
    who = viewer(request, tenant)
    operator_only(who)
    if not _CODE.fullmatch(code):
        raise ConsoleError(404, N_("No such page."))
    gb = groupbuys_of(request)
    tid = who.session.tenant_id
    try:
        campaign = gb.get_campaign(tid, code)
    except NotFound:
        raise ConsoleError(404, N_("No such page.")) from None
    waiting = gb.list_groups(tid, limit=LIST_LIMIT, cursor=None, state="full", campaign=code)
    draws: list[dict[str, Any]] = [
        {**d, "when": format_datetime(d["at"], who.zone)} for d in gb.campaign_draws(tid, code)
    ]
    return render(
        request,
        "campaign.html",
        who,
        campaign=campaign,
        waiting=waiting.items,
        draws=draws,
        states=STATES,
    )
