"""The exchange (交易所): fixed-price listings, buys and cancels, and their settlement.

A buy returns a :class:`Settlement`: the explicit money moves (who pays whom how much, in
which asset) and the token move, so a ledger can apply both in one transaction.  Amounts:

* fee       = floor2(price x fee_bps / 10000), to the platform, of which
  pool_share = floor2(fee x fee_to_pool_ratio) goes into the EP pool instead;
* royalty   = floor2(price x royalty_bps / 10000), to the collection's issuer (ERC-2981 style);
* proceeds  = price - fee - royalty, to the seller.

The buyer pays exactly the price: the moves of one settlement sum to zero per asset.  The
rounding cuts fee and royalty down, so the seller, a person, gets whatever is cut off.

A listing can stop being honourable without anybody touching it: the token is gifted,
burned or redeemed, the lister loses the approval, the rules change.  ``buy`` checks all of
that again and refuses cleanly - nothing changes - with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum

from tokenmall.domain.economy import Asset, SystemAccount
from tokenmall.domain.nfg.collection import Collection, Mode, whole_fen
from tokenmall.domain.nfg.errors import (
    AlreadyListed,
    AssetNotAccepted,
    ERC721InsufficientApproval,
    ExchangeClosed,
    ListingClosed,
    ListingStale,
    PriceFixed,
    UnknownListing,
)
from tokenmall.domain.nfg.events import ProvenanceEvent, TokenRef
from tokenmall.domain.nfg.registry import Registry
from tokenmall.errors import InvalidParameter
from tokenmall.money import ZERO, floor_fen, mul, ratio_floor

__all__ = [
    "SETTLEMENT_ASSETS",
    "Exchange",
    "Listing",
    "ListingState",
    "Payment",
    "Settlement",
    "TokenMove",
    "primary_sale",
    "settle",
]

# what a secondary sale may be paid in; EP buys a token only from the issuer (primary_sale)
SETTLEMENT_ASSETS = frozenset({Asset.CNY, Asset.SP})
_EP_ATOM = Decimal("0.00000001")


class ListingState(StrEnum):
    OPEN = "open"
    SOLD = "sold"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Listing:
    id: int
    token: TokenRef
    seller: str  # the owner when listed
    lister: str  # the owner or an approved operator who listed it
    price: Decimal
    listed_at: float
    uses_left: int  # what the buyer was offered; a redemption since makes the listing stale
    state: ListingState = ListingState.OPEN
    closed_at: float | None = None


@dataclass(frozen=True, slots=True)
class Payment:
    asset: Asset
    payer: str
    payee: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class TokenMove:
    token: TokenRef
    from_: str | None  # None: minted
    to: str


@dataclass(frozen=True, slots=True)
class Settlement:
    """Everything one sale moves; the ledger applies ``payments`` and ``token_moves`` at once."""

    price: Decimal
    fee: Decimal
    pool_share: Decimal
    royalty: Decimal
    proceeds: Decimal
    asset: Asset
    payments: tuple[Payment, ...]
    token_moves: tuple[TokenMove, ...]
    event: ProvenanceEvent | None = None
    listing: Listing | None = None


def settle(
    collection: Collection,
    price: Decimal,
    asset: Asset,
    *,
    buyer: str,
    seller: str,
    token: TokenRef,
    fee_account: str = SystemAccount.REVENUE.value,
    pool_account: str = SystemAccount.POOL.value,
) -> Settlement:
    """The amounts and moves of a sale at ``price`` (pure: nothing is applied)."""
    whole_fen(price, "price")
    fee = collection.fee(price)
    royalty = collection.royalty(price)
    pool_share = floor_fen(mul(fee, collection.fee_to_pool_ratio))
    proceeds = price - fee - royalty
    legs = (
        (seller, proceeds),
        (fee_account, fee - pool_share),
        (pool_account, pool_share),
        (collection.issuer, royalty),
    )
    payments = tuple(Payment(asset, buyer, to, amt) for to, amt in legs if amt > ZERO)
    return Settlement(
        price,
        fee,
        pool_share,
        royalty,
        proceeds,
        asset,
        payments,
        (TokenMove(token, seller, buyer),),
    )


def primary_sale(
    registry: Registry,
    code: str,
    buyer: str,
    asset: Asset,
    *,
    at: float,
    ep_price: Decimal | None = None,
    item_no: str | None = None,
) -> Settlement:
    """Mint the next token to a buyer who pays the collection's price to its issuer.

    Paid in CNY or SP the amount is the price; paid in EP it is price / ``ep_price`` (CNY per
    EP) rounded *up* to the EP atom, so the issuer never receives less than the price's worth.
    """
    c = registry.collection(code)
    if asset not in c.accepted:
        raise AssetNotAccepted(f"{code} is not sold for {asset}")
    amount = c.price
    if asset is Asset.EP:
        if ep_price is None or ep_price <= 0:
            raise InvalidParameter("a sale for EP needs the current EP price")
        amount = ratio_floor(c.price, ep_price, _EP_ATOM)
        if mul(amount, ep_price) < c.price:
            amount += _EP_ATOM
    event = registry.mint(code, buyer, at=at, item_no=item_no, price=c.price, asset=asset)
    payments = (Payment(asset, buyer, c.issuer, amount),) if amount > ZERO else ()
    return Settlement(
        c.price,
        ZERO,
        ZERO,
        ZERO,
        amount,
        asset,
        payments,
        (TokenMove(event.token, None, buyer),),
        event,
    )


class Exchange:
    """Fixed-price listings over one registry."""

    def __init__(
        self,
        registry: Registry,
        *,
        fee_account: str = SystemAccount.REVENUE.value,
        pool_account: str = SystemAccount.POOL.value,
    ) -> None:
        self.registry = registry
        self._fee_account = fee_account
        self._pool_account = pool_account
        self._listings: dict[int, Listing] = {}
        self._open: dict[TokenRef, int] = {}
        self._last_id = 0

    def restore(self, listing: Listing, *, last_id: int | None = None) -> None:
        """A stored listing (a service rebuilds the ones a command touches); ``last_id``:
        the highest id issued so far, so the next listing continues the numbering."""
        self._listings[listing.id] = listing
        if listing.state is ListingState.OPEN:
            self._open[listing.token] = listing.id
        self._last_id = max(self._last_id, listing.id, last_id or 0)

    def restore_last_id(self, last_id: int) -> None:
        self._last_id = max(self._last_id, last_id)

    def listing(self, listing_id: int) -> Listing:
        try:
            return self._listings[listing_id]
        except KeyError:
            raise UnknownListing(f"no listing {listing_id}") from None

    def open_listings(self, code: str | None = None) -> list[Listing]:
        found = (self._listings[i] for i in self._open.values())
        return sorted(
            (x for x in found if code is None or x.token.code == code), key=lambda x: x.id
        )

    def list_token(
        self, caller: str, ref: TokenRef, price: Decimal | None = None, *, at: float
    ) -> Listing:
        """List a token at a fixed price; under automatic appreciation the price is set."""
        reg = self.registry
        c = reg.collection(ref.code)
        self._check_open(c)
        tok = reg.token(ref)
        if not reg.is_authorized(caller, ref):
            raise ERC721InsufficientApproval(f"{caller!r} may not list {ref}")
        reg.check_transfer(ref, tok.owner, None, at=at, sale=True)
        if c.appreciation_step is not None:
            fixed = c.next_price(tok.last_price)
            if price is not None and price != fixed:
                raise PriceFixed(f"{ref} resells at {fixed} (last price {tok.last_price} raised)")
            price = fixed
        if price is None or price <= 0:
            raise InvalidParameter("a listing needs a price above zero")
        whole_fen(price, "price")
        current = self._open.get(ref)
        if current is not None:
            old = self._listings[current]
            if self._stale_reason(old) is None:
                raise AlreadyListed(f"{ref} is already listed (listing {old.id})")
            self._close(old, ListingState.CANCELLED, at)
        self._last_id += 1
        listing = Listing(self._last_id, ref, tok.owner, caller, price, at, tok.uses_left)
        self._listings[listing.id] = listing
        self._open[ref] = listing.id
        return listing

    def cancel(self, caller: str, listing_id: int, *, at: float) -> Listing:
        """Withdraw an open listing: its seller, its lister, or whoever may move the token now."""
        listing = self._open_listing(listing_id)
        ref = listing.token
        allowed = caller in (listing.seller, listing.lister) or (
            self.registry.exists(ref) and self.registry.is_authorized(caller, ref)
        )
        if not allowed:
            raise ERC721InsufficientApproval(f"{caller!r} may not cancel listing {listing_id}")
        return self._close(listing, ListingState.CANCELLED, at)

    def buy(self, buyer: str, listing_id: int, asset: Asset, *, at: float) -> Settlement:
        """Buy a listed token; every check runs before anything changes."""
        listing = self._open_listing(listing_id)
        reg = self.registry
        c = reg.collection(listing.token.code)
        self._check_open(c)
        if asset not in c.accepted or asset not in SETTLEMENT_ASSETS:
            raise AssetNotAccepted(f"{c.code} trades in {_names(c.accepted & SETTLEMENT_ASSETS)}")
        reason = self._stale_reason(listing)
        if reason is not None:
            raise ListingStale(f"listing {listing_id} can no longer be honoured: {reason}")
        reg.check_transfer(listing.token, listing.seller, buyer, at=at, sale=True)
        s = settle(
            c,
            listing.price,
            asset,
            buyer=buyer,
            seller=listing.seller,
            token=listing.token,
            fee_account=self._fee_account,
            pool_account=self._pool_account,
        )
        event = reg.apply_sale(
            listing.token, listing.seller, buyer, at=at, price=listing.price, asset=asset
        )
        sold = self._close(listing, ListingState.SOLD, at)
        return replace(s, event=event, listing=sold)

    def _check_open(self, c: Collection) -> None:
        if c.exchange is not Mode.OPEN:
            why = "may only be gifted" if c.exchange is Mode.GIFT_ONLY else "is not traded"
            raise ExchangeClosed(f"{c.code} {why} (exchange mode {c.exchange})")

    def _open_listing(self, listing_id: int) -> Listing:
        listing = self.listing(listing_id)
        if listing.state is not ListingState.OPEN:
            raise ListingClosed(f"listing {listing_id} is {listing.state}")
        return listing

    def _stale_reason(self, listing: Listing) -> str | None:
        reg = self.registry
        if not reg.exists(listing.token):
            return "the token was burned"
        tok = reg.token(listing.token)
        if tok.owner != listing.seller:
            return "the token changed owner"
        if tok.uses_left != listing.uses_left:
            return "a use was redeemed since it was listed"
        if not reg.is_authorized(listing.lister, listing.token):
            return "the lister is no longer approved"
        return None

    def _close(self, listing: Listing, state: ListingState, at: float) -> Listing:
        closed = replace(listing, state=state, closed_at=at)
        self._listings[listing.id] = closed
        if self._open.get(listing.token) == listing.id:
            del self._open[listing.token]
        return closed


def _names(assets: frozenset[Asset]) -> str:
    return ", ".join(sorted(a.value for a in assets)) or "nothing"
