"""Group buys over HTTP (docs/GROUPBUY.md).

Who may do what:

* operators (and the platform admin): define offers and lottery campaigns, run a campaign's
  draw, list every group, report members' tasks; everything a member may do, for any member
  (``member`` in the body);
* a member token: list offers, open a group, join one (from a shared link's public id),
  cancel its own place before the group fills, read its groups and funds; the
  place's order is paid with the ordinary order routes (``/orders/{ref}/payments``);
* merchant keys: none of it (403);
* anyone, without credentials: a group's or a campaign draw's public draw record.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from tokenmall.api.deps import Caller, OperatorCaller, Paging, TenantCaller
from tokenmall.api.errors import ERROR_RESPONSES, ApiError
from tokenmall.api.routes import API_PREFIX
from tokenmall.api.schemas import Page
from tokenmall.api.schemas.groupbuys import (
    CampaignCreate,
    CampaignOut,
    DrawRecordOut,
    FundOut,
    GroupOpen,
    GroupOut,
    GroupState,
    MemberIn,
    OfferCreate,
    OfferOut,
    TaskIn,
    TaskOut,
)
from tokenmall.service.groupbuys import GroupBuys

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["groupbuys"], responses=ERROR_RESPONSES)

PublicId = Annotated[
    str, Path(max_length=32, pattern=r"^[a-z0-9]+$", description="The opaque public id.")
]
CampaignCode = Annotated[str, Path(max_length=64, description="The campaign's code.")]
OfferCode = Annotated[str, Path(max_length=64, description="The offer's code.")]
DrawNo = Annotated[int, Path(ge=1, le=2_147_483_647, description="The draw's number.")]


async def _groupbuys(request: Request) -> GroupBuys:
    """The app's group buys, built by the composition root with its order service."""
    service: GroupBuys = request.app.state.services.groupbuys
    return service


GroupBuysDep = Annotated[GroupBuys, Depends(_groupbuys)]


def _member(caller: Caller, given: str | None) -> str:
    """Who acts: a member token for itself only; staff name the member."""
    if caller.kind == "merchant":
        raise ApiError(403, "forbidden", "this needs operator or member credentials")
    if caller.kind == "member":
        own = caller.principal.member
        assert own is not None
        if given not in (None, own):
            raise ApiError(403, "forbidden", "a member token acts for its own member only")
        return own
    if given is None:
        raise ApiError(422, "validation_error", "member is required with this credential")
    return given


def _viewer(caller: Caller) -> str | None:
    return caller.principal.member if caller.kind == "member" else None


# ----------------------------------------------------------------------------- operator


@router.post("/tenants/{tenant}/groupbuys/campaigns", status_code=201)
def create_campaign(
    caller: OperatorCaller, groups: GroupBuysDep, body: CampaignCreate
) -> CampaignOut:
    """A lottery campaign; its first draw's seed is committed to now (``commitment``)."""
    return CampaignOut.of(
        groups.create_campaign(
            caller.tenant_id,
            code=body.code,
            winners=body.winners,
            draw_every_hours=body.draw_every_hours,
            actor=caller.principal.actor,
        )
    )


@router.get("/tenants/{tenant}/groupbuys/campaigns")
def list_campaigns(caller: OperatorCaller, groups: GroupBuysDep, page: Paging) -> Page[CampaignOut]:
    found = groups.list_campaigns(caller.tenant_id, limit=page.limit, cursor=page.cursor)
    return Page(items=[CampaignOut.of(c) for c in found.items], next_cursor=found.next_cursor)


@router.get("/tenants/{tenant}/groupbuys/campaigns/{code}")
def read_campaign(caller: OperatorCaller, groups: GroupBuysDep, code: CampaignCode) -> CampaignOut:
    return CampaignOut.of(groups.get_campaign(caller.tenant_id, code))


@router.get("/tenants/{tenant}/groupbuys/campaigns/{code}/draws")
def list_campaign_draws(
    caller: OperatorCaller, groups: GroupBuysDep, code: CampaignCode
) -> list[DrawRecordOut]:
    """The campaign's draws, newest first, each as its public record (the same JSON as
    ``GET /v1/groupbuys/campaigns/{public_id}/draws/{no}``)."""
    return [
        DrawRecordOut(**{k: v for k, v in d.items() if k != "at"})
        for d in groups.campaign_draws(caller.tenant_id, code)
    ]


@router.post("/tenants/{tenant}/groupbuys/campaigns/{code}/draw")
def draw_campaign(
    caller: OperatorCaller, groups: GroupBuysDep, code: CampaignCode
) -> DrawRecordOut:
    """Draw now among the groups that filled since the last draw; winners are the seed's,
    never the operator's.  Answers the draw's public record."""
    return DrawRecordOut(**groups.draw_campaign(caller.tenant_id, code))


@router.post("/tenants/{tenant}/groupbuys/offers", status_code=201)
def create_offer(caller: OperatorCaller, groups: GroupBuysDep, body: OfferCreate) -> OfferOut:
    """An offer on a SKU: its mode and parameters, fixed for every group opened of it."""
    return OfferOut.of(
        groups.create_offer(caller.tenant_id, actor=caller.principal.actor, **body.model_dump())
    )


@router.get("/tenants/{tenant}/groupbuys/offers")
def list_offers(
    caller: TenantCaller,
    groups: GroupBuysDep,
    page: Paging,
    active: bool | None = None,
    campaign: Annotated[str | None, Query(max_length=64)] = None,
) -> Page[OfferOut]:
    """Offers in creation order (``?active=true``: those groups can still be opened of;
    ``?campaign=``: a campaign's offers)."""
    if caller.kind == "merchant":
        raise ApiError(403, "forbidden", "this needs operator or member credentials")
    found = groups.list_offers(
        caller.tenant_id, limit=page.limit, cursor=page.cursor, active=active, campaign=campaign
    )
    return Page(items=[OfferOut.of(o) for o in found.items], next_cursor=found.next_cursor)


@router.post("/tenants/{tenant}/groupbuys/offers/{code}/close")
def close_offer(caller: OperatorCaller, groups: GroupBuysDep, code: OfferCode) -> OfferOut:
    """Stop the offer: no new group opens of it (409 ``group_state``).  Groups already open
    run to their end: members still join them until they fill or their deadline fails them,
    and lottery groups take part in their campaign's draws.  Closing again changes nothing."""
    return OfferOut.of(groups.close_offer(caller.tenant_id, code, actor=caller.principal.actor))


# ----------------------------------------------------------------------------- groups


@router.get("/tenants/{tenant}/groupbuys/groups")
def list_groups(
    caller: TenantCaller,
    groups: GroupBuysDep,
    page: Paging,
    *,
    state: GroupState | None = None,
    member: Annotated[str | None, Query(max_length=64)] = None,
    campaign: Annotated[str | None, Query(max_length=64)] = None,
) -> Page[GroupOut]:
    """Groups in opening order; a member token lists the groups it has (or had) a place in;
    ``?campaign=``: a campaign's groups (with ``state=full``: those waiting for its draw)."""
    if caller.kind == "merchant":
        raise ApiError(403, "forbidden", "this needs operator or member credentials")
    if caller.kind == "member":
        member = _member(caller, member)
    found = groups.list_groups(
        caller.tenant_id,
        limit=page.limit,
        cursor=page.cursor,
        state=state,
        member=member,
        campaign=campaign,
    )
    viewer = _viewer(caller)
    return Page(items=[GroupOut.of(g, viewer) for g in found.items], next_cursor=found.next_cursor)


@router.post("/tenants/{tenant}/groupbuys/groups", status_code=201)
def open_group(caller: TenantCaller, groups: GroupBuysDep, body: GroupOpen) -> GroupOut:
    """Open a group of an offer as its leader: the first place is yours, its order to pay."""
    member = _member(caller, body.member)
    view = groups.open_group(caller.tenant_id, offer=body.offer, member=member)
    return GroupOut.of(view, _viewer(caller))


@router.get("/tenants/{tenant}/groupbuys/groups/{public_id}")
def read_group(caller: TenantCaller, groups: GroupBuysDep, public_id: PublicId) -> GroupOut:
    if caller.kind == "merchant":
        raise ApiError(403, "forbidden", "this needs operator or member credentials")
    return GroupOut.of(groups.get_group(caller.tenant_id, public_id), _viewer(caller))


@router.post("/tenants/{tenant}/groupbuys/groups/{public_id}/places", status_code=201)
def join_group(
    caller: TenantCaller, groups: GroupBuysDep, public_id: PublicId, body: MemberIn
) -> GroupOut:
    """Take a free place (its order to pay).  409 ``group_full`` when every place is taken,
    409 ``group_state`` when the group is no longer open: nothing was charged."""
    member = _member(caller, body.member)
    return GroupOut.of(groups.join(caller.tenant_id, public_id, member=member), _viewer(caller))


@router.post("/tenants/{tenant}/groupbuys/groups/{public_id}/cancel")
def cancel_place(
    caller: TenantCaller, groups: GroupBuysDep, public_id: PublicId, body: MemberIn
) -> GroupOut:
    """Leave an open group: a paid place is refunded in full at once, an unpaid one's order
    cancelled.  The leader may leave only while alone."""
    member = _member(caller, body.member)
    return GroupOut.of(groups.cancel(caller.tenant_id, public_id, member=member), _viewer(caller))


@router.post("/tenants/{tenant}/groupbuys/tasks")
def report_task(caller: OperatorCaller, groups: GroupBuysDep, body: TaskIn) -> TaskOut:
    """A task done (invite, sign_in, share), as ``POST /members/{member}/tasks`` with ``ref``
    as its key (the same fact: chain21's held money is released too): each locked activity
    fund of the member releases a step, at most its daily steps a day; the same ``ref`` again
    releases nothing.  The tenant's back end reports tasks, not the member."""
    member = _member(caller, body.member)
    released = groups.task(caller.tenant_id, member=member, task=body.task, ref=body.ref)
    funds = [FundOut(**f) for f in groups.funds(caller.tenant_id, member)]
    return TaskOut(task=body.task, released=released, funds=funds)


@router.get("/tenants/{tenant}/groupbuys/funds")
def list_funds(
    caller: TenantCaller,
    groups: GroupBuysDep,
    member: Annotated[str | None, Query(max_length=64)] = None,
) -> list[FundOut]:
    """A member's activity shopping funds: amount, released, still locked."""
    who = _member(caller, member)
    return [FundOut(**f) for f in groups.funds(caller.tenant_id, who)]


# ----------------------------------------------------------------------------- public


@router.get("/groupbuys/groups/{public_id}/draw")
def public_group_draw(groups: GroupBuysDep, public_id: PublicId) -> DrawRecordOut:
    """No credentials: a group's draw record (a lottery group's: its campaign's draw).  The
    commitment from the moment the group (or campaign) opened; seed, candidates and winners
    once drawn.  ``tokenmall groupbuy verify`` recomputes the winners from this JSON alone."""
    return DrawRecordOut(**groups.public_group(public_id))


@router.get("/groupbuys/campaigns/{public_id}/draws/{no}")
def public_campaign_draw(groups: GroupBuysDep, public_id: PublicId, no: DrawNo) -> DrawRecordOut:
    """No credentials: a lottery campaign's draw ``no``, as published."""
    return DrawRecordOut(**groups.public_campaign_draw(public_id, no))
