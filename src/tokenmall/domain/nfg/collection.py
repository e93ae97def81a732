"""An NFG collection: its supply, what each token stands for, and its transfer rules.

Two switches decide whether tokens may change hands, as Chinese platforms require:

* ``transfer_policy`` - what owners may do at all: ``off`` (tokens stay with whoever they
  were minted to), ``gift_only`` (转赠: a free transfer to another member, no sale) or
  ``open`` (gifts and sales on the exchange);
* ``exchange_mode`` - what the exchange offers for the collection, switched by the operator:
  ``open`` takes listings and buys, ``gift_only`` and ``off`` take neither (``gift_only`` says
  why: owners may still gift).  It may never be more open than the transfer policy - the
  exchange cannot sell what owners may not sell - so lowering it halts trading (停牌) without
  touching gifts.  Open listings cannot be bought while it is not ``open``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from tokenmall.domain.economy import Asset, SystemAccount
from tokenmall.errors import InvalidParameter
from tokenmall.money import FEN, ZERO, floor_fen, mul, ratio_floor

__all__ = [
    "BPS",
    "Collection",
    "Kind",
    "MetadataTemplate",
    "Mode",
    "whole_fen",
]

BPS = Decimal(10_000)
_ONE = Decimal(1)


class Kind(StrEnum):
    """What a token stands for."""

    ITEM = "item"  # a physical good with its own number (card number, bottle number)
    RIGHT = "right"  # a right with N uses and an optional expiry (visits, services)


class Mode(StrEnum):
    """Transfer policy and exchange mode, in increasing openness."""

    OFF = "off"
    GIFT_ONLY = "gift_only"
    OPEN = "open"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Mode.OFF: 0, Mode.GIFT_ONLY: 1, Mode.OPEN: 2}


@dataclass(frozen=True, slots=True)
class MetadataTemplate:
    """ERC-721 metadata; ``{serial}``, ``{code}`` and ``{item_no}`` are replaced per token.

    Plain replacement, not ``str.format``: an operator's template can never reach attributes.
    """

    name: str = "{code} #{serial}"
    description: str = ""
    image: str = ""
    attributes: tuple[tuple[str, str], ...] = ()

    @staticmethod
    def fill(text: str, code: str, serial: int, item_no: str | None) -> str:
        return (
            text.replace("{serial}", str(serial))
            .replace("{code}", code)
            .replace("{item_no}", item_no or "")
        )


@dataclass(frozen=True, slots=True)
class Collection:
    """One collection's rules; immutable, so a change of rules is a new recorded value."""

    code: str
    name: str
    max_supply: int
    price: Decimal  # primary price in CNY (whole fen)
    kind: Kind = Kind.ITEM
    uses: int = 0  # RIGHT: uses per token
    expires_at: float | None = None  # RIGHT: no use after this timestamp
    metadata: MetadataTemplate = field(default_factory=MetadataTemplate)
    accepted: frozenset[Asset] = frozenset({Asset.CNY, Asset.SP})
    issuer: str = SystemAccount.REVENUE.value  # receives primary sales and royalties
    royalty_bps: int = 0
    fee_bps: int = 0
    fee_to_pool_ratio: Decimal = ZERO  # share of each trading fee that goes into the EP pool
    transfer_policy: Mode = Mode.OFF
    exchange_mode: Mode | None = None  # None: the same as the transfer policy
    min_holding_seconds: float = 0.0
    real_name_only: bool = False
    daily_transfer_limit: int | None = None  # per sending member per day; None: no limit
    no_transfer_when_used: bool = True
    appreciation_step: Decimal | None = None  # e.g. 0.05: each resale at last price x 1.05

    def __post_init__(self) -> None:
        if not self.code or not self.code.isascii() or not self.code.replace("_", "").isalnum():
            raise InvalidParameter(
                f"collection code must be ASCII letters, digits, _: {self.code!r}"
            )
        if self.max_supply < 1:
            raise InvalidParameter("max_supply must be at least 1")
        whole_fen(self.price, "price")
        for what, bps in (("royalty_bps", self.royalty_bps), ("fee_bps", self.fee_bps)):
            if not 0 <= bps <= BPS:
                raise InvalidParameter(f"{what} must be between 0 and 10000")
        if self.royalty_bps + self.fee_bps > BPS:
            raise InvalidParameter("fee and royalty together may not exceed the price")
        if not ZERO <= self.fee_to_pool_ratio <= _ONE:
            raise InvalidParameter("fee_to_pool_ratio must be between 0 and 1")
        if not self.accepted:
            raise InvalidParameter("a collection accepts at least one asset")
        if self.kind is Kind.RIGHT and self.uses < 1:
            raise InvalidParameter("a right has at least one use")
        if self.kind is Kind.ITEM and (self.uses or self.expires_at is not None):
            raise InvalidParameter("uses and expiry belong to rights, not items")
        if self.min_holding_seconds < 0:
            raise InvalidParameter("min_holding_seconds must not be negative")
        if self.daily_transfer_limit is not None and self.daily_transfer_limit < 1:
            raise InvalidParameter("daily_transfer_limit is at least 1 (or None: no limit)")
        if self.exchange_mode is not None and self.exchange_mode.rank > self.transfer_policy.rank:
            raise InvalidParameter(
                f"exchange mode {self.exchange_mode} is more open than the transfer policy "
                f"{self.transfer_policy}"
            )
        if self.appreciation_step is not None and self.appreciation_step <= 0:
            raise InvalidParameter("appreciation_step must be positive")

    @property
    def exchange(self) -> Mode:
        """The effective exchange mode."""
        return self.transfer_policy if self.exchange_mode is None else self.exchange_mode

    def fee(self, price: Decimal) -> Decimal:
        """Trading fee: floor2(price x fee_bps / 10000)."""
        return ratio_floor(mul(price, Decimal(self.fee_bps)), BPS, FEN)

    def royalty(self, price: Decimal) -> Decimal:
        """Issuer royalty (ERC-2981 style): floor2(price x royalty_bps / 10000)."""
        return ratio_floor(mul(price, Decimal(self.royalty_bps)), BPS, FEN)

    def next_price(self, last_price: Decimal) -> Decimal:
        """The fixed resale price under automatic appreciation: floor2(last x (1 + step))."""
        if self.appreciation_step is None:
            raise InvalidParameter(f"collection {self.code} has no automatic appreciation")
        return floor_fen(mul(last_price, _ONE + self.appreciation_step))


def whole_fen(amount: Decimal, what: str) -> None:
    """Refuse an amount that is not a non-negative whole number of fen."""
    if not amount.is_finite() or amount < 0 or amount % FEN:
        raise InvalidParameter(f"{what} must be a non-negative amount in whole fen: {amount}")
