"""An order's life outside its payment and refunds: create, read, cancel, deliver, settle,
and the scheduler's jobs (expire unpaid orders, settle those whose return window ended).

Stock is reserved by the catalog's conditional update in the transaction that inserts the
order, SKUs in ascending id order (two multi-line orders never wait on each other in a cycle),
so stock is never oversold; expiry and cancellation give it back in the transaction that moves
the order out of ``pending_payment`` (:func:`.transitions.close_unpaid`), so at most once.
Creating, cancelling and expiring move no value, so they never take the tenant's ledger lock.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, exists, insert, select
from sqlalchemy.exc import IntegrityError

from tokenmall.domain.economy import Settle
from tokenmall.domain.params import TenantParams
from tokenmall.errors import IdempotencyConflict, InvalidCommand, NotFound, UnknownMember
from tokenmall.money import CNY_PLACES, ZERO, cny_of_fen, fen_of, mul, ratio_floor
from tokenmall.service import catalog, members
from tokenmall.service.errors import OffShelf, OutOfStock
from tokenmall.service.orders import queries, shipping, transitions
from tokenmall.service.orders import statements as q
from tokenmall.service.orders.context import OrderContext
from tokenmall.service.orders.models import (
    JOB_CHUNK,
    MAX_LINES,
    MAX_ORDER_TOTAL,
    MAX_QUANTITY,
    PAYMENT_GRACE,
    Order,
    OrderStateError,
    SettleReport,
    ShippingAddress,
    check_ref,
)
from tokenmall.service.orders.providers import HELD_PAST_DEADLINE
from tokenmall.service.reads import tenant_params
from tokenmall.service.uow import Store, as_store
from tokenmall.store import schema as s
from tokenmall.store.rows import insert_row

_CNY_EXP = Decimal(1).scaleb(-CNY_PLACES)


def create_order(
    ctx: OrderContext,
    tenant_id: int,
    *,
    member: str,
    lines: Sequence[tuple[int, int]],
    client_ref: str | None = None,
    address: ShippingAddress | None = None,
) -> Order:
    """An order of ``lines`` ((SKU id, quantity), ...) for ``member``, stock reserved, going
    to ``address`` (checked; stored with the order).

    With ``client_ref`` creating is safe to retry: the same id and the same content return
    the first order, the same id with other content is refused (409).
    """
    members.check_member_code(member)
    if address is not None:
        address = shipping.check_address(address)
    if client_ref is not None:
        check_ref(client_ref, "client_ref")
    if not 1 <= len(lines) <= MAX_LINES:
        raise InvalidCommand(f"an order has 1 to {MAX_LINES} lines")
    if len({sku for sku, _ in lines}) != len(lines):
        raise InvalidCommand("each SKU appears on one line only (add up the quantities)")
    for _, qty in lines:
        if isinstance(qty, bool) or not 1 <= qty <= MAX_QUANTITY:
            raise InvalidCommand(f"quantity must be an integer from 1 to {MAX_QUANTITY}")
    content: dict[str, Any] = {"member": member, "lines": [list(x) for x in lines]}
    if address is not None:  # absent, the digest of an order without one is as before
        content["address"] = asdict(address)
    digest = hashlib.sha256(json.dumps(content).encode()).hexdigest()
    try:
        with ctx.store.tenant_tx(tenant_id, lock=False) as tx:
            if client_ref is not None:
                found = _by_client_ref(tx.conn, tenant_id, client_ref, digest)
                if found is not None:
                    return found
            order = _insert_order(ctx, tx.conn, tenant_id, member, lines, client_ref, digest)
            if address is not None:
                shipping.save_address(tx.conn, tenant_id, order.id, address)
                order = replace(order, shipping_address=address)
            return order
    except IntegrityError:
        if client_ref is None:
            raise
        # created concurrently with the same client_ref: answer as for a retry
        with ctx.store.read() as conn:
            found = _by_client_ref(conn, tenant_id, client_ref, digest)
        if found is None:
            raise
        return found


def _by_client_ref(conn: Connection, tenant_id: int, client_ref: str, digest: str) -> Order | None:
    o = s.orders.c
    row = conn.execute(
        select(s.orders).where(o.tenant_id == tenant_id, o.client_ref == client_ref)
    ).first()
    if row is None:
        return None
    if row.request_hash != digest:
        raise IdempotencyConflict(
            f"client_ref {client_ref!r} was used for an order with other content"
        )
    return queries.load(conn, tenant_id, row)


def _insert_order(  # noqa: PLR0917 - the one caller passes them by position, named above
    ctx: OrderContext,
    conn: Connection,
    tenant_id: int,
    member: str,
    lines: Sequence[tuple[int, int]],
    client_ref: str | None,
    digest: str,
    *,
    unit_price_fen: int | None = None,
    hold: str | None = None,
) -> Order:
    """Insert the order (stock reserved).  ``unit_price_fen``: a price other than the SKU's
    for a one-line order (a group price); ``hold``: the order is paid into escrow but may
    not deliver or settle until the hold is released (:mod:`.holds`)."""
    try:
        members.get_profile(conn, tenant_id, member)
    except NotFound:
        raise UnknownMember(f"no member {member!r}") from None
    now = ctx.clock()
    params = tenant_params(conn, tenant_id)
    # Reserve first, in SKU order: in PostgreSQL this locks each SKU row, so the prices
    # read below are the ones the reservation saw.
    for sku_id, qty in sorted(lines):
        if not catalog.reserve_stock(conn, tenant_id, sku_id, qty):
            try:
                catalog.get_sku(conn, tenant_id, sku_id)
            except NotFound:
                raise InvalidCommand(f"no SKU {sku_id}") from None
            raise OutOfStock(f"SKU {sku_id} has fewer than {qty} units left")
    info = {
        r.id: r for r in conn.execute(q.SKU_INFO, {"t": tenant_id, "ids": [k for k, _ in lines]})
    }
    off = sorted({(r.product_id, r.product_name) for r in info.values() if not r.on_shelf})
    if off:  # the reservation above rolls back with this error
        names = ", ".join(f"{pid} ({name})" for pid, name in off)
        raise OffShelf(f"product {names} is off the shelf and cannot be ordered")
    price = {sku: info[sku].price_fen for sku, _ in lines}
    if unit_price_fen is not None:
        if len(lines) != 1:
            raise InvalidCommand("a price other than the SKU's is for a one-line order")
        price[lines[0][0]] = unit_price_fen
    total_fen = sum(price[sku] * qty for sku, qty in lines)
    order_id = _insert_row(
        conn, tenant_id, member, total_fen, client_ref, digest, hold=hold, now=now, params=params
    )
    conn.execute(
        insert(s.order_lines),
        [
            {
                "tenant_id": tenant_id,
                "order_id": order_id,
                "line_no": n,
                "sku_id": sku,
                "product_id": info[sku].product_id,
                "merchant_id": info[sku].merchant_id,
                "name": f"{info[sku].product_name} / {info[sku].name}",
                "quantity": qty,
                "unit_price_fen": price[sku],
                "pool_unit_fen": info[sku].pool_amount_fen,
                "fund_unit_fen": info[sku].fund_amount_fen,
            }
            for n, (sku, qty) in enumerate(lines, start=1)
        ],
    )
    # a new order has no payment or refund yet: no need to query for them
    return queries.load(conn, tenant_id, queries.order_by_id(conn, tenant_id, order_id), full=False)


def _insert_row(  # noqa: PLR0917 - the two callers above and below, named
    conn: Connection,
    tenant_id: int,
    member: str,
    total_fen: int,
    client_ref: str | None,
    digest: str,
    *,
    hold: str | None,
    now: float,
    params: TenantParams,
) -> int:
    """The ``orders`` row of a new unpaid order (its lines are the caller's); its id."""
    if total_fen > fen_of(MAX_ORDER_TOTAL):
        raise InvalidCommand(f"an order may total at most {MAX_ORDER_TOTAL} CNY")
    pk = insert_row(
        conn,
        s.orders,
        {
            "tenant_id": tenant_id,
            "ref": "o" + secrets.token_hex(8),
            "client_ref": client_ref,
            "request_hash": digest,
            "member": member,
            "status": "pending_payment",
            "total_fen": total_fen,
            "refunded_fen": 0,
            "created_at": now,
            "expires_at": now + float(params.order_ttl_minutes) * 60,
            "hold": hold,
        },
    ).inserted_primary_key
    assert pk is not None
    return int(pk[0])


def insert_unlined(
    ctx: OrderContext, conn: Connection, tenant_id: int, member: str, *, total_fen: int, hold: str
) -> Order:
    """An order of no catalog goods (no lines, so no stock reserved, released or restocked):
    it only collects ``total_fen`` into escrow for ``hold``, the feature that sells what it
    stands for (an NFG listing bought with CNY) and settles it itself."""
    try:
        members.get_profile(conn, tenant_id, member)
    except NotFound:
        raise UnknownMember(f"no member {member!r}") from None
    if total_fen <= 0:
        raise InvalidCommand("an order must cost something")
    digest = hashlib.sha256(f"{hold}:{member}:{total_fen}".encode()).hexdigest()
    order_id = _insert_row(
        conn,
        tenant_id,
        member,
        total_fen,
        None,
        digest,
        hold=hold,
        now=ctx.clock(),
        params=tenant_params(conn, tenant_id),
    )
    return queries.load(conn, tenant_id, queries.order_by_id(conn, tenant_id, order_id), full=False)


def get_order(ctx: OrderContext, tenant_id: int, ref: str) -> Order:
    """The order with its lines, payments and refunds.  A read never writes: an unpaid order
    past its deadline (and not held for a provider's payment) is shown ``expired`` as the
    next writer or the expiry job will store it, with its stock given back by that writer."""
    with ctx.store.read() as conn:
        row = queries.order_row(conn, tenant_id, ref)
        order = queries.load(conn, tenant_id, row)
        now = ctx.clock()
        overdue = row.status == "pending_payment" and row.expires_at <= now
        if overdue and not queries.awaits_provider(conn, tenant_id, row, now):
            order = replace(order, status="expired", closed_at=now, close_reason="not paid in time")
    return order


def cancel_order(
    ctx: OrderContext, tenant_id: int, ref: str, *, reason: str | None = None
) -> Order:
    """An unpaid order is cancelled and its stock released; a cancelled one is returned."""
    now = ctx.clock()
    with ctx.store.tenant_tx(tenant_id, lock=False) as tx:
        row = queries.order_row(tx.conn, tenant_id, ref, lock=True)
        row = transitions.expire_if_due(tx, row, now)
        if row.status == "pending_payment":
            transitions.close_unpaid(
                tx, [row.id], status="cancelled", reason=reason or "cancelled", now=now
            )
            row = queries.order_by_id(tx.conn, tenant_id, row.id)
        elif row.status != "cancelled":
            raise OrderStateError(f"order {ref!r} is {row.status}; only unpaid orders cancel")
        return queries.load(tx.conn, tenant_id, row)


def confirm_delivery(ctx: OrderContext, tenant_id: int, ref: str) -> Order:
    """The buyer has the goods: the return window (settle_days) starts now."""
    now = ctx.clock()
    with ctx.store.tenant_tx(tenant_id, lock=False) as tx:
        row = queries.order_row(tx.conn, tenant_id, ref, lock=True)
        _check_not_held(row)
        if row.status == "paid" or (
            row.status in ("settled", "refunded") and row.paid_at is not None
        ):
            days = tenant_params(tx.conn, tenant_id).settle_days
            transitions.mark_delivered(tx, row, now, settle_days=days)
        elif row.status != "delivered":
            raise OrderStateError(f"order {ref!r} is {row.status}; only paid orders deliver")
        return queries.load(tx.conn, tenant_id, queries.order_by_id(tx.conn, tenant_id, row.id))


def _check_not_held(row: Any) -> None:
    if row.hold is not None and row.status in ("paid", "delivered"):
        raise OrderStateError(
            f"order {row.ref!r} is a {row.hold} place in escrow: it delivers and settles "
            "once its group confirms it"
        )


def settle_command(
    conn: Connection,
    tenant_id: int,
    row: Any,
    params: TenantParams,
    rewarded_fen: int | None = None,
) -> Settle:
    """Settle with the products' per-unit pool/dividend amounts, if any line has them.

    A line without an override contributes its amount times the tenant's rate, so a mixed
    order is priced line by line.  The sums are scaled (cut down) to the part of the order
    that earns rewards, as the ledger scales its rate-based amounts: the CNY and SP paid
    (``rewarded_fen``; EP redeemed earn nothing) and what is left after refunds.
    """
    rows = queries.lines(conn, tenant_id, row.id)
    has_pool = any(ln.pool_unit_fen is not None for ln in rows)
    has_fund = any(ln.fund_unit_fen is not None for ln in rows)
    if not has_pool and not has_fund:
        return Settle(row.ref)
    total = Decimal(row.total_fen)
    left = total - Decimal(row.refunded_fen)
    if rewarded_fen is None:
        rewarded_fen = int(row.paid_cny_fen or 0) + int(row.paid_sp_fen or 0)
    share = mul(left, Decimal(rewarded_fen))

    def summed(unit_col: str, rate: Decimal) -> Decimal:
        acc = ZERO
        for ln in rows:
            unit = getattr(ln, unit_col)
            if unit is not None:
                acc += cny_of_fen(unit) * ln.quantity
            else:
                acc += mul(cny_of_fen(ln.unit_price_fen) * ln.quantity, rate)
        return ratio_floor(mul(acc, share), mul(total, total), _CNY_EXP)

    return Settle(
        row.ref,
        pool_amount=summed("pool_unit_fen", params.pool_rate) if has_pool else None,
        fund_amount=summed("fund_unit_fen", params.dividend_rate) if has_fund else None,
    )


def settle_order(ctx: OrderContext, tenant_id: int, ref: str) -> Order:
    """Settle now, without waiting for the return window (the operator's decision)."""
    now = ctx.clock()
    with ctx.store.tenant_tx(tenant_id) as tx:
        row = queries.order_row(tx.conn, tenant_id, ref, lock=True)
        _check_not_held(row)
        if row.status not in ("paid", "delivered"):
            if row.status == "settled":
                return queries.load(tx.conn, tenant_id, row)
            raise OrderStateError(f"order {ref!r} is {row.status}; it cannot settle")
        tx.apply_one(f"settle:{row.ref}", settle_command(tx.conn, tenant_id, row, tx.params))
        transitions.mark_settled(tx, row, now)
        return queries.load(tx.conn, tenant_id, queries.order_by_id(tx.conn, tenant_id, row.id))


# ----------------------------------------------------------------------------- jobs


def _ts(now: float | datetime | None) -> float:
    if now is None:
        return time.time()
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("now must be an aware datetime")
        return now.timestamp()
    return float(now)


def _tenant_ids(store: Store, tenant_id: int | None) -> list[int]:
    if tenant_id is not None:
        return [tenant_id]
    with store.read() as conn:
        return [
            int(t) for t in conn.execute(select(s.tenants.c.id).order_by(s.tenants.c.id)).scalars()
        ]


def expire_orders(
    db: Engine | Store, now: float | datetime | None = None, *, tenant_id: int | None = None
) -> int:
    """Expire every unpaid order past ``expires_at`` and release its stock; the count.

    An order with an open payment at a provider that takes payments on its own waits
    ``PAYMENT_GRACE`` longer (its payment may have been made in time; the scheduler's
    reconciliation finds out first).

    Safe to run from several processes at once and next to the writers' expiry: each order
    moves out of ``pending_payment`` by a conditional update, so its stock comes back once.
    """
    at, store = _ts(now), as_store(db)
    o, py = s.orders.c, s.payments.c
    awaiting = (
        select(py.id)
        .where(
            py.tenant_id == o.tenant_id,
            py.order_id == o.id,
            py.provider.in_(HELD_PAST_DEADLINE),
            py.status == "requires_payment",
        )
        .exists()
    )
    count = 0
    for tid in _tenant_ids(store, tenant_id):
        after = 0
        while True:
            with store.tenant_tx(tid, lock=False) as tx:
                ids = list(
                    tx.conn.execute(
                        select(o.id)
                        .where(
                            o.tenant_id == tid,
                            o.status == "pending_payment",
                            o.expires_at <= at,
                            o.id > after,
                            (o.expires_at <= at - PAYMENT_GRACE) | ~awaiting,
                        )
                        .order_by(o.id)
                        .limit(JOB_CHUNK)
                    ).scalars()
                )
                closed = transitions.close_unpaid(
                    tx, ids, status="expired", reason="not paid in time", now=at
                )
                count += len(closed)
            if len(ids) < JOB_CHUNK:
                break
            after = ids[-1]
    return count


def settle_due(
    db: Engine | Store, now: float | datetime | None = None, *, tenant_id: int | None = None
) -> SettleReport:
    """Settle every delivered order whose return window ended by ``now`` (R11).

    One ledger transaction per chunk of orders.  An order the ledger refuses to settle (its
    products' pool and dividend amounts exceed what is left of it, say) keeps ``delivered``,
    gets ``settle_error`` and is reported; the others settle.  Idempotent: the ledger key
    ``settle:<ref>`` and the status both say an order settled once.  An order with an open
    after-sales request waits for its decision (settling would grant the rewards its refund
    then takes back); an operator may still settle it at once.
    """
    at, store = _ts(now), as_store(db)
    o, ar = s.orders.c, s.aftersales_requests.c
    open_request = exists().where(ar.tenant_id == o.tenant_id, ar.open_order_id == o.id)
    settled = 0
    failed: list[tuple[int, str, str]] = []
    for tid in _tenant_ids(store, tenant_id):
        after = 0
        while True:
            with store.tenant_tx(tid) as tx:
                stmt = (
                    select(s.orders)
                    .where(
                        o.tenant_id == tid,
                        o.status == "delivered",
                        o.settle_at <= at,
                        o.id > after,
                        ~open_request,
                    )
                    .order_by(o.id)
                    .limit(JOB_CHUNK)
                )
                rows = list(tx.conn.execute(q.locked(tx.conn, stmt)))
                if rows:
                    items = [
                        (f"settle:{r.ref}", settle_command(tx.conn, tid, r, tx.params))
                        for r in rows
                    ]
                    for r, out in zip(rows, tx.apply(items), strict=True):
                        if out.status == "rejected":
                            reason = (out.error or "refused")[:300]
                            transitions.mark_settle_failed(tx, r, reason)
                            failed.append((tid, r.ref, reason))
                        else:
                            transitions.mark_settled(tx, r, at)
                            settled += 1
            if len(rows) < JOB_CHUNK:
                break
            after = rows[-1].id
    return SettleReport(settled, failed)
