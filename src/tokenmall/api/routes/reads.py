"""Read models over HTTP (R10, issue 3 item 8): the economy now and over time, levels, the
holder board, partners, and a member's holdings and rewards.  Nothing here moves value.

Who sees what: the economy, levels and the board are the mall's public figures (any
credential of the tenant); on the board a member or merchant sees other holders by display
name only, the member code is for operators (and for the member's own row).  The partner list
is the operator's; a member learns their own level and partner status from their holdings.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query

from tokenmall.api.deps import AnyCaller, Caller, Context, OperatorCaller, Paging, TenantCaller
from tokenmall.api.errors import ERROR_RESPONSES, ApiError
from tokenmall.api.routes import API_PREFIX
from tokenmall.api.routes.wallet import self_or_operator
from tokenmall.api.schemas import Page
from tokenmall.api.schemas.reads import (
    EconomyOut,
    HolderOut,
    HoldingsOut,
    LevelOut,
    LevelsOut,
    PointsMoveOut,
    PricePointOut,
)
from tokenmall.api.schemas.wallet import HistoryOut
from tokenmall.service import reads
from tokenmall.service.codec import dec
from tokenmall.service.members import get_profile
from tokenmall.store.db import read_only

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["reads"], responses=ERROR_RESPONSES)

MemberCode = Annotated[str, Path(max_length=64, description="The member's code.")]
# datetimes far outside what a float timestamp holds are refused by their own validation
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


def _holder(caller: Caller, e: reads.BoardEntry, *, ranked: bool) -> HolderOut:
    me = caller.kind == "member" and caller.principal.member == e.member
    shown = me or caller.kind in ("admin", "operator")
    return HolderOut(
        rank=e.rank if ranked else None,
        member=e.member if shown else None,
        display_name=e.display_name,
        points=dec(e.points),
        level=e.level,
        partner=e.partner,
        me=me,
    )


def _timestamp(value: datetime | None, name: str) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:  # a time without a zone is read as UTC, like every time we send
        value = value.replace(tzinfo=UTC)
    if value < _EARLIEST:
        raise ApiError(422, "invalid_command", f"{name} must not be before 1970")
    return value.timestamp()


# ----------------------------------------------------------------------------- economy


@router.get("/tenants/{tenant}/economy")
def read_economy(caller: AnyCaller, ctx: Context) -> EconomyOut:
    """The EP price, pool, supply and dividend fund now."""
    with read_only(ctx.engine).connect() as conn:
        return EconomyOut.of(reads.economy(conn, caller.tenant_id))


@router.get("/tenants/{tenant}/economy/history")
def economy_history(
    caller: AnyCaller,
    ctx: Context,
    page: Paging,
    since: Annotated[
        datetime | None, Query(alias="from", description="ISO 8601; without a zone: UTC.")
    ] = None,
    until: Annotated[
        datetime | None, Query(alias="to", description="ISO 8601; without a zone: UTC.")
    ] = None,
) -> Page[PricePointOut]:
    """The price, pool and circulating EP after every ledger transaction, oldest first."""
    start, end = _timestamp(since, "from"), _timestamp(until, "to")
    if start is not None and end is not None and start > end:
        raise ApiError(422, "invalid_command", "from must not be after to")
    with read_only(ctx.engine).connect() as conn:
        found = reads.price_history(
            conn, caller.tenant_id, since=start, until=end, limit=page.limit, cursor=page.cursor
        )
    return Page(items=[PricePointOut.of(p) for p in found.items], next_cursor=found.next_cursor)


# ----------------------------------------------------------------------------- R10


@router.get("/tenants/{tenant}/levels")
def read_levels(caller: AnyCaller, ctx: Context) -> LevelsOut:
    """The levels by EP held (tenant parameter ``level_thresholds``) and members at each."""
    with read_only(ctx.engine).connect() as conn:
        found = reads.levels(conn, caller.tenant_id)
        params = reads.tenant_params(conn, caller.tenant_id)
    return LevelsOut(
        levels=[
            LevelOut(level=lv.level, min_points=dec(lv.min_points), members=lv.members)
            for lv in found
        ],
        partner_threshold=dec(params.partner_threshold),
    )


@router.get("/tenants/{tenant}/board")
def read_board(caller: AnyCaller, ctx: Context, page: Paging) -> Page[HolderOut]:
    """The top ``board_size`` holders of EP (前十名 by default), highest first."""
    with read_only(ctx.engine).connect() as conn:
        found = reads.board(conn, caller.tenant_id, limit=page.limit, cursor=page.cursor)
    return Page(
        items=[_holder(caller, e, ranked=True) for e in found.items],
        next_cursor=found.next_cursor,
    )


@router.get("/tenants/{tenant}/partners")
def list_partners(caller: OperatorCaller, ctx: Context, page: Paging) -> Page[HolderOut]:
    """Members holding at least ``partner_threshold`` EP (合伙人), in order of joining."""
    with read_only(ctx.engine).connect() as conn:
        found = reads.partners(conn, caller.tenant_id, limit=page.limit, cursor=page.cursor)
    return Page(
        items=[_holder(caller, e, ranked=False) for e in found.items],
        next_cursor=found.next_cursor,
    )


# ----------------------------------------------------------------------------- a member


@router.get("/tenants/{tenant}/members/{member}/holdings")
def read_holdings(caller: TenantCaller, ctx: Context, member: MemberCode) -> HoldingsOut:
    """The member's EP and its value now, quota, SP, dividends, level and partner status."""
    self_or_operator(caller, member)
    with read_only(ctx.engine).connect() as conn:
        get_profile(conn, caller.tenant_id, member)
        return HoldingsOut.of(reads.holdings(conn, caller.tenant_id, member))


@router.get("/tenants/{tenant}/members/{member}/rewards")
def read_rewards(
    caller: TenantCaller, ctx: Context, member: MemberCode, page: Paging
) -> Page[HistoryOut]:
    """What the member was given, newest first: EP for their purchases and for referred ones,
    dividends, and what the pool paid for their points (sales and forced exits).  A page may
    be shorter than ``limit`` while ``next_cursor`` is set: follow it."""
    self_or_operator(caller, member)
    with read_only(ctx.engine).connect() as conn:
        get_profile(conn, caller.tenant_id, member)
        found = reads.reward_history(
            conn, caller.tenant_id, member, limit=page.limit, cursor=page.cursor
        )
    return Page(items=[HistoryOut.of(e) for e in found.items], next_cursor=found.next_cursor)


@router.get("/tenants/{tenant}/members/{member}/points/history")
def read_points_history(
    caller: TenantCaller, ctx: Context, member: MemberCode, page: Paging
) -> Page[PointsMoveOut]:
    """Every movement of the member's EP, newest first, with its cause and the price before
    and after it: issuance for their purchases and for referred ones, sales, exchanges,
    points bought, payments in EP, refund claw-backs and forced exits."""
    self_or_operator(caller, member)
    with read_only(ctx.engine).connect() as conn:
        get_profile(conn, caller.tenant_id, member)
        found = reads.points_history(
            conn, caller.tenant_id, member, limit=page.limit, cursor=page.cursor
        )
    return Page(
        items=[PointsMoveOut.of_move(m) for m in found.items], next_cursor=found.next_cursor
    )
