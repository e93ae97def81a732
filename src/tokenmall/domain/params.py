"""Tenant parameters (docs/RULES.md section 1) with their defaults and validation."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from decimal import Decimal
from functools import lru_cache
from itertools import pairwise
from typing import Any, Literal

from tokenmall.errors import InvalidParameter
from tokenmall.money import parse_amount

__all__ = ["TenantParams"]

DividendWeight = Literal["points", "shares"]

_RATES_AT_MOST_ONE = (
    "pool_rate",
    "dividend_rate",
    "gift_ratio",
    "referral_ratio",
    "sell_fee",
    "exchange_fee",
)


@dataclass(frozen=True, slots=True)
class TenantParams:
    """One tenant's economic model; immutable so a change is always a new, recorded value."""

    pool_rate: Decimal = Decimal("0.30")
    dividend_rate: Decimal = Decimal("0.30")
    gift_ratio: Decimal = Decimal("0.70")
    referral_ratio: Decimal = Decimal("0.10")
    initial_price: Decimal = Decimal("1")
    total_supply: Decimal = Decimal("100000000")
    sell_fee: Decimal = Decimal("0.10")
    exchange_fee: Decimal = Decimal("0")
    quota_multiplier: Decimal = Decimal("2")
    dividend_weight: DividendWeight = "points"
    share_unit: Decimal = Decimal("200")
    # --- the service's rules (issue 3): return window, unpaid-order expiry, withdrawals
    settle_days: Decimal = Decimal("7")  # days after delivery; 0 = settle at payment (R11)
    order_ttl_minutes: Decimal = Decimal("15")  # an unpaid order releases its stock after this
    withdraw_min: Decimal = Decimal("1")  # CNY
    withdraw_fee_rate: Decimal = Decimal("0")  # of the amount, floored to the fen
    # --- read models (R10): levels by EP held, the top-N board, partner status
    level_thresholds: str = "0,100,1000,10000"  # EP held to reach level 1, 2, 3, ...
    partner_threshold: Decimal = Decimal("10000")  # EP held to be a partner (合伙人)
    board_size: Decimal = Decimal("10")  # "前十名"

    def __post_init__(self) -> None:
        for name in _RATES_AT_MOST_ONE:
            v = getattr(self, name)
            if v > 1:
                raise InvalidParameter(f"{name} must be between 0 and 1, got {v}")
        if self.pool_rate + self.dividend_rate > 1:
            raise InvalidParameter("pool_rate + dividend_rate must not exceed 1")
        # Issuing more than c/p of EP value per purchase would lower the price (R8): a purchase
        # adds c to the pool and (gift + referral)*c/p points, so the sum must stay <= 1.
        if self.gift_ratio + self.referral_ratio > 1:
            raise InvalidParameter("gift_ratio + referral_ratio must not exceed 1")
        if self.initial_price <= 0:
            raise InvalidParameter("initial_price must be greater than zero")
        if self.share_unit <= 0:
            raise InvalidParameter("share_unit must be greater than zero")
        if self.withdraw_fee_rate > 1:
            raise InvalidParameter("withdraw_fee_rate must be between 0 and 1")
        if self.order_ttl_minutes <= 0:
            raise InvalidParameter("order_ttl_minutes must be greater than zero")
        if self.board_size != int(self.board_size) or self.board_size < 1:
            raise InvalidParameter("board_size must be a whole number >= 1")
        if self.dividend_weight not in ("points", "shares"):
            raise InvalidParameter("dividend_weight must be 'points' or 'shares'")

    @classmethod
    def from_mapping(cls, data: dict[str, Any] | None) -> TenantParams:
        """Build from user input (strings); unknown names and bad numbers are refused."""
        if not data:
            return cls()
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidParameter(f"unknown parameter(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for key, raw in data.items():
            if key == "level_thresholds":
                values[key] = _levels(raw)
                continue
            if key == "dividend_weight":
                if raw not in ("points", "shares"):
                    raise InvalidParameter("dividend_weight must be 'points' or 'shares'")
                values[key] = raw
                continue
            try:
                values[key] = parse_amount(raw, what=key)
            except ValueError as exc:
                raise InvalidParameter(str(exc)) from None
        return replace(cls(), **values)

    @staticmethod
    def from_json(raw: str) -> TenantParams:
        """The parameters as stored (JSON of :meth:`to_mapping`), parsed once per distinct text.

        Every ledger transaction and many reads start from the tenant's stored row; parsing
        and validating it again each time cost about a tenth of a one-command transaction.
        Safe to share: the instance is frozen.
        """
        return _from_json(raw)

    def levels(self) -> tuple[Decimal, ...]:
        """The level thresholds as Decimals, ascending."""
        return tuple(Decimal(x) for x in self.level_thresholds.split(","))

    def to_mapping(self) -> dict[str, str]:
        """Decimal strings, for storage and the API."""
        return {k: str(v) for k, v in asdict(self).items()}


def _levels(raw: object) -> str:
    """Validate "0,100,1000": ascending non-negative decimals, stored in that canonical text."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidParameter("level_thresholds must be a comma-separated list of numbers")
    try:
        vals = [parse_amount(x, what="level threshold") for x in raw.split(",")]
    except ValueError as exc:
        raise InvalidParameter(str(exc)) from None
    if any(b <= a for a, b in pairwise(vals)):
        raise InvalidParameter("level_thresholds must be strictly ascending")
    return ",".join(str(v) for v in vals)


@lru_cache(maxsize=1024)
def _from_json(raw: str) -> TenantParams:
    return TenantParams.from_mapping(json.loads(raw))
