"""A merchant's orders: the list, one order as the merchant sees it, and shipping its lines.

An order may mix several merchants' goods (one cart, one payment).  A merchant sees an order
when at least one line is its own, and then sees only its own lines, their amount, the
shipping address and its own shipment: not the other merchants' goods, nor how the buyer
paid.  It ships its own lines (one carrier and tracking number per merchant and order); the
order's status does not change: the buyer or an operator confirms delivery.  Every function
here takes the merchant id it acts for; an order without a line of that merchant is answered
as absent (NotFound), the same answer as an order that does not exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Exists, exists, insert, select, update

from tokenmall.errors import NotFound
from tokenmall.money import ZERO
from tokenmall.service.orders import queries, shipping
from tokenmall.service.orders.context import OrderContext
from tokenmall.service.orders.models import OrderLine, OrderStateError, Shipment, ShippingAddress
from tokenmall.service.orders.models import line_of as _line_of
from tokenmall.service.pages import Page, fetch_page
from tokenmall.store import schema as s
from tokenmall.store.db import read_only

__all__ = ["SHIPPABLE", "MerchantOrder", "get_order", "list_orders", "merchant_ids", "ship"]

# Statuses a merchant may ship (or correct a tracking number) in: paid, and those a paid
# order reaches without a refund in full (delivered: confirmed before every merchant had
# shipped; settled: the return window is 0 days, or an operator settled early).
SHIPPABLE = ("paid", "delivered", "settled")


@dataclass(frozen=True, slots=True)
class MerchantOrder:
    """An order as one of its merchants sees it."""

    ref: str
    merchant_id: int
    member: str
    status: str
    amount: Decimal  # the merchant's own lines
    mixed: bool  # other merchants have lines in this order too
    lines: list[OrderLine]
    created_at: float
    paid_at: float | None
    delivered_at: float | None
    settle_at: float | None
    closed_at: float | None
    shipping_address: ShippingAddress | None
    shipment: Shipment | None


def merchant_ids(conn: Connection, tenant_id: int, order_id: int) -> set[int]:
    """The merchants with lines in the order."""
    ln = s.order_lines.c
    rows = conn.execute(
        select(ln.merchant_id).where(ln.tenant_id == tenant_id, ln.order_id == order_id).distinct()
    )
    return {int(m) for m in rows.scalars()}


def _views(
    conn: Connection, tenant_id: int, merchant_id: int, rows: Sequence[Any]
) -> list[MerchantOrder]:
    ids = [int(r.id) for r in rows]
    if not ids:
        return []
    ln = s.order_lines.c
    own: dict[int, list[OrderLine]] = {}
    mixed: set[int] = set()
    for r in conn.execute(
        select(s.order_lines)
        .where(ln.tenant_id == tenant_id, ln.order_id.in_(ids))
        .order_by(ln.order_id, ln.line_no)
    ):
        if r.merchant_id == merchant_id:
            own.setdefault(int(r.order_id), []).append(_line_of(r))
        else:
            mixed.add(int(r.order_id))
    addresses = shipping.addresses_of(conn, tenant_id, ids)
    shipments = shipping.shipments_of(conn, tenant_id, ids, merchant_id=merchant_id)
    out = []
    for o in rows:
        lines = own.get(o.id, [])
        out.append(
            MerchantOrder(
                ref=o.ref,
                merchant_id=merchant_id,
                member=o.member,
                status=o.status,
                amount=sum((ln.amount for ln in lines), ZERO),
                mixed=o.id in mixed,
                lines=lines,
                created_at=o.created_at,
                paid_at=o.paid_at,
                delivered_at=o.delivered_at,
                settle_at=o.settle_at,
                closed_at=o.closed_at,
                shipping_address=addresses.get(o.id),
                shipment=next(iter(shipments.get(o.id, [])), None),
            )
        )
    return out


def _has_lines_of(merchant_id: int) -> Exists:
    o, ln = s.orders.c, s.order_lines.c
    return exists().where(
        ln.tenant_id == o.tenant_id, ln.order_id == o.id, ln.merchant_id == merchant_id
    )


def list_orders(
    ctx: OrderContext,
    tenant_id: int,
    merchant_id: int,
    *,
    limit: int,
    cursor: str | None,
    status: str | None = None,
    created_from: float | None = None,
    created_to: float | None = None,
) -> Page[MerchantOrder]:
    """The merchant's orders, oldest first; ``created_from`` <= created_at < ``created_to``."""
    o = s.orders.c
    stmt = select(s.orders).where(o.tenant_id == tenant_id, _has_lines_of(merchant_id))
    if status is not None:
        stmt = stmt.where(o.status == status)
    if created_from is not None:
        stmt = stmt.where(o.created_at >= created_from)
    if created_to is not None:
        stmt = stmt.where(o.created_at < created_to)
    with read_only(ctx.engine).connect() as conn:
        page = fetch_page(conn, stmt, o.id, limit=limit, cursor=cursor, convert=lambda r: r)
        return Page(_views(conn, tenant_id, merchant_id, page.items), page.next_cursor)


def _own_row(
    conn: Connection, tenant_id: int, merchant_id: int, ref: str, *, lock: bool = False
) -> Any:
    row = queries.order_row(conn, tenant_id, ref, lock=lock)
    if merchant_id not in merchant_ids(conn, tenant_id, row.id):
        raise NotFound(f"no order {ref!r}")
    return row


def get_order(ctx: OrderContext, tenant_id: int, merchant_id: int, ref: str) -> MerchantOrder:
    with ctx.store.read() as conn:
        row = _own_row(conn, tenant_id, merchant_id, ref)
        return _views(conn, tenant_id, merchant_id, [row])[0]


def ship(
    ctx: OrderContext,
    tenant_id: int,
    merchant_id: int,
    ref: str,
    *,
    carrier: str,
    tracking_no: str,
    actor: str,
) -> tuple[MerchantOrder, bool]:
    """Record that ``merchant_id``'s lines of ``ref`` left with ``carrier`` under
    ``tracking_no``; (the order as the merchant sees it, whether this was the first time).

    The same carrier and number again change nothing; others replace them (a correction),
    recorded with who and when.  Only a paid order ships (409 otherwise), and a fully
    refunded one no more.  Moves no value: no tenant lock, the order row is locked.
    """
    carrier, tracking_no = shipping.check_shipment(carrier, tracking_no)
    now = ctx.clock()
    with ctx.store.tenant_tx(tenant_id, lock=False) as tx:
        row = _own_row(tx.conn, tenant_id, merchant_id, ref, lock=True)
        if row.status not in SHIPPABLE:
            raise OrderStateError(f"order {ref!r} is {row.status}; only paid orders ship")
        sh = s.order_shipments.c
        key = (sh.tenant_id == tenant_id, sh.order_id == row.id, sh.merchant_id == merchant_id)
        prior = tx.conn.execute(select(s.order_shipments).where(*key)).first()
        if prior is None:
            tx.conn.execute(
                insert(s.order_shipments).values(
                    tenant_id=tenant_id,
                    order_id=row.id,
                    merchant_id=merchant_id,
                    carrier=carrier,
                    tracking_no=tracking_no,
                    shipped_at=now,
                    shipped_by=actor,
                    updated_at=now,
                    updated_by=actor,
                )
            )
        elif (prior.carrier, prior.tracking_no) != (carrier, tracking_no):
            tx.conn.execute(
                update(s.order_shipments)
                .where(*key)
                .values(carrier=carrier, tracking_no=tracking_no, updated_at=now, updated_by=actor)
            )
        return _views(tx.conn, tenant_id, merchant_id, [row])[0], prior is None
