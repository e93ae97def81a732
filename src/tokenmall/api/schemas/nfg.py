"""NFG bodies: collections, tokens, listings, the token log's anchors and proofs.

Prices are CNY decimal strings in whole fen, as everywhere; rates are basis points (integers)
or decimal strings between 0 and 1; times are ISO 8601 UTC on the way out, seconds in.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from tokenmall.api.schemas.common import (
    DbId,
    FenIn,
    InputModel,
    MemberCode,
    MoneyOut,
    Name,
    utc,
    utc_or_none,
)
from tokenmall.api.schemas.orders import OrderOut
from tokenmall.domain.economy import Asset
from tokenmall.domain.nfg import Collection, Kind, Listing, MetadataTemplate, Mode, Settlement
from tokenmall.service.codec import dec
from tokenmall.service.nfg.collections import CollectionInfo
from tokenmall.service.nfg.log import Anchor
from tokenmall.service.nfg.market import ListingView
from tokenmall.service.nfg.tokens import TokenView
from tokenmall.service.nfg.trades import Reservation

__all__ = [
    "AirdropBody",
    "AnchorOut",
    "ApproveBody",
    "CollectionCode",
    "CollectionCreate",
    "CollectionOut",
    "EventOut",
    "ListBody",
    "ListingOut",
    "MintBody",
    "ModesBody",
    "OperatorBody",
    "ProofOut",
    "SaleOut",
    "TokenOut",
    "TransferBody",
]

CollectionCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{1,32}$")]
_Ratio = Annotated[str, StringConstraints(pattern=r"^(0(\.[0-9]{1,6})?|1(\.0{1,6})?)$")]
_Step = Annotated[str, StringConstraints(pattern=r"^(0|[1-9])(\.[0-9]{1,6})?$")]
_Template = Annotated[str, StringConstraints(max_length=500, pattern=r"^[^\x00]*$")]
_Trait = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00]*$")]
ModeName = Literal["off", "gift_only", "open"]
AssetName = Literal["CNY", "SP", "EP"]
_TEN_YEARS = 10 * 366 * 86_400


class CollectionCreate(InputModel):
    code: CollectionCode
    name: Name
    max_supply: int = Field(ge=1, le=10_000_000)
    price: FenIn
    kind: Literal["item", "right"] = "item"
    uses: int = Field(default=0, ge=0, le=1_000_000)
    expires_at: datetime | None = None
    name_template: _Template = "{code} #{serial}"
    description: _Template = ""
    image: _Template = ""
    attributes: dict[_Trait, _Template] = Field(default_factory=dict, max_length=20)
    accepted: list[AssetName] = Field(
        default_factory=lambda: list[AssetName](["CNY", "SP"]), min_length=1, max_length=3
    )
    issuer: MemberCode | None = Field(
        default=None, description="The member paid primary sales and royalties; null: the platform."
    )
    royalty_bps: int = Field(default=0, ge=0, le=10_000)
    fee_bps: int = Field(default=0, ge=0, le=10_000)
    fee_to_pool: _Ratio = Field(default="0", description="Share of each fee paid into the EP pool.")
    transfer_policy: ModeName = "off"
    exchange_mode: ModeName | None = None
    min_holding_seconds: int = Field(default=0, ge=0, le=_TEN_YEARS)
    real_name_only: bool = False
    daily_transfer_limit: int | None = Field(default=None, ge=1, le=1_000_000)
    no_transfer_when_used: bool = True
    appreciation_step: _Step | None = Field(
        default=None, description="Automatic appreciation: each resale at last price x (1 + step)."
    )
    product_id: DbId | None = Field(
        default=None, description="Paid orders of this catalog product mint tokens."
    )

    def to_domain(self) -> Collection:
        """The domain's collection (it refuses inconsistent rules: a 422 naming the rule)."""
        return Collection(
            code=self.code,
            name=self.name,
            max_supply=self.max_supply,
            price=self.price,
            kind=Kind(self.kind),
            uses=self.uses,
            expires_at=None if self.expires_at is None else self.expires_at.timestamp(),
            metadata=MetadataTemplate(
                name=self.name_template,
                description=self.description,
                image=self.image,
                attributes=tuple(self.attributes.items()),
            ),
            accepted=frozenset(Asset(a) for a in self.accepted),
            issuer=self.issuer or "revenue",
            royalty_bps=self.royalty_bps,
            fee_bps=self.fee_bps,
            fee_to_pool_ratio=Decimal(self.fee_to_pool),
            transfer_policy=Mode(self.transfer_policy),
            exchange_mode=None if self.exchange_mode is None else Mode(self.exchange_mode),
            min_holding_seconds=float(self.min_holding_seconds),
            real_name_only=self.real_name_only,
            daily_transfer_limit=self.daily_transfer_limit,
            no_transfer_when_used=self.no_transfer_when_used,
            appreciation_step=None
            if self.appreciation_step is None
            else Decimal(self.appreciation_step),
        )


class CollectionOut(BaseModel):
    code: str
    name: str
    max_supply: int
    minted: int
    burned: int
    price: MoneyOut
    kind: str
    uses: int
    accepted: list[str]
    issuer: str | None
    royalty_bps: int
    fee_bps: int
    fee_to_pool: str
    transfer_policy: str
    exchange_mode: str
    min_holding_seconds: float
    real_name_only: bool
    daily_transfer_limit: int | None
    appreciation_step: str | None
    product_id: int | None

    @classmethod
    def of(cls, info: CollectionInfo) -> CollectionOut:
        c = info.collection
        return cls(
            code=c.code,
            name=c.name,
            max_supply=c.max_supply,
            minted=info.minted,
            burned=info.burned,
            price=c.price,
            kind=c.kind.value,
            uses=c.uses,
            accepted=sorted(a.value for a in c.accepted),
            issuer=None if c.issuer == "revenue" else c.issuer,
            royalty_bps=c.royalty_bps,
            fee_bps=c.fee_bps,
            fee_to_pool=dec(c.fee_to_pool_ratio),
            transfer_policy=c.transfer_policy.value,
            exchange_mode=c.exchange.value,
            min_holding_seconds=c.min_holding_seconds,
            real_name_only=c.real_name_only,
            daily_transfer_limit=c.daily_transfer_limit,
            appreciation_step=None if c.appreciation_step is None else dec(c.appreciation_step),
            product_id=info.product_id,
        )


class ModesBody(InputModel):
    transfer_policy: ModeName | None = None
    exchange_mode: ModeName | None = None


class AirdropBody(InputModel):
    members: list[MemberCode] = Field(min_length=1, max_length=1000)


class MintBody(InputModel):
    asset: Literal["SP", "EP"]


class TransferBody(InputModel):
    to: MemberCode
    from_: MemberCode | None = Field(
        default=None, alias="from", description="The owner (default: the caller)."
    )


class ApproveBody(InputModel):
    to: MemberCode | None = Field(description="The approved member; null clears the approval.")


class OperatorBody(InputModel):
    operator: MemberCode
    approved: bool


class ListBody(InputModel):
    code: CollectionCode
    serial: int = Field(ge=1, le=10_000_000)
    price: FenIn | None = Field(
        default=None, description="Required unless the collection fixes resale prices."
    )


class TokenOut(BaseModel):
    code: str
    serial: int
    owner: str
    approved: str | None
    uses_left: int
    last_price: MoneyOut
    acquired_at: datetime
    minted_at: datetime
    burned: bool

    @classmethod
    def of(cls, t: TokenView) -> TokenOut:
        return cls(
            code=t.code,
            serial=t.serial,
            owner=t.owner,
            approved=t.approved,
            uses_left=t.uses_left,
            last_price=t.last_price,
            acquired_at=utc(t.acquired_at),
            minted_at=utc(t.minted_at),
            burned=t.burned,
        )


class EventOut(BaseModel):
    seq: int
    kind: str
    from_: str | None = Field(serialization_alias="from")
    to: str | None
    at: datetime
    price: MoneyOut | None
    asset: str | None
    uses_left: int | None
    leaf_hash: str

    @classmethod
    def of(cls, e: dict[str, Any]) -> EventOut:
        return cls(
            seq=e["seq"],
            kind=e["kind"],
            from_=e["from"],
            to=e["to"],
            at=utc(e["at"]),
            price=e["price"],
            asset=e["asset"],
            uses_left=e["uses_left"],
            leaf_hash=e["leaf_hash"],
        )


class ListingOut(BaseModel):
    id: int
    code: str
    serial: int
    seller: str
    lister: str
    price: MoneyOut
    state: str
    listed_at: datetime
    closed_at: datetime | None
    buyer: str | None = None
    order: str | None = Field(
        default=None,
        description="The CNY order reserving the open listing (it may have lapsed), or the "
        "order that paid for it once sold.",
    )

    @classmethod
    def of(cls, x: ListingView) -> ListingOut:
        return cls(
            id=x.id,
            code=x.code,
            serial=x.serial,
            seller=x.seller,
            lister=x.lister,
            price=x.price,
            state=x.state,
            listed_at=utc(x.listed_at),
            closed_at=utc_or_none(x.closed_at),
            buyer=x.buyer,
            order=x.order_ref,
        )

    @classmethod
    def of_domain(cls, x: Listing) -> ListingOut:
        return cls(
            id=x.id,
            code=x.token.code,
            serial=x.token.serial,
            seller=x.seller,
            lister=x.lister,
            price=x.price,
            state=x.state.value,
            listed_at=utc(x.listed_at),
            closed_at=utc_or_none(x.closed_at),
        )


class ReservationOut(BaseModel):
    """A listing reserved for the caller's CNY order: pay ``order`` through the order flow
    (``POST /orders/{order}/payments``) before it expires and the token is yours."""

    listing: ListingOut
    order: OrderOut

    @classmethod
    def of(cls, r: Reservation) -> ReservationOut:
        return cls(listing=ListingOut.of(r.listing), order=OrderOut.of(r.order))


class SaleOut(BaseModel):
    listing: int
    code: str
    serial: int
    price: MoneyOut
    fee: MoneyOut
    pool_share: MoneyOut
    royalty: MoneyOut
    proceeds: MoneyOut
    asset: str

    @classmethod
    def of(cls, s: Settlement) -> SaleOut:
        assert s.listing is not None
        return cls(
            listing=s.listing.id,
            code=s.listing.token.code,
            serial=s.listing.token.serial,
            price=s.price,
            fee=s.fee,
            pool_share=s.pool_share,
            royalty=s.royalty,
            proceeds=s.proceeds,
            asset=s.asset.value,
        )


class AnchorOut(BaseModel):
    id: int
    first_seq: int
    last_seq: int
    tree_size: int
    root: str
    created_at: datetime

    @classmethod
    def of(cls, a: Anchor) -> AnchorOut:
        return cls(
            id=a.id,
            first_seq=a.first_seq,
            last_seq=a.last_seq,
            tree_size=a.tree_size,
            root=a.root,
            created_at=utc(a.created_at),
        )


class ProofOut(BaseModel):
    """Everything needed to check one event offline (``tokenmall nfg verify-proof``)."""

    seq: int
    entry: str
    leaf_hash: str
    anchor: int
    index: int
    tree_size: int
    proof: list[str]
    root: str
