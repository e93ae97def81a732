"""Starting a payment, and applying one once the money is there.

A payment names how much of the order the member pays from the SP wallet (``sp``) and with EP
(``points_value``, a CNY value: R4); the rest is CNY through a provider.  Without a CNY part the
wallet pays at once; otherwise an intent is opened at the provider and the order is paid when
its notification arrives (:mod:`.notifications`), every part moving then, atomically.

EP redemption: the points are priced when the payment applies (under the tenant's lock, the
fewest points whose sell payout is exactly that value), because the CNY part is fixed when the
intent is created and the price moves before the notification arrives; priced any earlier, the
parts would not add up to the total.  No rule of the engine lowers the price (the property
tests check it after every step), so the member never needs more points than were quoted.
EP-paid value earns no reward at settlement (it came from the pool).

Provider calls happen outside transactions: the intent is opened first (idempotent on
``<ref>-<attempt>``; one whose row is never written is never shown to a customer, so never
paid), the WeChat prepay after the row commits.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from tokenmall.domain import pricing
from tokenmall.domain.economy import Command, Join, Pay
from tokenmall.domain.params import TenantParams
from tokenmall.errors import InsufficientBalance, InvalidCommand, NotFound
from tokenmall.money import (
    CNY_PLACES,
    EP_PLACES,
    ZERO,
    cny_of_fen,
    fen_of,
    from_atoms,
)
from tokenmall.service import members
from tokenmall.service.ledger import Outcome
from tokenmall.service.orders import queries, transitions
from tokenmall.service.orders import statements as q
from tokenmall.service.orders.context import OrderContext
from tokenmall.service.orders.lifecycle import settle_command
from tokenmall.service.orders.models import OrderStateError, Payment, payment_of
from tokenmall.service.orders.providers import WALLET
from tokenmall.service.reads import tenant_params
from tokenmall.service.uow import TenantTx
from tokenmall.store import schema as s
from tokenmall.store.rows import insert_row

_EP_EXP = Decimal(1).scaleb(-EP_PLACES)
_FEN_PER_ATOM = 10 ** (CNY_PLACES - 2)


def start_payment(
    ctx: OrderContext,
    tenant_id: int,
    tenant: str,
    ref: str,
    *,
    provider: str,
    sp: Decimal,
    points_value: Decimal,
    member: str | None,
    payer: str | None,
) -> Payment:
    """See :meth:`tokenmall.service.orders.OrderService.start_payment`."""
    if payer is not None and not ctx.providers.places_payer(provider):
        raise InvalidCommand("payer is a WeChat openid: it goes with provider wechat")
    pay, expires_at = _open_payment(
        ctx, tenant_id, tenant, ref, provider, sp, points_value, member, payer
    )
    if payer is None or pay.status != "requires_payment" or pay.cny <= 0:
        return pay
    with ctx.store.read() as conn:
        params = ctx.providers.prepay(
            conn,
            tenant_id,
            out_trade_no=pay.provider_order_id,
            amount=pay.cny,
            description=f"{tenant} order {ref}"[:127],
            payer=payer,
            expires_at=datetime.fromtimestamp(expires_at, UTC),
        )
    return replace(pay, pay_params=params)


def _being_confirmed(ref: str) -> OrderStateError:
    return OrderStateError(
        f"order {ref!r} is past its payment deadline; its WeChat payment is being confirmed"
    )


def _open_payment(  # noqa: PLR0917 - one caller, start_payment
    ctx: OrderContext,
    tenant_id: int,
    tenant: str,
    ref: str,
    provider: str,
    sp: Decimal,
    points_value: Decimal,
    member: str | None,
    payer: str | None,
) -> tuple[Payment, float]:
    """:func:`start_payment` up to the provider call: the payment and the order's expiry."""
    for name, v in (("sp", sp), ("points_value", points_value)):
        if not v.is_finite() or v < 0:
            raise InvalidCommand(f"{name} must be a non-negative amount")
    ctx.providers.check_startable(provider)
    sp_fen, ep_fen = fen_of(sp), fen_of(points_value)
    now = ctx.clock()
    waiting: Any = None
    # The checks only read (the row is checked again, locked, when the payment is
    # inserted), so they take no writer lock; only an order found overdue is written.
    with ctx.store.read() as conn:
        row = queries.order_row(conn, tenant_id, ref)
        if member is not None and row.member != member:
            raise NotFound(f"no order {ref!r}")
        overdue = row.status == "pending_payment" and row.expires_at <= now
        wallet_only = row.status == "pending_payment" and sp_fen + ep_fen >= row.total_fen
        if not overdue and not wallet_only:
            if row.status != "pending_payment":
                raise OrderStateError(f"order {ref!r} is {row.status}, not waiting for payment")
            cny_fen = row.total_fen - sp_fen - ep_fen
            if sp_fen:
                check_sp(conn, tenant_id, row, sp_fen)
            if ep_fen:
                _check_points(ctx, conn, tenant_id, row.member, ep_fen)
            ctx.providers.check_usable(conn, tenant_id, provider, payer=payer)
            # The last attempt before the waiting one, in this order: under READ COMMITTED
            # (PostgreSQL) each statement sees its own moment, and read the other way a
            # concurrent start committing in between looked like "none waiting, last
            # attempt 1", so a second attempt was opened.  Read this way, an attempt
            # committed in between is found waiting, or ours collides with it on insert.
            last = conn.execute(q.LAST_ATTEMPT, {"t": tenant_id, "id": row.id}).scalar()
            waiting = conn.execute(
                q.WAITING,
                {"t": tenant_id, "id": row.id, "provider": provider, "sp": sp_fen, "cny": cny_fen},
            ).first()
    if waiting is not None:
        if not ctx.providers.intent_alive(tenant, provider, waiting.intent_id):
            waiting = _reopen(ctx, tenant_id, tenant, ref, waiting)
        return payment_of(waiting, ref, row.total_fen), row.expires_at
    if wallet_only:
        if sp_fen + ep_fen > row.total_fen:
            raise InvalidCommand(
                f"sp and points_value ({cny_of_fen(sp_fen + ep_fen)}) are more than the "
                f"order's total {cny_of_fen(row.total_fen)}"
            )
        return _pay_from_wallet(ctx, tenant_id, ref, sp_fen), row.expires_at
    if overdue:
        with ctx.store.tenant_tx(tenant_id, lock=False) as tx:
            row = queries.order_row(tx.conn, tenant_id, ref, lock=True)
            row = transitions.expire_if_due(tx, row, now)
        if row.status == "pending_payment":
            raise _being_confirmed(ref)
        raise OrderStateError(f"order {ref!r} is {row.status}, not waiting for payment")
    attempt = int(last or 0) + 1
    provider_order_id = f"{ref}-{attempt}"
    # The intent first, outside any transaction, then the row with its id: one durable
    # commit instead of two.
    intent_id = ctx.providers.open_intent(
        tenant, provider, provider_order_id, cny_of_fen(cny_fen), ref
    )
    try:
        with ctx.store.tenant_tx(tenant_id, lock=False) as tx:
            row = queries.order_row(tx.conn, tenant_id, ref, lock=True)
            if row.status != "pending_payment":
                raise OrderStateError(f"order {ref!r} is {row.status}, not waiting for payment")
            pay = new_payment(
                tx.conn, tenant_id, row, provider=provider, cny_fen=cny_fen, sp_fen=sp_fen,
                now=now, attempt=attempt, intent_id=intent_id,
            )  # fmt: skip
    except IntegrityError:
        # the same attempt started concurrently (same split): answer with that one
        py = s.payments.c
        with ctx.store.read() as conn:
            pay = conn.execute(
                select(s.payments).where(
                    py.tenant_id == tenant_id,
                    py.provider == provider,
                    py.provider_order_id == provider_order_id,
                    py.cny_fen == cny_fen,
                    py.sp_fen == sp_fen,
                )
            ).first()
        if pay is None:
            raise
    return payment_of(pay, ref, row.total_fen), row.expires_at


def _reopen(ctx: OrderContext, tenant_id: int, tenant: str, ref: str, waiting: Any) -> Any:
    """The waiting attempt with a live intent in place of one its provider forgot (a
    sandbox kept in one process's memory, restarted since): handing the dead one back would
    leave the customer an intent nobody can pay.  Same attempt, same provider order id."""
    intent_id = ctx.providers.open_intent(
        tenant, waiting.provider, waiting.provider_order_id, cny_of_fen(waiting.cny_fen), ref
    )
    py = s.payments.c
    with ctx.store.tenant_tx(tenant_id, lock=False) as tx:
        tx.conn.execute(
            update(s.payments)
            .where(
                py.tenant_id == tenant_id,
                py.id == waiting.id,
                py.status == "requires_payment",
                py.intent_id == waiting.intent_id,
            )
            .values(intent_id=intent_id)
        )
        return tx.conn.execute(q.PAYMENT_BY_ID, {"t": tenant_id, "id": waiting.id}).one()


def points_for(price: tuple[Decimal, Decimal], params: TenantParams, value_fen: int) -> Decimal:
    """The fewest EP that pay exactly ``value_fen`` of goods at ``price`` (R4)."""
    num, den = price
    return pricing.points_worth(cny_of_fen(value_fen), num, den, params.sell_fee)


def _check_points(
    ctx: OrderContext, conn: Connection, tenant_id: int, member: str, ep_fen: int
) -> None:
    """Advisory (a clear early answer): the points are priced and taken when it applies."""
    params = tenant_params(conn, tenant_id)
    needed = points_for(ctx.ledger.price_in(conn, tenant_id, params), params, ep_fen)
    m = s.members.c
    held = conn.execute(select(m.ep).where(m.tenant_id == tenant_id, m.code == member)).scalar()
    have = from_atoms(int(held or 0), EP_PLACES)
    if have < needed:
        raise InsufficientBalance(
            f"member {member!r} holds {have} EP; {cny_of_fen(ep_fen)} CNY of goods needs {needed}"
        )


def check_sp(conn: Connection, tenant_id: int, row: Any, sp_fen: int) -> None:
    """Every merchant of the order accepts SP, and the wallet holds it (advisory: the ledger
    checks again when the payment applies)."""
    ln, mc = s.order_lines.c, s.merchants.c
    refusing = conn.execute(
        select(mc.code)
        .select_from(
            s.order_lines.join(
                s.merchants, (mc.tenant_id == ln.tenant_id) & (mc.id == ln.merchant_id)
            )
        )
        .where(ln.tenant_id == tenant_id, ln.order_id == row.id, mc.accepts_sp.is_(False))
    ).first()
    if refusing is not None:
        raise InvalidCommand(f"merchant {refusing.code!r} does not accept SP")
    m = s.members.c
    held = conn.execute(select(m.sp).where(m.tenant_id == tenant_id, m.code == row.member)).scalar()
    if int(held or 0) < sp_fen * _FEN_PER_ATOM:
        have = from_atoms(int(held or 0), CNY_PLACES)
        raise InsufficientBalance(
            f"member {row.member!r} holds {have} SP, {cny_of_fen(sp_fen)} asked"
        )


def new_payment(
    conn: Connection,
    tenant_id: int,
    row: Any,
    *,
    provider: str,
    cny_fen: int,
    sp_fen: int,
    now: float,
    attempt: int | None = None,
    intent_id: str | None = None,
) -> Any:
    if attempt is None:
        last = conn.execute(q.LAST_ATTEMPT, {"t": tenant_id, "id": row.id}).scalar()
        attempt = int(last or 0) + 1
    pk = insert_row(
        conn,
        s.payments,
        {
            "tenant_id": tenant_id,
            "order_id": row.id,
            "attempt": attempt,
            "provider": provider,
            "provider_order_id": f"{row.ref}-{attempt}",
            "intent_id": intent_id,
            "cny_fen": cny_fen,
            "sp_fen": sp_fen,
            "status": "requires_payment",
            "refund_status": "none",
            "created_at": now,
            "updated_at": now,
        },
    ).inserted_primary_key
    assert pk is not None
    return conn.execute(q.PAYMENT_BY_ID, {"t": tenant_id, "id": int(pk[0])}).one()


def _pay_from_wallet(ctx: OrderContext, tenant_id: int, ref: str, sp_fen: int) -> Payment:
    now = ctx.clock()
    with ctx.store.tenant_tx(tenant_id) as tx:
        row = queries.order_row(tx.conn, tenant_id, ref, lock=True)
        row = transitions.expire_if_due(tx, row, now)
        if row.status != "pending_payment":
            raise OrderStateError(f"order {ref!r} is {row.status}, not waiting for payment")
        if row.expires_at <= now:  # kept open past its deadline for a provider's payment
            raise _being_confirmed(ref)
        if sp_fen:
            check_sp(tx.conn, tenant_id, row, sp_fen)
        pay = new_payment(
            tx.conn, tenant_id, row, provider=WALLET, cny_fen=0, sp_fen=sp_fen, now=now
        )
        refused = apply_payment(tx, row, pay, now)
        if refused is not None:
            refused.raise_if_rejected()
        paid = tx.conn.execute(q.PAYMENT_BY_ID, {"t": tenant_id, "id": pay.id}).one()
        return payment_of(paid, ref, row.total_fen)


def apply_payment(tx: TenantTx, row: Any, pay: Any, now: float) -> Outcome | None:
    """Pay (and, with settle_days 0, Settle) in the ledger; the order becomes paid.

    Runs under the tenant lock with the order pending.  Returns the ledger's refusal (the
    SP is no longer there, say) with nothing changed, or None when the order is paid.
    """
    conn, tenant_id = tx.conn, tx.tenant_id
    params = tx.params
    items: list[tuple[str, Command]] = []
    referrer = members.get_profile(conn, tenant_id, row.member).referrer
    if referrer is not None and members.ledger_referrer(conn, tenant_id, row.member) is None:
        # the ledger learns the referral link before the first payment that rewards it
        items.append((f"join:{row.member}:{referrer}", Join(row.member, referrer)))
    ep_fen = row.total_fen - pay.cny_fen - pay.sp_fen
    try:
        points = points_for(tx.price_ratio(), params, ep_fen) if ep_fen else ZERO
    except InvalidCommand as exc:
        return Outcome(f"pay:{row.ref}", "rejected", error_code=exc.code, error=str(exc))
    pay_cmd = Pay(
        row.ref, row.member, cny=cny_of_fen(pay.cny_fen), sp=cny_of_fen(pay.sp_fen), points=points
    )
    items.append((f"pay:{row.ref}", pay_cmd))
    settle_now = params.settle_days == 0 and row.hold is None  # a held place waits
    if settle_now:
        rewarded = pay.cny_fen + pay.sp_fen
        items.append((f"settle:{row.ref}", settle_command(conn, tenant_id, row, params, rewarded)))
    outcomes = tx.apply(items)
    paid = outcomes[-2] if settle_now else outcomes[-1]
    if paid.status == "rejected":
        return paid
    settled = settle_now and outcomes[-1].status != "rejected"
    error = (outcomes[-1].error or "refused") if settle_now and not settled else None
    transitions.mark_paid(tx, row, pay, now, settled=settled, settle_error=error)
    return None
