"""The order flow's hot statements, built once with bound parameters.

Building a Core statement and its cache key on every call cost about 140 us of CPU here against
40 us to execute a built one, and a paid order runs some thirty of them (bench/README.md,
"2026-11-26, second session").  Only statements; the functions that run them live with their
role (:mod:`.queries` reads, :mod:`.transitions` writes an order's status).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Select, bindparam, func, select, update

from tokenmall.service.orders.providers import HELD_PAST_DEADLINE, SANDBOX, WECHAT
from tokenmall.store import schema as s

o, py, ln, rf = s.orders.c, s.payments.c, s.order_lines.c, s.order_refunds.c
t = s.tenants.c
ORDER_BY_REF = select(s.orders).where(o.tenant_id == bindparam("t"), o.ref == bindparam("ref"))
ORDER_BY_ID = select(s.orders).where(o.tenant_id == bindparam("t"), o.id == bindparam("id"))
LINES = (
    select(s.order_lines)
    .where(ln.tenant_id == bindparam("t"), ln.order_id == bindparam("id"))
    .order_by(ln.line_no)
)
PAYMENT_BY_PROVIDER_ID = select(s.payments).where(
    py.tenant_id == bindparam("t"),
    py.provider == bindparam("provider"),
    py.provider_order_id == bindparam("pid"),
)
ORDER_OF_INTENT = (
    select(o.ref, o.member)
    .select_from(s.payments.join(s.orders, (o.tenant_id == py.tenant_id) & (o.id == py.order_id)))
    .where(py.tenant_id == bindparam("t"), py.provider == SANDBOX, py.intent_id == bindparam("i"))
)
LAST_ATTEMPT = select(func.max(py.attempt)).where(
    py.tenant_id == bindparam("t"), py.order_id == bindparam("id")
)
WAITING = select(s.payments).where(
    py.tenant_id == bindparam("t"),
    py.order_id == bindparam("id"),
    py.provider == bindparam("provider"),
    py.status == "requires_payment",
    py.sp_fen == bindparam("sp"),
    py.cny_fen == bindparam("cny"),
)
PAYMENT_BY_ID = select(s.payments).where(py.tenant_id == bindparam("t"), py.id == bindparam("id"))
PAYMENTS_OF_ORDER = (
    select(s.payments)
    .where(py.tenant_id == bindparam("t"), py.order_id == bindparam("id"))
    .order_by(py.attempt)
)
REFUNDS_OF_ORDER = (
    select(s.order_refunds)
    .where(rf.tenant_id == bindparam("t"), rf.order_id == bindparam("id"))
    .order_by(rf.id)
)
REFUND_BY_REF = select(s.order_refunds).where(
    rf.tenant_id == bindparam("t"), rf.refund_ref == bindparam("ref")
)
ESCROW_POINTS = select(s.escrows.c.ep_points).where(
    s.escrows.c.tenant_id == bindparam("t"), s.escrows.c.order_ref == bindparam("ref")
)
# an open payment at a provider that takes payments on its own, which holds its order past the
# deadline (PAYMENT_GRACE)
OPEN_HELD_OF_ORDER = select(py.id).where(
    py.tenant_id == bindparam("t"),
    py.order_id == bindparam("id"),
    py.provider.in_(HELD_PAST_DEADLINE),
    py.status == "requires_payment",
)


def due_for_check(q: Select[Any], checked_at: Any, row_id: Any) -> Select[Any]:
    """``q`` limited to rows not asked about since ``:checked``, least recently asked first,
    at most ``:limit`` (the reconciliation's queries of payments and refunds)."""
    return (
        q.where(checked_at.is_(None) | (checked_at <= bindparam("checked")))
        .order_by(func.coalesce(checked_at, 0.0), row_id)
        .limit(bindparam("limit"))
    )


# open WeChat payments with what reconciling one needs to know of its order
OPEN_WECHAT = (
    select(py.id, py.provider_order_id, o.ref, o.status.label("order_status"), o.expires_at)
    .select_from(s.payments.join(s.orders, (o.tenant_id == py.tenant_id) & (o.id == py.order_id)))
    .where(py.tenant_id == bindparam("t"), py.provider == WECHAT, py.status == "requires_payment")
)
TO_RECONCILE = due_for_check(
    OPEN_WECHAT.where(py.created_at <= bindparam("created")), py.checked_at, py.id
)
OPEN_WECHAT_OF = OPEN_WECHAT.where(py.order_id == bindparam("id")).order_by(py.id)
PAYMENT_CHECKED = (
    update(s.payments)
    .where(py.tenant_id == bindparam("t"), py.id == bindparam("b_id"))
    .values(checked_at=bindparam("at"))
)
# WeChat refunds submitted a while ago and still without their notification
REFUNDS_TO_CHECK = due_for_check(
    select(rf.id, rf.provider_refund_id)
    .select_from(
        s.order_refunds.join(s.payments, (py.tenant_id == rf.tenant_id) & (py.id == rf.payment_id))
    )
    .where(
        rf.tenant_id == bindparam("t"),
        rf.provider_status == "submitted",
        py.provider == WECHAT,
        rf.updated_at <= bindparam("since"),
    ),
    rf.checked_at,
    rf.id,
)
VOID_REFUNDS_TO_CHECK = due_for_check(
    select(py.id, py.provider_refund_id).where(
        py.tenant_id == bindparam("t"),
        py.provider == WECHAT,
        py.refund_status == "submitted",
        py.updated_at <= bindparam("since"),
    ),
    py.checked_at,
    py.id,
)
REFUND_CHECKED = (
    update(s.order_refunds)
    .where(rf.tenant_id == bindparam("t"), rf.id == bindparam("b_id"))
    .values(checked_at=bindparam("at"))
)
PAYMENT_PAID = (
    update(s.payments)
    .where(py.tenant_id == bindparam("t"), py.id == bindparam("b_id"))
    .values(status="paid", updated_at=bindparam("at"))
)
EVENT = select(s.provider_events).where(
    s.provider_events.c.tenant_id == bindparam("t"),
    s.provider_events.c.provider == bindparam("provider"),
    s.provider_events.c.event_id == bindparam("event"),
)
_k, _p = s.skus.c, s.products.c
SKU_INFO = (
    select(
        _k.id,
        _k.product_id,
        _k.name,
        _k.price_fen,
        _p.merchant_id,
        _p.name.label("product_name"),
        _p.pool_amount_fen,
        _p.fund_amount_fen,
        _p.on_shelf,
    )
    .select_from(s.skus.join(s.products, (_p.tenant_id == _k.tenant_id) & (_p.id == _k.product_id)))
    .where(_k.tenant_id == bindparam("t"), _k.id.in_(bindparam("ids", expanding=True)))
)


def locked(conn: Connection, q: Select[Any]) -> Select[Any]:
    """``q`` with ``FOR UPDATE`` where rows are locked (SQLite: every writing transaction
    began IMMEDIATE, store.db, so it holds the database lock already)."""
    return q if conn.dialect.name == "sqlite" else q.with_for_update()
