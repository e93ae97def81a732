"""The economy's accounts and the state it keeps per member and per order: what the rules
(:mod:`tokenmall.domain.economy`) move value between.  Plain data, shared with the store."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from tokenmall.money import (
    ZERO,
    ratio,
)

__all__ = [
    "NON_NEGATIVE",
    "Asset",
    "Escrow",
    "Grant",
    "Member",
    "PayoutHold",
    "SystemAccount",
    "Transfer",
]


class Asset(StrEnum):
    CNY = "CNY"
    EP = "EP"
    SP = "SP"


class SystemAccount(StrEnum):
    """The tenant's own accounts.  Member wallets are ``m:<member number>``."""

    WORLD = "world"  # CNY paid in from outside and paid back out (payments, refunds)
    REVENUE = "revenue"  # the platform's share of sales; may go negative (the platform's equity)
    POOL = "pool"  # CNY reserve backing every circulating EP
    DIVIDEND_FUND = "dividend_fund"  # today's dividend money plus the carried remainder
    SP_RESERVE = "sp_reserve"  # CNY that backs every SP in members' wallets, 1:1
    ISSUANCE = "issuance"  # EP source; minus its balance is the total ever issued
    BURNED = "burned"  # EP sink
    TREASURY = "treasury"  # EP taken in by exchange to SP, sold again for SP
    SP_ISSUANCE = "sp_issuance"  # SP source/sink
    ESCROW = "escrow"  # CNY of paid orders waiting for settlement
    PAYOUT_HOLD = "payout_hold"  # CNY of withdrawals waiting for the provider


# Accounts that hold real value and so may never go negative.
NON_NEGATIVE: frozenset[tuple[str, Asset]] = frozenset(
    {
        (SystemAccount.POOL, Asset.CNY),
        (SystemAccount.DIVIDEND_FUND, Asset.CNY),
        (SystemAccount.SP_RESERVE, Asset.CNY),
        (SystemAccount.TREASURY, Asset.EP),
        (SystemAccount.BURNED, Asset.EP),
        (SystemAccount.ESCROW, Asset.CNY),
        (SystemAccount.PAYOUT_HOLD, Asset.CNY),
    }
)


@dataclass(slots=True, frozen=True)
class Transfer:
    """One balanced movement: ``amount`` of ``asset`` leaves ``debit`` and reaches ``credit``."""

    asset: Asset
    debit: str
    credit: str
    amount: Decimal


@dataclass(slots=True, eq=False)
class Member:
    """A member's wallet and reward state.  ``no`` is the per-tenant number (tie-breaker)."""

    code: str
    no: int
    referrer: str | None = None
    ep: Decimal = ZERO
    sp: Decimal = ZERO
    quota: Decimal = ZERO
    spent: Decimal = ZERO
    dividends: Decimal = ZERO
    ep_debt: Decimal = ZERO
    # SP a reward take-back could not find in the wallet: set off against the next SP credits
    sp_debt: Decimal = ZERO
    exited: bool = False
    new: bool = False
    version: int = 0

    @property
    def account(self) -> str:
        return f"m:{self.no}"

    def trigger(self) -> Decimal | None:
        """The price at which this member must exit (quota / EP), or None if never due."""
        if self.spent <= 0 or self.ep <= 0:
            return None
        return ratio(self.quota, self.ep)


@dataclass(slots=True, eq=False)
class Grant:
    """What a settled order gave, so a refund can take exactly that back."""

    order: str
    member: str
    referrer: str | None
    amount: Decimal
    pool_in: Decimal
    fund_in: Decimal
    ep_member: Decimal
    ep_referrer: Decimal
    quota: Decimal
    refunded: Decimal = ZERO
    new: bool = False
    # The order's total (CNY + SP + value of EP redeemed) and its CNY part: a refund returns
    # money in the mix it was paid (CNY to the payer's account, the rest as SP).  None = amount.
    total: Decimal | None = None
    cny_part: Decimal | None = None

    def __post_init__(self) -> None:
        if self.total is None:
            self.total = self.amount
        if self.cny_part is None:
            self.cny_part = self.amount


@dataclass(slots=True, eq=False)
class Escrow:
    """A paid order's money, held until the order settles or is refunded (R11)."""

    order: str
    member: str
    cny: Decimal
    sp: Decimal
    ep_points: Decimal
    ep_value: Decimal
    refunded: Decimal = ZERO
    settled: bool = False
    new: bool = False

    @property
    def total(self) -> Decimal:
        return self.cny + self.sp + self.ep_value


@dataclass(slots=True, eq=False)
class PayoutHold:
    """SP taken from a wallet for a withdrawal, until the provider pays it or it is released."""

    request: str
    member: str
    amount: Decimal
    fee: Decimal
    status: str = "held"  # held | paid | released
    new: bool = False
