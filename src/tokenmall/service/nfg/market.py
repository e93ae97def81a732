"""The exchange (交易所): list a token at a fixed price, buy it with SP, cancel.

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

from sqlalchemy import Connection, bindparam, select

from tokenmall.domain.commands import TokenSale
from tokenmall.domain.economy import Asset, SystemAccount
from tokenmall.domain.nfg import AssetNotAccepted, Listing, Settlement, UnknownListing
from tokenmall.money import cny_of_fen
from tokenmall.service.nfg.session import Session, now
from tokenmall.service.nfg.tokens import ensure_member
from tokenmall.service.uow import TenantTx
from tokenmall.store import schema as s

__all__ = ["ListingView", "buy", "cancel", "get_listing", "list_token", "open_listings"]

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


_CODE_OF = (
    select(_C.code)
    .select_from(
        s.nfg_listings.join(
            s.nfg_collections, (_C.tenant_id == _L.tenant_id) & (_C.id == _L.collection_id)
        )
    )
    .where(_L.tenant_id == bindparam("t"), _L.id == bindparam("id"))
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


def cancel(tx: TenantTx, listing_id: int, *, caller: str, at: float | None = None) -> Listing:
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
    """Buy a listed token with SP; the settlement and the change of owner commit together."""
    t = now(at)
    sess = Session(tx, _code_of(tx.conn, tx.tenant_id, listing_id))
    listing = sess.listing(listing_id)
    if asset is not Asset.SP:
        raise AssetNotAccepted("listings are bought with SP here")
    sess.names(buyer, listing.seller)
    sess.sent_today(listing.seller, t)
    st = sess.exchange.buy(buyer, listing_id, asset, at=t)
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
    )
    tx.apply_one(f"nfg:sale:{listing_id}", sale)
    assert st.listing is not None
    sess.save_listing(st.listing, buyer=buyer)
    sess.flush()
    return st


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
