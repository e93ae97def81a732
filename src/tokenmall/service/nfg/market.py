"""The exchange (交易所): list a token at a fixed price, buy it with SP, cancel.

(A buy with CNY goes through the order flow: :mod:`.trades` reserves the listing for the
buyer's order and sells it here, with :func:`sell`, when the order is paid.)

A buy is one transaction under the tenant's lock: the domain re-checks the listing (state,
owner, uses, approval, policy, holding time), the buyer's SP pays through one ledger command
(:class:`~tokenmall.domain.commands.TokenSale`: seller's proceeds, fee to revenue and the
pool's share, royalty to the issuer), the token changes owner and the listing closes.  A
concurrent buy, cancel or transfer of the same token waits for the lock and then finds the
listing closed or stale: exactly one of them wins, nothing is half-applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from tokenmall.domain.commands import TokenSale
from tokenmall.domain.economy import Asset, SystemAccount
from tokenmall.domain.nfg import (
    AssetNotAccepted,
    Listing,
    ListingReserved,
    Settlement,
    UnknownListing,
)
from tokenmall.money import cny_of_fen
from tokenmall.service.nfg.session import Session, now
from tokenmall.service.nfg.tokens import ensure_member
from tokenmall.service.orders import queries, transitions
from tokenmall.service.uow import TenantTx
from tokenmall.store import schema as s

__all__ = [
    "ListingView",
    "buy",
    "cancel",
    "check_sale",
    "get_listing",
    "list_token",
    "open_listings",
    "release",
    "reserving_order",
    "sell",
]

_L = s.nfg_listings.c
_C = s.nfg_collections.c


@dataclass(frozen=True, slots=True)
class ListingView:
    id: int
    code: str
    serial: int
    seller: str
    lister: str
    price: Decimal
    state: str
    listed_at: float
    closed_at: float | None
    buyer: str | None
    # the CNY order reserving it while open (it may have lapsed: a read writes nothing), or
    # the order that paid for it once sold
    order_ref: str | None = None


_CODE_OF = (
    select(_C.code)
    .select_from(
        s.nfg_listings.join(
            s.nfg_collections, (_C.tenant_id == _L.tenant_id) & (_C.id == _L.collection_id)
        )
    )
    .where(_L.tenant_id == bindparam("t"), _L.id == bindparam("id"))
)


_RESERVED_BY = select(_L.order_ref).where(
    _L.tenant_id == bindparam("t"), _L.id == bindparam("id"), _L.state == "open"
)
_RELEASE = (
    update(s.nfg_listings)
    .where(_L.tenant_id == bindparam("t"), _L.order_ref == bindparam("ref"), _L.state != "sold")
    .values(order_ref=None)
)


def _code_of(conn: Connection, tenant_id: int, listing_id: int) -> str:
    row = conn.execute(_CODE_OF, {"t": tenant_id, "id": listing_id}).first()
    if row is None:
        raise UnknownListing(f"no listing {listing_id}")
    return str(row.code)


def list_token(
    tx: TenantTx,
    code: str,
    serial: int,
    *,
    caller: str,
    price: Decimal | None,
    at: float | None = None,
) -> Listing:
    """A fixed-price listing by the owner, its approved address or an operator."""
    t = now(at)
    sess = Session(tx, code)
    ref = sess.token(serial)
    old = sess.open_listing(serial)
    sess.next_listing_id()
    if sess.registry.exists(ref):
        owner = sess.registry.owner_of(ref)
        sess.names(owner)
        sess.sent_today(owner, t)
    listing = sess.exchange.list_token(caller, ref, price, at=t)
    if old is not None:  # a stale listing of the token was closed to make room
        sess.save_listing(sess.exchange.listing(old.id))
    sess.save_listing(listing)
    return listing


def reserving_order(tx: TenantTx, listing_id: int, at: float) -> Any | None:
    """The unpaid order that reserves the open listing now (a CNY buy, :mod:`.trades`), or
    None.  An order past its deadline is expired here first, as any writer that touches it
    does (its close releases the listing); one that is no longer unpaid reserves nothing.
    The order's row is locked before the listing's is written: the one lock order of every
    path that touches both (the expiry job, a payment, a buy, a cancel)."""
    ref = tx.conn.execute(_RESERVED_BY, {"t": tx.tenant_id, "id": listing_id}).scalar()
    if ref is None:
        return None
    row = transitions.expire_if_due(
        tx, queries.order_row(tx.conn, tx.tenant_id, ref, lock=True), at
    )
    if row.status == "pending_payment":
        return row
    release(tx, ref)  # what the order's close did already, when its handler ran
    return None


def release(tx: TenantTx, order_ref: str) -> None:
    """The listing reserved by ``order_ref`` is free again (the order closed unpaid, or its
    payment was refunded before the token moved); one closed meanwhile (a relisting by the
    token's new owner closes a stale one) no longer names an order that did not buy it."""
    tx.conn.execute(_RELEASE, {"t": tx.tenant_id, "ref": order_ref})


def _check_unreserved(tx: TenantTx, listing_id: int, at: float) -> None:
    row = reserving_order(tx, listing_id, at)
    if row is not None:
        raise ListingReserved(
            f"listing {listing_id} is reserved for order {row.ref} until it is paid, "
            "cancelled or expires"
        )


def cancel(tx: TenantTx, listing_id: int, *, caller: str, at: float | None = None) -> Listing:
    _check_unreserved(tx, listing_id, now(at))
    sess = Session(tx, _code_of(tx.conn, tx.tenant_id, listing_id))
    sess.listing(listing_id)
    closed = sess.exchange.cancel(caller, listing_id, at=now(at))
    sess.save_listing(closed)
    return closed


def buy(
    tx: TenantTx,
    listing_id: int,
    *,
    buyer: str,
    asset: Asset = Asset.SP,
    at: float | None = None,
) -> Settlement:
    """Buy a listed token with SP; the settlement and the change of owner commit together.
    A listing reserved by a CNY buyer's unpaid order is refused (``nfg_listing_reserved``)."""
    t = now(at)
    if asset is not Asset.SP:
        raise AssetNotAccepted("listings are bought with SP here; a CNY buy creates an order")
    _check_unreserved(tx, listing_id, t)
    return sell(tx, listing_id, buyer=buyer, asset=asset, at=t)


def sell(
    tx: TenantTx, listing_id: int, *, buyer: str, asset: Asset, at: float, order: str | None = None
) -> Settlement:
    """The sale itself, paid in SP from the buyer's wallet or, with ``order``, out of that
    paid order's escrow (a CNY buy): the domain re-checks the listing and the rules, one
    ledger command pays everyone, and the token, the listing and the log are written."""
    sess, listing = _for_sale(tx, listing_id, buyer, at)
    st = sess.exchange.buy(buyer, listing_id, asset, at=at)
    issuer = (
        None if sess.collection.issuer == SystemAccount.REVENUE.value else sess.collection.issuer
    )
    for member in (listing.seller, issuer):
        if member is not None:
            ensure_member(tx, member)
    sale = TokenSale(
        ref=f"{sess.code}#{listing.token.serial}:{listing_id}",
        buyer=buyer,
        price=st.price,
        seller=listing.seller,
        proceeds=st.proceeds,
        fee=st.fee,
        pool_share=st.pool_share,
        royalty=st.royalty,
        issuer=issuer,
        order=order,
    )
    tx.apply_one(f"nfg:sale:{listing_id}", sale)
    assert st.listing is not None
    sess.save_listing(st.listing, buyer=buyer)
    sess.flush()
    return st


def check_sale(tx: TenantTx, listing_id: int, *, buyer: str, asset: Asset, at: float) -> Listing:
    """Every check of :func:`sell` (listing, mode, asset, staleness, policy), nothing
    written: whether ``buyer`` could buy the listing now.  The listing."""
    sess, listing = _for_sale(tx, listing_id, buyer, at)
    sess.exchange.buy(buyer, listing_id, asset, at=at)  # the in-memory sale is dropped
    return listing


def _for_sale(tx: TenantTx, listing_id: int, buyer: str, at: float) -> tuple[Session, Listing]:
    """The session a sale of the listing reads: the listing, its token, both parties' real
    names and the seller's transfers today."""
    sess = Session(tx, _code_of(tx.conn, tx.tenant_id, listing_id))
    listing = sess.listing(listing_id)
    sess.names(buyer, listing.seller)
    sess.sent_today(listing.seller, at)
    return sess, listing


def _view(row: Any) -> ListingView:
    return ListingView(
        row.id,
        row.code,
        row.serial,
        row.seller,
        row.lister,
        cny_of_fen(row.price_fen),
        row.state,
        row.listed_at,
        row.closed_at,
        row.buyer,
        row.order_ref,
    )


def _query() -> Any:
    j = s.nfg_listings.join(
        s.nfg_collections, (_C.tenant_id == _L.tenant_id) & (_C.id == _L.collection_id)
    )
    return select(s.nfg_listings, _C.code).select_from(j)


def get_listing(conn: Connection, tenant_id: int, listing_id: int) -> ListingView:
    row = conn.execute(_query().where(_L.tenant_id == tenant_id, _L.id == listing_id)).first()
    if row is None:
        raise UnknownListing(f"no listing {listing_id}")
    return _view(row)


def open_listings(
    conn: Connection, tenant_id: int, code: str | None = None, *, limit: int = 100
) -> list[ListingView]:
    q = _query().where(_L.tenant_id == tenant_id, _L.state == "open")
    if code is not None:
        q = q.where(_C.code == code)
    return [_view(r) for r in conn.execute(q.order_by(_L.id).limit(limit))]
