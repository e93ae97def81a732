"""Rows to domain values and back: a stored collection, token or listing as the NFG domain
(:mod:`tokenmall.domain.nfg`) knows it.  The one place that knows the column layout."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from tokenmall.domain.economy import Asset, SystemAccount
from tokenmall.domain.nfg import (
    Collection,
    Kind,
    Listing,
    ListingState,
    MetadataTemplate,
    Mode,
    Token,
    TokenRef,
)
from tokenmall.money import cny_of_fen, fen_of

__all__ = [
    "collection_of",
    "collection_values",
    "listing_of",
    "metadata_json",
    "token_of",
    "token_values",
]


def metadata_json(t: MetadataTemplate) -> str:
    return json.dumps(
        {
            "name": t.name,
            "description": t.description,
            "image": t.image,
            "attributes": [list(a) for a in t.attributes],
        },
        sort_keys=True,
        ensure_ascii=False,
    )


def _template(text: str) -> MetadataTemplate:
    doc = json.loads(text)
    return MetadataTemplate(
        name=doc["name"],
        description=doc["description"],
        image=doc["image"],
        attributes=tuple((str(k), str(v)) for k, v in doc["attributes"]),
    )


def collection_values(c: Collection) -> dict[str, Any]:
    """The columns of a collection's rules (not its counts, id or product link)."""
    issuer = None if c.issuer == SystemAccount.REVENUE.value else c.issuer
    return {
        "code": c.code,
        "name": c.name,
        "max_supply": c.max_supply,
        "kind": c.kind.value,
        "uses": c.uses,
        "expires_at": c.expires_at,
        "metadata": metadata_json(c.metadata),
        "price_fen": fen_of(c.price),
        "accepted": ",".join(sorted(a.value for a in c.accepted)),
        "issuer": issuer,
        "royalty_bps": c.royalty_bps,
        "fee_bps": c.fee_bps,
        "fee_to_pool": str(c.fee_to_pool_ratio),
        "transfer_policy": c.transfer_policy.value,
        "exchange_mode": None if c.exchange_mode is None else c.exchange_mode.value,
        "min_holding_seconds": c.min_holding_seconds,
        "real_name_only": c.real_name_only,
        "daily_transfer_limit": c.daily_transfer_limit,
        "no_transfer_when_used": c.no_transfer_when_used,
        "appreciation_step": None if c.appreciation_step is None else str(c.appreciation_step),
    }


def collection_of(row: Any) -> Collection:
    return Collection(
        code=row.code,
        name=row.name,
        max_supply=row.max_supply,
        price=cny_of_fen(row.price_fen),
        kind=Kind(row.kind),
        uses=row.uses,
        expires_at=row.expires_at,
        metadata=_template(row.metadata),
        accepted=frozenset(Asset(a) for a in row.accepted.split(",")),
        issuer=row.issuer or SystemAccount.REVENUE.value,
        royalty_bps=row.royalty_bps,
        fee_bps=row.fee_bps,
        fee_to_pool_ratio=Decimal(row.fee_to_pool),
        transfer_policy=Mode(row.transfer_policy),
        exchange_mode=None if row.exchange_mode is None else Mode(row.exchange_mode),
        min_holding_seconds=row.min_holding_seconds,
        real_name_only=bool(row.real_name_only),
        daily_transfer_limit=row.daily_transfer_limit,
        no_transfer_when_used=bool(row.no_transfer_when_used),
        appreciation_step=None if row.appreciation_step is None else Decimal(row.appreciation_step),
    )


def token_of(row: Any, code: str) -> Token:
    return Token(
        ref=TokenRef(code, row.serial),
        owner=row.owner,
        acquired_at=row.acquired_at,
        minted_at=row.minted_at,
        uses_left=row.uses_left,
        last_price=cny_of_fen(row.last_price_fen),
        item_no=row.item_no,
        approved=row.approved,
    )


def token_values(t: Token) -> dict[str, Any]:
    """The columns a change of the token rewrites."""
    return {
        "owner": t.owner,
        "approved": t.approved,
        "acquired_at": t.acquired_at,
        "uses_left": t.uses_left,
        "last_price_fen": fen_of(t.last_price),
    }


def listing_of(row: Any, code: str) -> Listing:
    return Listing(
        id=row.id,
        token=TokenRef(code, row.serial),
        seller=row.seller,
        lister=row.lister,
        price=cny_of_fen(row.price_fen),
        listed_at=row.listed_at,
        uses_left=row.uses_left,
        state=ListingState(row.state),
        closed_at=row.closed_at,
    )
