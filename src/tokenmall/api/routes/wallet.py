"""The SP wallet over HTTP: balance and history, conversions, withdrawals and their review.

A member reaches their own wallet with their token; the tenant's back end (operator key)
reaches every member's, e.g. to act for a user of its app.  Merchant keys have no business in
wallets (403).  Every request that moves value carries an ``Idempotency-Key`` header: the same
key again answers the first result (with ``Idempotent-Replayed: true``) and moves nothing; the
same key with other content is refused (409 ``idempotency_conflict``).
"""

from __future__ import annotations

import threading
from typing import Annotated, Literal

from fastapi import APIRouter, FastAPI, Header, Path, Query, Request, Response

from tokenmall.api.deps import AppContext, Caller, Context, OperatorCaller, Paging, TenantCaller
from tokenmall.api.errors import ERROR_RESPONSES, ApiError
from tokenmall.api.routes import API_PREFIX
from tokenmall.api.routes.orders import Orders
from tokenmall.api.schemas import Page
from tokenmall.api.schemas.wallet import (
    ActionOut,
    HistoryOut,
    PointsBody,
    ReviewBody,
    StableBody,
    WalletOut,
    WithdrawalCreate,
    WithdrawalOut,
)
from tokenmall.errors import NotFound
from tokenmall.payments.wechat_api import TRANSFER_NAME_REQUIRED_FROM
from tokenmall.service import reads, wallet
from tokenmall.service.members import get_profile
from tokenmall.service.orders import ProviderNotConfigured
from tokenmall.service.payouts import HubPayouts, SandboxPayouts
from tokenmall.service.wallet import PayoutProviders
from tokenmall.store.db import read_only

__all__ = [
    "payout_providers",
    "payout_providers_of",
    "router",
    "self_or_operator",
]

router = APIRouter(prefix=API_PREFIX, tags=["wallet"], responses=ERROR_RESPONSES)

MemberCode = Annotated[str, Path(max_length=64, description="The member's code.")]
WithdrawalId = Annotated[str, Path(max_length=40, description="The withdrawal's id (wd_...).")]
IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=64,
        pattern=r"^[!-~]+$",
        description="Your id of this request (1-64 printable ASCII, no spaces): a retry with "
        "the same key moves nothing again and answers the first result.",
    ),
]


# ----------------------------------------------------------------------------- plumbing


def self_or_operator(caller: Caller, member: str) -> None:
    """Operators reach every member; a member only themselves (others: as if absent)."""
    if caller.kind == "member":
        if caller.principal.member != member:
            raise NotFound(f"no member {member!r}")
    elif caller.kind not in ("admin", "operator"):
        raise ApiError(
            403, "forbidden", "this needs platform admin, operator or member credentials"
        )


_providers_lock = threading.Lock()


def payout_providers_of(app: FastAPI) -> PayoutProviders:
    """The app's payout providers (``app.state.payouts``, made once): through the orders
    service's payment hub when the app has one, so one sandbox gateway per tenant serves
    payments and payouts and every notification is recorded alike; else a plain sandbox."""
    state = app.state
    with _providers_lock:
        providers: PayoutProviders | None = getattr(state, "payouts", None)
        if providers is None:
            ctx: AppContext = state.tokenmall
            if getattr(state, "orders", None) is not None:
                providers = HubPayouts(ctx.ledger, lambda: state.orders)
            else:
                providers = SandboxPayouts(ctx.ledger, ctx.secret)
            state.payouts = providers
    return providers


def payout_providers(request: Request) -> PayoutProviders:
    return payout_providers_of(request.app)


def _wallet(ctx: Context, tenant_id: int, member: str) -> WalletOut:
    with read_only(ctx.engine).connect() as conn:
        return WalletOut.of(wallet.balance(conn, tenant_id, member))


def _action(
    ctx: Context, caller: Caller, member: str, result: wallet.ActionResult, response: Response
) -> ActionOut:
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return ActionOut(
        kind=result.kind,  # type: ignore[arg-type]  # one of the three routes below
        replayed=result.replayed,
        seq=result.seq,
        price=result.price,
        figures=result.figures,
        wallet=_wallet(ctx, caller.tenant_id, member),
    )


# ----------------------------------------------------------------------------- wallet


@router.get("/tenants/{tenant}/members/{member}/wallet")
def read_wallet(caller: TenantCaller, ctx: Context, member: MemberCode) -> WalletOut:
    """SP balance, SP on its way out in open withdrawals, and EP held."""
    self_or_operator(caller, member)
    return _wallet(ctx, caller.tenant_id, member)


@router.get("/tenants/{tenant}/members/{member}/wallet/history")
def wallet_history(
    caller: TenantCaller,
    ctx: Context,
    member: MemberCode,
    page: Paging,
    asset: Annotated[
        Literal["SP", "EP", "all"], Query(description="Which asset's movements (default SP).")
    ] = "SP",
) -> Page[HistoryOut]:
    """Every movement of the member's SP (or EP, or both), newest first, with its cause."""
    self_or_operator(caller, member)
    with read_only(ctx.engine).connect() as conn:
        get_profile(conn, caller.tenant_id, member)
        found = reads.member_history(
            conn,
            caller.tenant_id,
            member,
            asset=None if asset == "all" else asset,
            limit=page.limit,
            cursor=page.cursor,
        )
    return Page(items=[HistoryOut.of(e) for e in found.items], next_cursor=found.next_cursor)


@router.post("/tenants/{tenant}/members/{member}/wallet/sell")
def sell_points(
    *,
    caller: TenantCaller,
    ctx: Context,
    member: MemberCode,
    body: PointsBody,
    key: IdempotencyKey,
    response: Response,
) -> ActionOut:
    """Sell EP back to the pool (R3): the payout, after the sell fee, is credited as SP."""
    self_or_operator(caller, member)
    result = wallet.sell(ctx.ledger, caller.tenant_id, member, body.points, key)
    return _action(ctx, caller, member, result, response)


@router.post("/tenants/{tenant}/members/{member}/wallet/exchange")
def exchange_points(
    *,
    caller: TenantCaller,
    ctx: Context,
    member: MemberCode,
    body: PointsBody,
    key: IdempotencyKey,
    response: Response,
) -> ActionOut:
    """Exchange EP for SP at the current price (R5); the points go to the treasury."""
    self_or_operator(caller, member)
    result = wallet.exchange(ctx.ledger, caller.tenant_id, member, body.points, key)
    return _action(ctx, caller, member, result, response)


@router.post("/tenants/{tenant}/members/{member}/wallet/buy-points")
def buy_points(
    *,
    caller: TenantCaller,
    ctx: Context,
    member: MemberCode,
    body: StableBody,
    key: IdempotencyKey,
    response: Response,
) -> ActionOut:
    """Spend SP on EP from the treasury at the current price (R6), while it has points."""
    self_or_operator(caller, member)
    result = wallet.buy_points(ctx.ledger, caller.tenant_id, member, body.stable, key)
    return _action(ctx, caller, member, result, response)


# ----------------------------------------------------------------------------- withdrawals


@router.post(
    "/tenants/{tenant}/members/{member}/withdrawals",
    status_code=201,
    responses={200: {"model": WithdrawalOut, "description": "A replay of an earlier request"}},
)
def request_withdrawal(
    *,
    caller: TenantCaller,
    ctx: Context,
    orders: Orders,
    member: MemberCode,
    body: WithdrawalCreate,
    key: IdempotencyKey,
    response: Response,
) -> WithdrawalOut:
    """Ask to withdraw SP.  The amount leaves the wallet now and waits for the operator's
    review; a rejection or a failed payout returns it.  The tenant's ``withdraw_min`` and
    ``withdraw_fee_rate`` apply (fee = amount x rate, cut down to the fen).  A tenant that pays
    by WeChat transfer needs ``payee_name`` from 2,000 CNY paid out (422 without it); without
    WeChat Pay's outbound configuration ``payee_name`` is refused (409)."""
    self_or_operator(caller, member)
    payee_name, required_from = None, None
    with read_only(ctx.engine).connect() as conn:
        wechat = orders.hub.wechat_api(conn, caller.tenant_id)
    if wechat is not None:  # withdrawals are paid by WeChat transfer
        required_from = TRANSFER_NAME_REQUIRED_FROM
        if body.payee_name is not None:
            payee_name = wechat.encrypt(body.payee_name)
    elif body.payee_name is not None:
        raise ProviderNotConfigured(
            "payee_name goes to WeChat Pay transfers, which this tenant has not configured"
        )
    wd, created = wallet.request_withdrawal(
        ctx.ledger,
        caller.tenant_id,
        member,
        amount=body.amount,
        account=body.account,
        key=key,
        payee_name=payee_name,
        name_required_from=required_from,
    )
    if not created:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return WithdrawalOut.of(wd)


WithdrawalStatus = Literal["requested", "approved", "rejected", "paid", "failed", "cancelled"]
Order = Annotated[
    Literal["oldest", "newest"],
    Query(description="oldest first (the default, the review queue's order) or newest first"),
]


@router.get("/tenants/{tenant}/members/{member}/withdrawals")
def list_member_withdrawals(
    *,
    caller: TenantCaller,
    ctx: Context,
    member: MemberCode,
    page: Paging,
    status: WithdrawalStatus | None = None,
    order: Order = "oldest",
) -> Page[WithdrawalOut]:
    """The member's withdrawals, oldest first (``?order=newest``: newest first)."""
    self_or_operator(caller, member)
    with read_only(ctx.engine).connect() as conn:
        get_profile(conn, caller.tenant_id, member)
        found = wallet.list_withdrawals(
            conn,
            caller.tenant_id,
            member=member,
            status=status,
            limit=page.limit,
            cursor=page.cursor,
            newest_first=order == "newest",
        )
    return Page(items=[WithdrawalOut.of(w) for w in found.items], next_cursor=found.next_cursor)


@router.get("/tenants/{tenant}/withdrawals")
def list_withdrawals(
    *,
    caller: OperatorCaller,
    ctx: Context,
    page: Paging,
    status: WithdrawalStatus | None = None,
    member: Annotated[str | None, Query(max_length=64)] = None,
    order: Order = "oldest",
) -> Page[WithdrawalOut]:
    """Every withdrawal of the tenant, oldest first: ``?status=requested`` is the review queue
    (``?order=newest``: the latest first)."""
    with read_only(ctx.engine).connect() as conn:
        found = wallet.list_withdrawals(
            conn,
            caller.tenant_id,
            member=member,
            status=status,
            limit=page.limit,
            cursor=page.cursor,
            newest_first=order == "newest",
        )
    return Page(items=[WithdrawalOut.of(w) for w in found.items], next_cursor=found.next_cursor)


@router.get("/tenants/{tenant}/withdrawals/{withdrawal_id}")
def read_withdrawal(
    caller: TenantCaller, ctx: Context, withdrawal_id: WithdrawalId
) -> WithdrawalOut:
    """One withdrawal: operators see all, a member their own."""
    with read_only(ctx.engine).connect() as conn:
        wd = wallet.get_withdrawal(conn, caller.tenant_id, withdrawal_id)
    self_or_operator(caller, wd.member)
    return WithdrawalOut.of(wd)


@router.post("/tenants/{tenant}/withdrawals/{withdrawal_id}/approve")
def approve_withdrawal(
    caller: OperatorCaller,
    ctx: Context,
    request: Request,
    withdrawal_id: WithdrawalId,
    body: ReviewBody | None = None,
) -> WithdrawalOut:
    """Approve and pay out through the tenant's provider.  The answer shows the payout's
    state: ``paid`` or ``failed`` when the provider has answered, ``approved`` while it has not
    (the scheduler sends it again until it does)."""
    wallet.approve_withdrawal(
        ctx.ledger,
        caller.tenant_id,
        withdrawal_id,
        reviewer=caller.principal.actor,
        note=body.note if body else None,
    )
    providers = payout_providers(request)
    wd = wallet.send_payout(ctx.store, providers, caller.tenant_id, caller.tenant, withdrawal_id)
    return WithdrawalOut.of(wd)


@router.post("/tenants/{tenant}/withdrawals/{withdrawal_id}/reject")
def reject_withdrawal(
    caller: OperatorCaller,
    ctx: Context,
    withdrawal_id: WithdrawalId,
    body: ReviewBody | None = None,
) -> WithdrawalOut:
    """Reject a requested withdrawal: the whole amount (fee included) returns to the wallet."""
    wd = wallet.reject_withdrawal(
        ctx.ledger,
        caller.tenant_id,
        withdrawal_id,
        reviewer=caller.principal.actor,
        note=body.note if body else None,
    )
    return WithdrawalOut.of(wd)


@router.post("/tenants/{tenant}/withdrawals/{withdrawal_id}/cancel")
def cancel_withdrawal(
    caller: TenantCaller, ctx: Context, withdrawal_id: WithdrawalId
) -> WithdrawalOut:
    """The member takes back a withdrawal still waiting for review (``requested``): the whole
    amount, fee included, returns to the wallet.  A member cancels their own; an operator may
    cancel on a member's behalf.  Once reviewed it cannot be cancelled (409)."""
    if caller.kind not in ("admin", "operator", "member"):
        raise ApiError(
            403, "forbidden", "this needs platform admin, operator or member credentials"
        )
    member = caller.principal.member if caller.kind == "member" else None
    wd = wallet.cancel_withdrawal(
        ctx.ledger, caller.tenant_id, withdrawal_id, member=member, actor=caller.principal.actor
    )
    return WithdrawalOut.of(wd)
