"""Members: registered by the tenant's back end, read by it or by the member themselves."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response

from tokenmall.api.deps import (
    AppContext,
    Caller,
    Context,
    MemberCaller,
    OperatorCaller,
    Paging,
    TenantCaller,
)
from tokenmall.api.errors import ERROR_RESPONSES, ApiError
from tokenmall.api.routes import API_PREFIX
from tokenmall.api.schemas import (
    MemberCreate,
    MemberOut,
    MemberTokenCreate,
    MemberTokenOut,
    MemberUpdate,
    Page,
)
from tokenmall.api.schemas.members import MemberTaskIn, MemberTaskOut
from tokenmall.errors import NotFound
from tokenmall.service import credentials, members, tasks
from tokenmall.service.members import EMPTY_FIGURES, MemberProfile
from tokenmall.store.db import read_only

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["members"], responses=ERROR_RESPONSES)

MemberCode = Annotated[str, Path(max_length=64, description="The member's code.")]


def _with_figures(
    ctx: AppContext, tenant_id: int, profiles: list[MemberProfile]
) -> list[MemberOut]:
    # read after the profiles' connection is closed: on SQLite every transaction takes the
    # write lock (store.db), and the ledger opens its own
    figures = ctx.ledger.members(tenant_id, [p.code for p in profiles]) if profiles else {}
    return [MemberOut.of(p, figures.get(p.code, EMPTY_FIGURES)) for p in profiles]


def _self_or_operator(caller: Caller, member: str) -> None:
    """Operators reach every member; a member only themselves (others: as if absent)."""
    if caller.kind == "member":
        if caller.principal.member != member:
            raise NotFound(f"no member {member!r}")
    elif caller.kind not in ("admin", "operator"):
        raise ApiError(
            403, "forbidden", "this needs platform admin, operator or member credentials"
        )


@router.post("/tenants/{tenant}/members", status_code=201)
def create_member(caller: OperatorCaller, ctx: Context, body: MemberCreate) -> MemberOut:
    """Register a member (optionally referred by the owner of an invite code)."""
    with ctx.store.tenant_tx(caller.tenant_id, lock=False) as tx:
        profile = members.register(
            tx, body.code, display_name=body.display_name, invite_code=body.invite_code
        )
    return _with_figures(ctx, caller.tenant_id, [profile])[0]


@router.get("/tenants/{tenant}/members")
def list_members(caller: OperatorCaller, ctx: Context, page: Paging) -> Page[MemberOut]:
    """Registered members, in order of sign-up, with their ledger figures."""
    with read_only(ctx.engine).connect() as conn:
        found = members.list_profiles(conn, caller.tenant_id, limit=page.limit, cursor=page.cursor)
    return Page(
        items=_with_figures(ctx, caller.tenant_id, found.items), next_cursor=found.next_cursor
    )


@router.get("/tenants/{tenant}/members/{member}")
def read_member(caller: TenantCaller, ctx: Context, member: MemberCode) -> MemberOut:
    """A member's profile and ledger figures (points, SP, quota, spent, dividends)."""
    _self_or_operator(caller, member)
    with read_only(ctx.engine).connect() as conn:
        profile = members.get_profile(conn, caller.tenant_id, member)
    return _with_figures(ctx, caller.tenant_id, [profile])[0]


@router.patch("/tenants/{tenant}/members/{member}")
def update_member(
    caller: TenantCaller, ctx: Context, member: MemberCode, body: MemberUpdate
) -> MemberOut:
    """Change the display name; bind a referrer by invite code (once, if there is none)."""
    _self_or_operator(caller, member)
    with ctx.store.tenant_tx(caller.tenant_id, lock=False) as tx:
        conn = tx.conn
        profile = members.get_profile(conn, caller.tenant_id, member)
        if "display_name" in body.model_fields_set:
            profile = members.update_display_name(conn, caller.tenant_id, member, body.display_name)
        if body.referrer_invite_code is not None:
            profile = members.bind_referrer(
                conn, caller.tenant_id, member, body.referrer_invite_code
            )
    return _with_figures(ctx, caller.tenant_id, [profile])[0]


@router.post("/tenants/{tenant}/members/{member}/tokens", status_code=201)
def issue_member_token(
    caller: OperatorCaller, ctx: Context, member: MemberCode, body: MemberTokenCreate
) -> MemberTokenOut:
    """A signed access token for the member, for the tenant's app to hand to its user."""
    ttl = body.ttl_seconds or ctx.settings.member_token_ttl_seconds
    if ttl > ctx.settings.member_token_max_ttl_seconds:
        raise ApiError(
            422,
            "invalid_command",
            f"ttl_seconds may be at most {ctx.settings.member_token_max_ttl_seconds}",
        )
    with read_only(ctx.engine).connect() as conn:
        members.get_profile(conn, caller.tenant_id, member)
    token, expires_at = credentials.issue_member_token(
        ctx.secret, caller.tenant_id, member, ttl_seconds=ttl
    )
    return MemberTokenOut(
        token=token, member=member, expires_at=datetime.fromtimestamp(expires_at, tz=UTC)
    )


@router.post(
    "/tenants/{tenant}/members/{member}/tasks",
    status_code=201,
    responses={200: {"model": MemberTaskOut, "description": "A replay: the first report."}},
)
def report_task(
    caller: OperatorCaller,
    ctx: Context,
    member: MemberCode,
    body: MemberTaskIn,
    response: Response,
) -> MemberTaskOut:
    """The tenant's back end reports a task the member did (it verified the invitee, the
    sign-in, the share): chain21's held help money and a step of each locked activity fund
    are released.  Idempotent by ``key``: the same key again answers 200 with the first
    report's record (``replayed``) and releases nothing; another task kind under a used key
    is 409 ``idempotency_conflict``.  Members cannot report their own tasks."""
    done = tasks.report(
        ctx.store, caller.tenant_id, member=member, task=body.task, key=body.key, now=time.time()
    )
    if done.replayed:
        response.status_code = 200
    return MemberTaskOut.of(done)


@router.get("/tenants/{tenant}/members/{member}/tasks")
def list_member_tasks(
    caller: TenantCaller, ctx: Context, member: MemberCode, page: Paging
) -> Page[MemberTaskOut]:
    """The member's tasks in the order reported, with what each released (the member
    themselves, or an operator)."""
    _self_or_operator(caller, member)
    with read_only(ctx.engine).connect() as conn:
        members.get_profile(conn, caller.tenant_id, member)
        found = tasks.list_tasks(
            conn, caller.tenant_id, member, limit=page.limit, cursor=page.cursor
        )
    return Page(items=[MemberTaskOut.of(t) for t in found.items], next_cursor=found.next_cursor)


@router.get("/tenants/{tenant}/me")
def read_me(caller: MemberCaller, ctx: Context) -> MemberOut:
    """The calling member's own profile and figures."""
    assert caller.principal.member is not None
    with read_only(ctx.engine).connect() as conn:
        profile = members.get_profile(conn, caller.tenant_id, caller.principal.member)
    return _with_figures(ctx, caller.tenant_id, [profile])[0]
