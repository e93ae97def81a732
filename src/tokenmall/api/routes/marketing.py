"""Marketing models: switched on per tenant by its operator (audited, with the compliance
guard); rewards read by the operator and by each member; chain21's moves."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Path, Query

from tokenmall.api.deps import Caller, Context, OperatorCaller, Paging, TenantCaller
from tokenmall.api.errors import ERROR_RESPONSES, ApiError
from tokenmall.api.routes import API_PREFIX
from tokenmall.api.schemas import Page
from tokenmall.api.schemas.common import money
from tokenmall.api.schemas.marketing import (
    MemberRewardsOut,
    ModelChangeOut,
    ModelsIn,
    ModelsOut,
    ModelTotalOut,
    MoveOut,
    RewardOut,
    RewardTotalsOut,
)
from tokenmall.errors import NotFound
from tokenmall.service import marketing, members
from tokenmall.store.db import read_only

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["marketing"], responses=ERROR_RESPONSES)

MemberCode = Annotated[str, Path(max_length=64, description="The member's code.")]
Filter = Annotated[str | None, Query(max_length=64)]


def _self_or_operator(caller: Caller, member: str) -> None:
    """Operators read every member; a member only themselves (others: as if absent)."""
    if caller.kind == "member":
        if caller.principal.member != member:
            raise NotFound(f"no member {member!r}")
    elif caller.kind not in ("admin", "operator"):
        raise ApiError(
            403, "forbidden", "this needs platform admin, operator or member credentials"
        )


@router.get("/tenants/{tenant}/models")
def read_models(caller: OperatorCaller, ctx: Context) -> ModelsOut:
    """The marketing models the tenant has on, with their parameters and run order."""
    with read_only(ctx.engine).connect() as conn:
        return ModelsOut.of(marketing.get_config(conn, caller.tenant_id))


@router.put("/tenants/{tenant}/models")
def set_models(caller: OperatorCaller, ctx: Context, body: ModelsIn) -> ModelsOut:
    """Replace the models the tenant has on (effective from its next event; audited).

    A configuration paying through more than two referral levels is refused
    (``compliance_refused``, naming the rule) unless ``compliance_override`` gives a reason.
    """
    with ctx.store.tenant_tx(caller.tenant_id) as tx:
        marketing.set_models(
            tx,
            body.models,
            actor=caller.principal.actor,
            reason=body.reason,
            compliance_override=body.compliance_override,
        )
        return ModelsOut.of(marketing.get_config(tx.conn, caller.tenant_id))


@router.get("/tenants/{tenant}/model-changes")
def list_model_changes(caller: OperatorCaller, ctx: Context, page: Paging) -> Page[ModelChangeOut]:
    """The audit trail of model changes (who, when, before, after, reason), oldest first."""
    with read_only(ctx.engine).connect() as conn:
        found = marketing.list_changes(conn, caller.tenant_id, limit=page.limit, cursor=page.cursor)
    return Page(items=[ModelChangeOut.of(c) for c in found.items], next_cursor=found.next_cursor)


@router.get("/tenants/{tenant}/rewards")
def list_rewards(
    *,
    caller: OperatorCaller,
    ctx: Context,
    page: Paging,
    member: Filter = None,
    model: Filter = None,
    order: Filter = None,
) -> Page[RewardOut]:
    """Every model reward and take-back, oldest first (filter by member, model, order)."""
    with read_only(ctx.engine).connect() as conn:
        found = marketing.list_rewards(
            conn,
            caller.tenant_id,
            member=member,
            model=model,
            order=order,
            limit=page.limit,
            cursor=page.cursor,
        )
    return Page(items=[RewardOut.of(r) for r in found.items], next_cursor=found.next_cursor)


@router.get("/tenants/{tenant}/rewards/totals")
def reward_totals(caller: OperatorCaller, ctx: Context) -> RewardTotalsOut:
    """What each model has paid over every member: granted, taken back, net, frozen."""
    with read_only(ctx.engine).connect() as conn:
        totals = marketing.tenant_totals(conn, caller.tenant_id, time.time())
    return RewardTotalsOut(
        models=[ModelTotalOut.of(t) for t in totals],
        net=money(sum((t.net for t in totals), Decimal(0))),
    )


@router.get("/tenants/{tenant}/members/{member}/model-rewards")
def member_rewards(caller: TenantCaller, ctx: Context, member: MemberCode) -> MemberRewardsOut:
    """A member's rewards by model (the member themselves, or an operator)."""
    _self_or_operator(caller, member)
    with read_only(ctx.engine).connect() as conn:
        members.get_profile(conn, caller.tenant_id, member)
        totals = marketing.member_totals(conn, caller.tenant_id, member, time.time())
    return MemberRewardsOut(
        member=member,
        models=[ModelTotalOut.of(t) for t in totals],
        net=money(sum((t.net for t in totals), Decimal(0))),
        frozen=money(sum((t.frozen for t in totals), Decimal(0))),
    )


@router.get("/tenants/{tenant}/models/chain21/moves")
def chain21_moves(
    caller: OperatorCaller, ctx: Context, page: Paging, member: Filter = None
) -> Page[MoveOut]:
    """chain21's log: every agent, placement, boss, bonus, hold, release and take-back."""
    with read_only(ctx.engine).connect() as conn:
        found = marketing.list_moves(
            conn, caller.tenant_id, member=member, limit=page.limit, cursor=page.cursor
        )
    return Page(items=[MoveOut.of(m) for m in found.items], next_cursor=found.next_cursor)
