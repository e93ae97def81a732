"""The order flow's NFG handlers: a paid order of a linked product mints, a refund takes back.

Registered in :func:`tokenmall.bootstrap.event_handlers`.  Both run in the order's own
transaction, so a token is minted exactly when the payment is applied (a duplicate
notification emits nothing) and taken back exactly when the refund is.

The refund rule (docs/NFG.md, "Refunds"): a refund takes back ``floor(tokens x refunded
share)`` of the order's tokens in total, newest serial first.  A token the buyer still holds
is burned.  One the buyer no longer holds (gifted, sold or burned since) stays where it is -
its holder got it in good faith - and the buyer owes its mint price instead: an SP take-back
(what they hold goes back to revenue, the rest is an SP debt set off against their next SP
credits), so the refund never leaves the buyer with both the money and the token's value.
"""

from __future__ import annotations

from sqlalchemy import select, update

from tokenmall.domain.commands import RewardTakeBack
from tokenmall.domain.economy import Asset
from tokenmall.domain.events import OrderPaid, OrderRefunded
from tokenmall.domain.nfg import EventKind
from tokenmall.money import cny_of_fen
from tokenmall.service.nfg.session import Session
from tokenmall.service.nfg.tokens import ensure_member
from tokenmall.service.uow import TenantTx
from tokenmall.store import schema as s

__all__ = ["mint_on_paid", "take_back_on_refund"]

_C = s.nfg_collections.c
_T = s.nfg_tokens.c
_E = s.nfg_events.c


def mint_on_paid(tx: TenantTx, event: OrderPaid) -> None:
    """Mint one token per unit of every line whose product is linked to a collection."""
    o, ln = s.orders.c, s.order_lines.c
    lines = tx.conn.execute(
        select(ln.product_id, ln.quantity, ln.unit_price_fen, _C.code)
        .select_from(
            s.order_lines.join(
                s.orders, (o.tenant_id == ln.tenant_id) & (o.id == ln.order_id)
            ).join(
                s.nfg_collections,
                (_C.tenant_id == ln.tenant_id) & (_C.product_id == ln.product_id),
            )
        )
        .where(o.tenant_id == tx.tenant_id, o.ref == event.order)
        .order_by(ln.line_no)
    ).all()
    for line in lines:
        sess = Session(tx, line.code)
        sess.names(event.member)
        price = cny_of_fen(line.unit_price_fen)
        for _ in range(line.quantity):
            sess.registry.mint(line.code, event.member, at=event.at, price=price, asset=Asset.CNY)
        sess.flush(order_ref=event.order)


def take_back_on_refund(tx: TenantTx, event: OrderRefunded) -> None:
    rows = tx.conn.execute(
        select(_T.collection_id, _T.serial, _T.revoked, _C.code)
        .select_from(
            s.nfg_tokens.join(
                s.nfg_collections, (_C.tenant_id == _T.tenant_id) & (_C.id == _T.collection_id)
            )
        )
        .where(_T.tenant_id == tx.tenant_id, _T.order_ref == event.order)
        .order_by(_T.collection_id, _T.serial)
    ).all()
    if not rows:
        return
    due = min(len(rows), int(len(rows) * event.ratio))  # whole tokens: the floor
    todo = due - sum(1 for r in rows if r.revoked)
    for r in [r for r in reversed(rows) if not r.revoked][: max(todo, 0)]:
        sess = Session(tx, r.code)
        ref = sess.token(r.serial)
        reg = sess.registry
        if reg.exists(ref) and reg.owner_of(ref) == event.member:
            reg.burn(event.member, ref, at=event.at)
            sess.flush()
        else:
            price = tx.conn.execute(
                select(_E.price_fen).where(
                    _E.tenant_id == tx.tenant_id,
                    _E.collection_id == r.collection_id,
                    _E.serial == r.serial,
                    _E.kind == EventKind.MINT.value,
                )
            ).scalar_one()
            if price:
                ensure_member(tx, event.member)
                tx.apply_one(
                    f"nfg:refund:{event.order}:{r.code}#{r.serial}",
                    RewardTakeBack(event.member, cny_of_fen(price), "nfg_refund"),
                )
        tx.conn.execute(
            update(s.nfg_tokens)
            .where(
                _T.tenant_id == tx.tenant_id,
                _T.collection_id == r.collection_id,
                _T.serial == r.serial,
            )
            .values(revoked=True)
        )
