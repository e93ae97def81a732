"""The commands the economy applies (R1-R11, rewards): what a caller asks, as frozen data.
Each is applied by :meth:`tokenmall.domain.economy.Economy.apply` under an idempotency key."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tokenmall.money import (
    ZERO,
)

__all__ = [
    "BuyPoints",
    "CloseDay",
    "Command",
    "Exchange",
    "Join",
    "Pay",
    "PayoutResult",
    "Purchase",
    "Redeem",
    "Refund",
    "RewardGrant",
    "RewardTakeBack",
    "Sell",
    "Settle",
    "TokenSale",
    "Withdraw",
]


@dataclass(frozen=True, slots=True)
class Purchase:
    """R1/R2: a paid and settled order of ``amount`` CNY."""

    order: str
    member: str
    amount: Decimal
    referrer: str | None = None
    pool_amount: Decimal | None = None  # per-product override of c (CNY per order)
    fund_amount: Decimal | None = None  # per-product override of d


@dataclass(frozen=True, slots=True)
class Sell:
    """R3: sell ``points`` back to the pool for SP."""

    member: str
    points: Decimal


@dataclass(frozen=True, slots=True)
class Redeem:
    """R4: a sell whose payout pays for ``order`` instead of going to the wallet."""

    member: str
    points: Decimal
    order: str


@dataclass(frozen=True, slots=True)
class Exchange:
    """R5: ``points`` EP to the treasury for SP."""

    member: str
    points: Decimal


@dataclass(frozen=True, slots=True)
class BuyPoints:
    """R6: ``stable`` SP buy EP out of the treasury."""

    member: str
    stable: Decimal


@dataclass(frozen=True, slots=True)
class CloseDay:
    """R9: pay the dividend fund out by water-filling, then run exits."""

    day: str


@dataclass(frozen=True, slots=True)
class Refund:
    """R11: take back what a settled order granted; ``amount`` None = what is left to refund."""

    order: str
    amount: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Join:
    """A member joins, optionally under a referrer (the link is permanent)."""

    member: str
    referrer: str | None = None


@dataclass(frozen=True, slots=True)
class Pay:
    """An order is paid: CNY from outside, SP from the wallet and EP redeemed (R4) go to escrow.

    Rewards wait for :class:`Settle`; a refund before then returns the money and nothing else.
    """

    order: str
    member: str
    cny: Decimal = ZERO
    sp: Decimal = ZERO
    points: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class Settle:
    """The return window closed: the escrowed order becomes a purchase (R1) on what is left.

    Only the CNY and SP parts earn rewards; the part paid with EP already came from the pool.
    """

    order: str
    pool_amount: Decimal | None = None
    fund_amount: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Withdraw:
    """Hold ``amount`` SP of a wallet for a payout; ``fee`` of it goes to the platform."""

    request: str
    member: str
    amount: Decimal
    fee: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class PayoutResult:
    """The provider paid a held withdrawal (``paid``) or it was rejected / failed (released)."""

    request: str
    paid: bool


@dataclass(frozen=True, slots=True)
class RewardGrant:
    """A marketing model's reward (or a group buy's compensation, subsidy, commission):
    ``amount`` SP to ``member``, backed by CNY from the platform's revenue share, never from
    the pool or the dividend fund.  ``model`` names who pays it (the audit trail's reason)."""

    member: str
    amount: Decimal
    model: str


@dataclass(frozen=True, slots=True)
class RewardTakeBack:
    """Take back ``amount`` SP of a reward (a refund of the order that earned it): what the
    member still holds goes back to revenue, the rest becomes ``sp_debt``, set off against
    the member's next SP credits."""

    member: str
    amount: Decimal
    model: str


@dataclass(frozen=True, slots=True)
class TokenSale:
    """An NFG paid for in SP (a primary sale or an exchange trade): ``buyer`` pays ``price``
    SP; ``proceeds`` go to ``seller`` (a member; None: the platform's revenue), the ``fee`` to
    revenue less ``pool_share``, which enters the EP pool, and the ``royalty`` to ``issuer``
    (a member; None: revenue).  The parts must add up to the price, so the command moves
    value and never creates it; ``ref`` names the token and the sale (the audit trail).

    ``order``: the buyer paid through the order flow (CNY, or its SP/EP mix) and the price
    comes out of that paid order's escrow instead of their SP wallet; the order is settled by
    it (a trade between members is no purchase from the mall: it earns no reward)."""

    ref: str
    buyer: str
    price: Decimal
    seller: str | None
    proceeds: Decimal
    fee: Decimal = ZERO
    pool_share: Decimal = ZERO
    royalty: Decimal = ZERO
    issuer: str | None = None
    order: str | None = None


Command = (
    Purchase
    | Sell
    | Redeem
    | Exchange
    | BuyPoints
    | CloseDay
    | Refund
    | Join
    | Pay
    | Settle
    | Withdraw
    | PayoutResult
    | RewardGrant
    | RewardTakeBack
    | TokenSale
)
