"""Orders held in escrow for another feature (a group-buy place) until it releases them.

Why a hold and not a new status: a held order *is* paid (its money sits in escrow through the
ledger's ``Pay``, refunds work as for any paid order), it only must not deliver or settle
yet, because it is not a purchase until its group confirms the place.  So ``orders.hold``
names who holds it; while it is set, the payment never settles at once (even with a return
window of 0 days) and delivery and settlement are refused.  Releasing the hold makes it an
ordinary paid order from that moment: with a return window of 0 days it settles at release,
in the order given, so the EP price moves as if they were bought one after another.

Every function runs inside the caller's unit of work (the caller holds the tenant's lock when
it releases: settling moves value).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import update

from tokenmall.domain.economy import Command
from tokenmall.service.orders import lifecycle, queries, transitions
from tokenmall.service.orders.context import OrderContext
from tokenmall.service.orders.models import Order
from tokenmall.service.uow import TenantTx
from tokenmall.store import schema as s

__all__ = ["cancel_unpaid", "create_held", "create_held_payment", "release", "settle_held"]


def create_held(
    ctx: OrderContext, tx: TenantTx, *, member: str, sku_id: int, price_fen: int, hold: str
) -> Order:
    """A one-unit order of ``sku_id`` at ``price_fen`` for ``member``, its stock reserved,
    held by ``hold`` once paid; in the caller's unit of work (so a refused place rolls it
    back)."""
    digest = f"{hold}:{sku_id}:{price_fen}"
    return lifecycle._insert_order(
        ctx,
        tx.conn,
        tx.tenant_id,
        member,
        [(sku_id, 1)],
        None,
        digest,
        unit_price_fen=price_fen,
        hold=hold,
    )


def create_held_payment(
    ctx: OrderContext, tx: TenantTx, *, member: str, amount_fen: int, hold: str
) -> Order:
    """An order of no catalog goods that collects ``amount_fen`` from ``member`` into escrow
    for ``hold`` (an NFG trade), which settles it itself (:func:`settle_held`): it reserves no
    stock and never settles through the order flow's rewards."""
    return lifecycle.insert_unlined(
        ctx, tx.conn, tx.tenant_id, member, total_fen=amount_fen, hold=hold
    )


def settle_held(tx: TenantTx, ref: str, now: float) -> None:
    """The paid held order ``ref`` was settled by its holder in the ledger (an NFG trade's
    ``TokenSale`` out of its escrow): it is ``settled`` now, and stays held, which marks it
    final.  No ``OrderSettled``: that fact grants the mall's rewards on a purchase (the
    marketing models), and a trade between members is none."""
    row = queries.order_row(tx.conn, tx.tenant_id, ref, lock=True)
    transitions.mark_settled(tx, row, now, emit=False)


def release(tx: TenantTx, refs: Sequence[str], now: float) -> list[str]:
    """Release the holds of the paid orders ``refs`` (in this order); with a return window
    of 0 days they settle now, one ledger batch in the same order.  Returns the refs
    released (an order refunded or released already is skipped)."""
    conn, tid = tx.conn, tx.tenant_id
    rows = []
    for ref in refs:
        row = queries.order_row(conn, tid, ref, lock=True)
        if row.hold is None or row.status != "paid":
            continue
        o = s.orders.c
        conn.execute(update(s.orders).where(o.tenant_id == tid, o.id == row.id).values(hold=None))
        rows.append(queries.order_by_id(conn, tid, row.id))
    params = tx.params
    if params.settle_days == 0 and rows:
        items: list[tuple[str, Command]] = [
            (f"settle:{r.ref}", lifecycle.settle_command(conn, tid, r, params)) for r in rows
        ]
        for r, out in zip(rows, tx.apply(items), strict=True):
            if out.status == "rejected":
                transitions.mark_settle_failed(tx, r, out.error or "refused")
            else:
                transitions.mark_settled(tx, r, now)
    return [r.ref for r in rows]


def cancel_unpaid(tx: TenantTx, ref: str, *, reason: str, now: float) -> bool:
    """Cancel ``ref`` if it is still unpaid (its stock released); True if it was."""
    row = queries.order_row(tx.conn, tx.tenant_id, ref, lock=True)
    if row.status != "pending_payment":
        return False
    return bool(transitions.close_unpaid(tx, [row.id], status="cancelled", reason=reason, now=now))
