"""Reads the pages need beyond the API's: a collection's tokens, a member's open listings,
the latest anchors, and the previews of exactly what a buy or a primary purchase costs.

The previews are the rules the commands apply, on the stored state: a listing's settlement is
:func:`tokenmall.domain.nfg.settle` (fee, royalty, proceeds; the buyer pays the price), and a
purchase for EP costs :func:`tokenmall.domain.pricing.points_worth` of the price at the EP
price of the moment, as :func:`tokenmall.service.nfg.tokens.mint_for` charges it.  So what a
page shows before the tap is what the command takes, unless the state moves in between.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Connection, func, select

from tokenmall.domain.economy import Asset
from tokenmall.domain.nfg import AssetNotAccepted, Settlement, TokenRef, settle
from tokenmall.domain.pricing import points_worth
from tokenmall.service import reads
from tokenmall.service.nfg.collections import get_collection
from tokenmall.service.nfg.log import Anchor, last_seq
from tokenmall.service.nfg.market import ListingView, _query, _view, get_listing
from tokenmall.service.nfg.tokens import TokenView, _token_query
from tokenmall.service.nfg.tokens import _view as _token_view
from tokenmall.store import schema as s

__all__ = [
    "AnchorSummary",
    "collection_tokens",
    "latest_anchors",
    "listings_of",
    "mint_preview",
    "open_listing_of",
    "sale_preview",
]

_T = s.nfg_tokens.c
_C = s.nfg_collections.c
_L = s.nfg_listings.c
_A = s.nfg_anchors.c


def collection_tokens(
    conn: Connection, tenant_id: int, code: str, *, limit: int = 200, after: int = 0
) -> list[TokenView]:
    """A collection's tokens by serial (burned ones too, marked), from serial ``after`` + 1."""
    get_collection(conn, tenant_id, code)  # NotFound for another tenant's
    q = (
        _token_query()
        .where(_T.tenant_id == tenant_id, _C.code == code, _T.serial > after)
        .order_by(_T.serial)
        .limit(limit)
    )
    return [_token_view(r) for r in conn.execute(q)]


def listings_of(conn: Connection, tenant_id: int, seller: str) -> list[ListingView]:
    """The member's open listings (a member lists few: one per token at most)."""
    q = _query().where(_L.tenant_id == tenant_id, _L.state == "open", _L.seller == seller)
    return [_view(r) for r in conn.execute(q.order_by(_L.id).limit(100))]


def open_listing_of(conn: Connection, tenant_id: int, code: str, serial: int) -> ListingView | None:
    """The token's open listing, if it has one."""
    q = _query().where(
        _L.tenant_id == tenant_id, _L.state == "open", _C.code == code, _L.serial == serial
    )
    row = conn.execute(q.limit(1)).first()
    return None if row is None else _view(row)


@dataclass(frozen=True, slots=True)
class AnchorSummary:
    """The latest anchors, newest first, and how many token events wait for the next one."""

    anchors: list[Anchor]
    pending: int


def latest_anchors(conn: Connection, tenant_id: int, *, limit: int = 20) -> AnchorSummary:
    rows = conn.execute(
        select(s.nfg_anchors).where(_A.tenant_id == tenant_id).order_by(_A.id.desc()).limit(limit)
    ).all()
    found = [
        Anchor(int(r.id), int(r.first_seq), int(r.last_seq), str(r.root), float(r.created_at))
        for r in rows
    ]
    anchored = conn.execute(select(func.max(_A.last_seq)).where(_A.tenant_id == tenant_id)).scalar()
    return AnchorSummary(found, last_seq(conn, tenant_id) - int(anchored or 0))


def sale_preview(conn: Connection, tenant_id: int, listing_id: int, buyer: str) -> Settlement:
    """What buying the open listing with SP would move now: the buyer pays its price, the
    seller receives the proceeds, fee and royalty go where the collection says."""
    listing = get_listing(conn, tenant_id, listing_id)
    c = get_collection(conn, tenant_id, listing.code).collection
    if Asset.SP not in c.accepted:
        raise AssetNotAccepted(f"{c.code} does not trade in SP")
    return settle(
        c,
        listing.price,
        Asset.SP,
        buyer=buyer,
        seller=listing.seller,
        token=TokenRef(listing.code, listing.serial),
    )


def mint_preview(conn: Connection, tenant_id: int, code: str, asset: Asset) -> Decimal:
    """What buying the collection's next serial costs in ``asset`` now: the price in SP, or
    the fewest points whose sale pays the price at the current EP price (R4)."""
    c = get_collection(conn, tenant_id, code).collection
    if asset not in (Asset.SP, Asset.EP) or asset not in c.accepted:
        raise AssetNotAccepted(f"{code} is not sold for {asset} here")
    if asset is Asset.SP or c.price == 0:
        return c.price
    params = reads.tenant_params(conn, tenant_id)
    num, den, _ = reads.price_ratio(conn, tenant_id, params)
    return points_worth(c.price, num, den, params.sell_fee)
