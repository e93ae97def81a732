"""Reads of the order flow: an order, its parts, and the lists.  Nothing here writes.

A read never writes: an overdue unpaid order read here is shown as it is stored
(``pending_payment`` past ``expires_at``) until a writer (the expiry job, or the next
transaction that touches it, :func:`.transitions.expire_if_due`) closes it.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, Engine, literal, select, tuple_

from tokenmall.errors import NotFound
from tokenmall.json_limits import loads_bounded
from tokenmall.money import EP_PLACES, cny_of_fen, from_atoms
from tokenmall.service.errors import InvalidCursor
from tokenmall.service.orders import shipping
from tokenmall.service.orders import statements as q
from tokenmall.service.orders.models import (
    PAYMENT_GRACE,
    Order,
    OrderLine,
    OrderRefund,
    Payment,
    ProviderEvent,
    line_of,
    order_of,
    payment_of,
    refund_of,
)
from tokenmall.service.pages import MAX_LIMIT, Page, fetch_page
from tokenmall.store import schema as s
from tokenmall.store.db import read_only


def tenant_code(conn: Connection, tenant_id: int) -> str:
    """The tenant's code (the provider refund calls are addressed by it)."""
    t = s.tenants.c
    return str(conn.execute(select(t.code).where(t.id == tenant_id)).scalar_one())


def order_row(conn: Connection, tenant_id: int, ref: str, *, lock: bool = False) -> Any:
    stmt = q.locked(conn, q.ORDER_BY_REF) if lock else q.ORDER_BY_REF
    row = conn.execute(stmt, {"t": tenant_id, "ref": ref}).first()
    if row is None:
        raise NotFound(f"no order {ref!r}")
    return row


def order_by_id(conn: Connection, tenant_id: int, order_id: int, *, lock: bool = False) -> Any:
    stmt = q.locked(conn, q.ORDER_BY_ID) if lock else q.ORDER_BY_ID
    return conn.execute(stmt, {"t": tenant_id, "id": order_id}).one()


def lines(conn: Connection, tenant_id: int, order_id: int) -> list[Any]:
    return list(conn.execute(q.LINES, {"t": tenant_id, "id": order_id}))


def load(conn: Connection, tenant_id: int, row: Any, *, full: bool = True) -> Order:
    """The order of ``row`` with its lines (``full``: its payments and refunds too)."""
    order = order_of(row, [line_of(r) for r in lines(conn, tenant_id, row.id)])
    if full:
        of_order = {"t": tenant_id, "id": row.id}
        order.payments.extend(
            payment_of(r, row.ref, row.total_fen)
            for r in conn.execute(q.PAYMENTS_OF_ORDER, of_order)
        )
        order.refunds.extend(
            refund_of(r, row.ref) for r in conn.execute(q.REFUNDS_OF_ORDER, of_order)
        )
        order = replace(
            order,
            shipping_address=shipping.addresses_of(conn, tenant_id, [row.id]).get(row.id),
            shipments=shipping.shipments_of(conn, tenant_id, [row.id]).get(row.id, []),
        )
        if row.paid_cny_fen is not None and row.paid_cny_fen + row.paid_sp_fen < row.total_fen:
            burned = conn.execute(q.ESCROW_POINTS, {"t": tenant_id, "ref": row.ref}).scalar()
            if burned is not None:
                order = replace(order, paid_points=from_atoms(int(burned), EP_PLACES))
    return order


def awaits_provider(conn: Connection, tenant_id: int, row: Any, at: float) -> bool:
    """``row`` is past ``expires_at`` but within :data:`PAYMENT_GRACE` of it with an open
    payment at a provider that takes payments on its own: it may have been paid in time and
    not be known here yet."""
    return at < row.expires_at + PAYMENT_GRACE and (
        conn.execute(q.OPEN_HELD_OF_ORDER, {"t": tenant_id, "id": row.id}).first() is not None
    )


def refund_by_ref(conn: Connection, tenant_id: int, refund_id: str) -> Any:
    return conn.execute(q.REFUND_BY_REF, {"t": tenant_id, "ref": refund_id}).first()


def list_orders(
    engine: Engine,
    tenant_id: int,
    *,
    limit: int,
    cursor: str | None,
    member: str | None = None,
    status: str | None = None,
    created_from: float | None = None,
    created_to: float | None = None,
) -> Page[Order]:
    """Orders with their lines, oldest first (payments and refunds: read the order);
    ``created_from`` <= created_at < ``created_to`` when given."""
    o = s.orders.c
    stmt = select(s.orders).where(o.tenant_id == tenant_id)
    if member is not None:
        stmt = stmt.where(o.member == member)
    if status is not None:
        stmt = stmt.where(o.status == status)
    if created_from is not None:
        stmt = stmt.where(o.created_at >= created_from)
    if created_to is not None:
        stmt = stmt.where(o.created_at < created_to)
    with read_only(engine).connect() as conn:
        page = fetch_page(conn, stmt, o.id, limit=limit, cursor=cursor, convert=lambda r: r)
        ln = s.order_lines.c
        by_order: dict[int, list[OrderLine]] = {}
        ids = [r.id for r in page.items]
        if ids:
            for r in conn.execute(
                select(s.order_lines)
                .where(ln.tenant_id == tenant_id, ln.order_id.in_(ids))
                .order_by(ln.order_id, ln.line_no)
            ):
                by_order.setdefault(r.order_id, []).append(line_of(r))
        addresses = shipping.addresses_of(conn, tenant_id, ids)
        shipments = shipping.shipments_of(conn, tenant_id, ids)
    return Page(
        [
            replace(
                order_of(r, by_order.get(r.id, [])),
                shipping_address=addresses.get(r.id),
                shipments=shipments.get(r.id, []),
            )
            for r in page.items
        ],
        page.next_cursor,
    )


def list_refunds(engine: Engine, tenant_id: int, ref: str) -> list[OrderRefund]:
    with read_only(engine).connect() as conn:
        row = order_row(conn, tenant_id, ref)
        return [
            refund_of(r, ref)
            for r in conn.execute(q.REFUNDS_OF_ORDER, {"t": tenant_id, "id": row.id})
        ]


def list_payments(
    engine: Engine,
    tenant_id: int,
    *,
    limit: int,
    cursor: str | None,
    status: str | None = None,
    refund_status: str | None = None,
    provider: str | None = None,
) -> Page[Payment]:
    """Payment attempts of every order, oldest first.  ``?status=voided&refund_status=
    manual`` (or ``failed``) is money an operator must give back by hand."""
    o, py = q.o, q.py
    stmt = select(s.payments, o.ref.label("order_ref"), o.total_fen.label("order_total"))
    stmt = stmt.select_from(
        s.payments.join(s.orders, (o.tenant_id == py.tenant_id) & (o.id == py.order_id))
    ).where(py.tenant_id == tenant_id)
    for col, value in (
        (py.status, status),
        (py.refund_status, refund_status),
        (py.provider, provider),
    ):
        if value is not None:
            stmt = stmt.where(col == value)
    with read_only(engine).connect() as conn:
        return fetch_page(
            conn,
            stmt,
            py.id,
            limit=limit,
            cursor=cursor,
            convert=lambda r: payment_of(r, r.order_ref, r.order_total),
        )


def list_all_refunds(
    engine: Engine,
    tenant_id: int,
    *,
    limit: int,
    cursor: str | None,
    provider_status: str | None = None,
) -> Page[OrderRefund]:
    """Refunds of every order, oldest first.  ``?provider_status=failed`` (or ``manual``)
    is CNY the provider did not return, for an operator to settle by hand."""
    o, rf = q.o, q.rf
    stmt = (
        select(s.order_refunds, o.ref.label("order_ref"))
        .select_from(
            s.order_refunds.join(s.orders, (o.tenant_id == rf.tenant_id) & (o.id == rf.order_id))
        )
        .where(rf.tenant_id == tenant_id)
    )
    if provider_status is not None:
        stmt = stmt.where(rf.provider_status == provider_status)
    with read_only(engine).connect() as conn:
        return fetch_page(
            conn,
            stmt,
            rf.id,
            limit=limit,
            cursor=cursor,
            convert=lambda r: refund_of(r, r.order_ref),
        )


_EVENT_CURSOR = "e1:"


def _encode_event_cursor(row: Any) -> str:
    """The keyset cursor of a provider event: (received_at, provider, event_id), opaque."""
    raw = _EVENT_CURSOR + json.dumps([row.received_at, row.provider, row.event_id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_event_cursor(cursor: str) -> tuple[float, str, str]:
    bad = InvalidCursor("cursor is not one this service handed out")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith(_EVENT_CURSOR):
            raise bad
        at, provider, event_id = loads_bounded(raw[len(_EVENT_CURSOR) :])
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        raise bad from None
    if not (
        isinstance(at, float | int)
        and not isinstance(at, bool)
        and math.isfinite(at)
        and isinstance(provider, str)
        and isinstance(event_id, str)
    ):
        raise bad
    return float(at), provider, event_id


def list_provider_events(
    engine: Engine,
    tenant_id: int,
    *,
    limit: int,
    cursor: str | None,
    outcome: str | None = None,
    provider: str | None = None,
) -> Page[ProviderEvent]:
    """Every provider event applied, in the order received.  Outcomes other than
    ``applied`` and the like are for an operator: ``amount_mismatch`` (paid another amount
    than asked), ``unknown_payment``/``unknown_refund``/``unknown_payout`` (nothing here
    matches it), ``voided`` (money for an order that could not take it, refunded),
    ``conflict`` (contradicts an earlier outcome)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidCursor(f"limit must be between 1 and {MAX_LIMIT}")
    pe = s.provider_events.c
    key = (pe.received_at, pe.provider, pe.event_id)
    stmt = select(s.provider_events).where(pe.tenant_id == tenant_id)
    if outcome is not None:
        stmt = stmt.where(pe.outcome == outcome)
    if provider is not None:
        stmt = stmt.where(pe.provider == provider)
    if cursor is not None:
        after = _decode_event_cursor(cursor)
        stmt = stmt.where(tuple_(*key) > tuple_(*(literal(v) for v in after)))
    with read_only(engine).connect() as conn:
        rows = conn.execute(stmt.order_by(*key).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(
        [
            ProviderEvent(
                provider=r.provider,
                event_id=r.event_id,
                kind=r.kind,
                provider_order_id=r.provider_order_id,
                amount=cny_of_fen(r.amount_fen),
                outcome=r.outcome,
                detail=r.detail,
                received_at=r.received_at,
            )
            for r in rows
        ],
        _encode_event_cursor(rows[-1]) if more else None,
    )
