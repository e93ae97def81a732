"""A listing bought with CNY through the order flow (docs/NFG.md, "Buying a listing with CNY").

1. **Reserve** (:meth:`Trades.reserve`): under the tenant's lock every check of the sale runs
   (the listing open and honourable, the exchange mode, CNY accepted, the transfer policy,
   the holding time, real names) without writing, then an order of the listing's price is
   created (held ``nfg``, no lines: it sells no catalog goods and reserves no stock) and the
   listing records it (``nfg_listings.order_ref``).  While that order is unpaid the listing is
   reserved: an SP buy, a cancel and another CNY buy answer 409 ``nfg_listing_reserved``; the
   same buyer asking again gets the same order.  The reservation lasts as long as the order
   may be paid (the tenant's ``order_ttl_minutes``; a provider's open payment keeps it a
   grace period longer, as for any order).
2. **Pay** it as any order (``POST /orders/{ref}/payments``: CNY, or an SP/EP mix).  In the
   payment's transaction :meth:`Trades.on_paid` sells the token (:func:`.market.sell`): the
   domain checks everything again, one ``TokenSale`` pays the seller's proceeds and the
   issuer's royalty as SP and the fee to revenue and the pool *out of the order's escrow*, the
   token changes owner, the listing closes ``sold`` and the order is ``settled`` - all or none.
   A sale the rules refuse now (the seller gifted, burned or redeemed the token meanwhile, an
   operator closed the exchange) refunds the order in full at once and frees the listing.
3. An order **cancelled or expired** unpaid, or **refunded** before the token moved, frees the
   listing (:meth:`Trades.on_closed`, :meth:`Trades.on_refunded`).  A settled trade is final:
   the order flow refuses its refund (the token is the buyer's, the seller was paid).

Every handler runs in the order event's unit of work; a payment, the expiry job, a buy and a
cancel all lock the order's row before they write the listing's, so they never wait in a
cycle.  The tenant's lock serialises reservations, payments, buys and cancels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import bindparam, select, update

from tokenmall.domain.economy import Asset
from tokenmall.domain.events import OrderClosed, OrderPaid, OrderRefunded
from tokenmall.domain.nfg import ListingReserved, NFGError
from tokenmall.money import fen_of
from tokenmall.service.messagebus import Handler
from tokenmall.service.nfg import market
from tokenmall.service.nfg.market import ListingView
from tokenmall.service.orders import holds, queries, refunds
from tokenmall.service.orders.context import OrderContext
from tokenmall.service.orders.models import Order
from tokenmall.service.uow import TenantTx
from tokenmall.store import schema as s

__all__ = ["HOLD", "Reservation", "Trades"]

HOLD = "nfg"  # orders.hold of an order that buys a listing
REFUND_PREFIX = "nfg-"  # refund id of a trade that could not be honoured: nfg-<order ref>

_L = s.nfg_listings.c
_BY_ORDER = select(_L.id, _L.state).where(
    _L.tenant_id == bindparam("t"), _L.order_ref == bindparam("ref")
)
_RESERVE = (
    update(s.nfg_listings)
    .where(
        _L.tenant_id == bindparam("t"),
        _L.id == bindparam("lid"),
        _L.state == "open",
        _L.order_ref.is_(None),
    )
    .values(order_ref=bindparam("oref"))
)


@dataclass(frozen=True, slots=True)
class Reservation:
    """A listing reserved for a buyer and the order that pays for it."""

    listing: ListingView
    order: Order


class Trades:
    """CNY buys of listings, with the order flow's context (refunds go through its
    providers).  ``ctx``: the context, or a callable returning it (the composition root
    builds the event handlers before the order service)."""

    def __init__(self, ctx: OrderContext | Callable[[], OrderContext]) -> None:
        self._ctx = ctx

    @property
    def ctx(self) -> OrderContext:
        return self._ctx if isinstance(self._ctx, OrderContext) else self._ctx()

    def handlers(self) -> dict[type, list[Handler]]:
        return {
            OrderPaid: [self.on_paid],
            OrderRefunded: [self.on_refunded],
            OrderClosed: [self.on_closed],
        }

    def reserve(self, tenant_id: int, listing_id: int, *, buyer: str) -> Reservation:
        """Reserve the listing for ``buyer``'s new order (see the module docstring)."""
        ctx = self.ctx
        with ctx.store.tenant_tx(tenant_id) as tx:
            at = ctx.clock()
            pending = market.reserving_order(tx, listing_id, at)
            if pending is not None:
                if pending.member != buyer:
                    raise ListingReserved(
                        f"listing {listing_id} is reserved for another buyer's order until "
                        "it is paid, cancelled or expires"
                    )
                order = queries.load(tx.conn, tenant_id, pending)
            else:
                listing = market.check_sale(tx, listing_id, buyer=buyer, asset=Asset.CNY, at=at)
                order = holds.create_held_payment(
                    ctx, tx, member=buyer, amount_fen=fen_of(listing.price), hold=HOLD
                )
                done = tx.conn.execute(
                    _RESERVE, {"t": tenant_id, "lid": listing_id, "oref": order.ref}
                )
                assert done.rowcount == 1  # the lock: nobody reserved it since the check
            return Reservation(market.get_listing(tx.conn, tenant_id, listing_id), order)

    # -- the order flow's events ----------------------------------------------------------

    def on_paid(self, tx: TenantTx, event: OrderPaid) -> None:
        """The reserved listing's order is paid: sell, or refund in full if the rules now
        refuse the sale (nothing of the sale is written then)."""
        row = tx.conn.execute(_BY_ORDER, {"t": tx.tenant_id, "ref": event.order}).first()
        if row is None:
            return
        try:
            market.sell(
                tx, row.id, buyer=event.member, asset=Asset.CNY, at=event.at, order=event.order
            )
        except NFGError as err:
            ctx = self.ctx
            refunds.refund_in(
                ctx,
                tx,
                queries.tenant_code(tx.conn, tx.tenant_id),
                event.order,
                refund_id=f"{REFUND_PREFIX}{event.order}",
                reason=f"listing {row.id} could not be sold: {err}"[:200],
            )
            market.release(tx, event.order)  # also done by on_refunded; harmless twice
            return
        holds.settle_held(tx, event.order, event.at)

    def on_refunded(self, tx: TenantTx, event: OrderRefunded) -> None:
        """A refund before the token moved frees the listing (after it, the order flow
        refuses the refund of a settled trade)."""
        market.release(tx, event.order)

    def on_closed(self, tx: TenantTx, event: OrderClosed) -> None:
        """An order cancelled or expired unpaid frees the listing it reserved."""
        market.release(tx, event.order)
