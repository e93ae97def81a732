"""The only writer of an order's status; each transition emits its event.

Every function here runs inside a unit of work (:class:`~tokenmall.service.uow.TenantTx`) and
emits the matching event of :mod:`tokenmall.domain.events` after its row is written, so the
handlers registered for it run in the same transaction: what they write commits or rolls
back with the order.

The life of an order (``orders.status``)::

    pending_payment --paid (notification or SP-only payment)--> paid --confirm--> delivered
          |   |                                                  |                  |
          |   +--payment could not be applied (SP short)--> failed  |   return window over
          |   +--cancel--> cancelled                                 |   (settle_due) or operator
          +--unpaid past expires_at--> expired                       +-----> settled
    paid / delivered / settled --refunds adding up to the total--> refunded
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, select, update

from tokenmall.domain.events import OrderClosed, OrderPaid, OrderRefunded, OrderSettled
from tokenmall.errors import InvalidCommand
from tokenmall.money import CNY_PLACES, cny_of_fen, ratio_floor
from tokenmall.service import catalog
from tokenmall.service.orders import queries
from tokenmall.service.orders import statements as q
from tokenmall.service.orders.models import DAY
from tokenmall.service.uow import TenantTx
from tokenmall.store import schema as s
from tokenmall.store.rows import update_by_key

log = logging.getLogger("tokenmall.orders")

_RATIO_EXP = Decimal(1).scaleb(-CNY_PLACES * 4)  # 16 places: a share of a total, cut down


def _set(conn: Connection, tenant_id: int, order_id: int, **values: Any) -> None:
    update_by_key(conn, s.orders, {"tenant_id": tenant_id, "id": order_id}, values)


def _units_per_sku(conn: Connection, tenant_id: int, order_ids: list[int]) -> list[tuple[int, int]]:
    """(SKU id, units) over the lines of ``order_ids``, in ascending SKU id (the lock order)."""
    if not order_ids:
        return []
    ln = s.order_lines.c
    per_sku = conn.execute(
        select(ln.sku_id, func.sum(ln.quantity).label("units"))
        .where(ln.tenant_id == tenant_id, ln.order_id.in_(order_ids))
        .group_by(ln.sku_id)
        .order_by(ln.sku_id)
    )
    return [(int(sku_id), int(units)) for sku_id, units in per_sku]


def close_unpaid(
    tx: TenantTx, order_ids: Sequence[int], *, status: str, reason: str, now: float
) -> list[int]:
    """pending_payment -> ``status`` (cancelled, expired, failed) for each order still pending,
    giving its stock back and emitting :class:`OrderClosed`; returns the ids it closed.

    The conditional update is what makes the release happen once: of two transactions closing
    the same order (the expiry job and a late payment, say) only one sees ``pending_payment``.
    Locks are taken in one global order, every order row first (ascending id) and then every
    SKU row (ascending id, quantities summed): a transaction that held a SKU while waiting
    for an order row could deadlock with a payment holding that order and releasing the SKU.
    """
    conn, tid = tx.conn, tx.tenant_id
    o = s.orders.c
    closed = []
    for order_id in sorted(order_ids):
        done = conn.execute(
            update(s.orders)
            .where(o.tenant_id == tid, o.id == order_id, o.status == "pending_payment")
            .values(status=status, closed_at=now, close_reason=reason)
        )
        if done.rowcount == 1:
            closed.append(order_id)
    for sku_id, units in _units_per_sku(conn, tid, closed):
        catalog.release_stock(conn, tid, sku_id, units)
    if closed:
        for row in conn.execute(
            select(o.ref, o.member).where(o.tenant_id == tid, o.id.in_(closed)).order_by(o.id)
        ):
            tx.emit(OrderClosed(row.ref, row.member, status, reason, now))
    return closed


def expire_if_due(tx: TenantTx, row: Any, at: float, *, grace: bool = True) -> Any:
    """An unpaid order touched by a writer after ``expires_at`` expires now (with ``grace``,
    not while a provider's open payment may still turn out paid: ``PAYMENT_GRACE``)."""
    if row.status == "pending_payment" and row.expires_at <= at:
        if grace and queries.awaits_provider(tx.conn, tx.tenant_id, row, at):
            return row
        close_unpaid(tx, [row.id], status="expired", reason="not paid in time", now=at)
        return queries.order_by_id(tx.conn, tx.tenant_id, row.id)
    return row


def mark_paid(
    tx: TenantTx,
    row: Any,
    pay: Any,
    now: float,
    *,
    settled: bool = False,
    settle_error: str | None = None,
) -> None:
    """pending_payment -> paid (or settled, when it settled in the same transaction: the
    return window is 0 days); the payment attempt that paid it becomes ``paid``."""
    values: dict[str, Any] = {
        "status": "paid",
        "paid_at": now,
        "paid_cny_fen": pay.cny_fen,
        "paid_sp_fen": pay.sp_fen,
        "payment_id": pay.id,
    }
    if settle_error is not None:
        values["settle_error"] = settle_error[:300]
    if settled:
        values.update(status="settled", settled_at=now)
    _set(tx.conn, tx.tenant_id, row.id, **values)
    tx.conn.execute(q.PAYMENT_PAID, {"t": tx.tenant_id, "b_id": pay.id, "at": now})
    tx.emit(
        OrderPaid(
            order=row.ref,
            member=row.member,
            total=cny_of_fen(row.total_fen),
            cny=cny_of_fen(pay.cny_fen),
            sp=cny_of_fen(pay.sp_fen),
            points_value=cny_of_fen(row.total_fen - pay.cny_fen - pay.sp_fen),
            at=now,
        )
    )
    if settled:
        tx.emit(
            OrderSettled(row.ref, row.member, cny_of_fen(row.total_fen - row.refunded_fen), now)
        )


def mark_delivered(tx: TenantTx, row: Any, now: float, *, settle_days: Decimal | int) -> None:
    """paid -> delivered: the return window starts now.  An order that settled at payment
    (return window 0) keeps its status and only has ``delivered_at`` stamped."""
    if row.status == "paid":
        _set(
            tx.conn,
            tx.tenant_id,
            row.id,
            status="delivered",
            delivered_at=now,
            settle_at=now + float(settle_days) * DAY,
        )
    elif row.delivered_at is None:
        _set(tx.conn, tx.tenant_id, row.id, delivered_at=now)


def mark_settled(tx: TenantTx, row: Any, now: float, *, emit: bool = True) -> None:
    """paid / delivered -> settled: the ledger granted its rewards in this transaction.
    ``emit=False``: a held order its holder settled without rewards (:mod:`.holds`)."""
    _set(tx.conn, tx.tenant_id, row.id, status="settled", settled_at=now, settle_error=None)
    if emit:
        total = cny_of_fen(row.total_fen - row.refunded_fen)
        tx.emit(OrderSettled(row.ref, row.member, total, now))


def mark_settle_failed(tx: TenantTx, row: Any, reason: str) -> None:
    """The ledger refused to settle: the status stays, the reason is kept for an operator."""
    _set(tx.conn, tx.tenant_id, row.id, settle_error=reason[:300])


def _restock(tx: TenantTx, order_id: int, ref: str) -> None:
    """A fully refunded order that was never delivered gives its units back to stock.

    Once only: it runs in the transaction that moves the order to ``refunded`` (its row is
    locked, and a refunded order refunds no more).  Refunds of delivered goods, and partial
    refunds (money, not units), leave stock alone: the operator decides what came back to the
    shelf.  SKU rows are locked in ascending id, after the order row, as in
    :func:`close_unpaid`.  A SKU that would go over the stock ceiling keeps what it has (the
    refund itself must not fail on that); the log says so.
    """
    for sku_id, units in _units_per_sku(tx.conn, tx.tenant_id, [order_id]):
        try:
            catalog.release_stock(tx.conn, tx.tenant_id, sku_id, units)
        except InvalidCommand as exc:
            log.warning(
                "order %s refunded; %s units of SKU %s not restocked: %s", ref, units, sku_id, exc
            )


def mark_refunded(tx: TenantTx, row: Any, *, refund_id: str, amount_fen: int, now: float) -> None:
    """A refund of ``amount_fen`` was applied: the refunded total grows, and the order becomes
    ``refunded`` (its undelivered units back in stock) once it adds up to the total."""
    refunded = row.refunded_fen + amount_fen
    values: dict[str, Any] = {"refunded_fen": refunded}
    if refunded == row.total_fen:
        values.update(status="refunded", closed_at=now, close_reason="refunded in full")
        if row.delivered_at is None:
            _restock(tx, row.id, row.ref)
    _set(tx.conn, tx.tenant_id, row.id, **values)
    tx.emit(
        OrderRefunded(
            order=row.ref,
            member=row.member,
            refund_id=refund_id,
            amount=cny_of_fen(amount_fen),
            refunded=cny_of_fen(refunded),
            total=cny_of_fen(row.total_fen),
            ratio=ratio_floor(Decimal(refunded), Decimal(row.total_fen), _RATIO_EXP),
            settled=row.status == "settled",
            at=now,
        )
    )


def mark_refunded_in_full(
    tx: TenantTx, rows: Sequence[Any], *, refund_ids: Sequence[str], now: float
) -> None:
    """:func:`mark_refunded` for many orders each refunded in full by one refund (a draw's
    losing places): the orders' rows in one statement, the undelivered units back in stock
    per SKU, each order's :class:`OrderRefunded` emitted in the order given."""
    if not rows:
        return
    o = s.orders.c
    tx.conn.execute(
        update(s.orders)
        .where(o.tenant_id == tx.tenant_id, o.id.in_([r.id for r in rows]))
        .values(
            refunded_fen=o.total_fen,
            status="refunded",
            closed_at=now,
            close_reason="refunded in full",
        )
    )
    undelivered = [r.id for r in rows if r.delivered_at is None]
    for sku_id, units in _units_per_sku(tx.conn, tx.tenant_id, undelivered):
        try:
            catalog.release_stock(tx.conn, tx.tenant_id, sku_id, units)
        except InvalidCommand as exc:
            log.warning(
                "%s refunded orders; %s units of SKU %s not restocked: %s",
                len(undelivered),
                units,
                sku_id,
                exc,
            )
    for row, refund_id in zip(rows, refund_ids, strict=True):
        tx.emit(
            OrderRefunded(
                order=row.ref,
                member=row.member,
                refund_id=refund_id,
                amount=cny_of_fen(row.total_fen - row.refunded_fen),
                refunded=cny_of_fen(row.total_fen),
                total=cny_of_fen(row.total_fen),
                ratio=ratio_floor(Decimal(row.total_fen), Decimal(row.total_fen), _RATIO_EXP),
                settled=row.status == "settled",
                at=now,
            )
        )
