"""The :class:`Economy`: every rule group put together, and the one entry point that applies a
command and then the exit cascade."""

from __future__ import annotations

from decimal import Decimal

from tokenmall.domain.commands import (
    BuyPoints,
    CloseDay,
    Command,
    Exchange,
    Join,
    Pay,
    PayoutResult,
    Purchase,
    Redeem,
    Refund,
    RewardGrant,
    RewardTakeBack,
    Sell,
    Settle,
    TokenSale,
    Withdraw,
)
from tokenmall.domain.economy.dayclose import DayClose
from tokenmall.domain.economy.orders import Orders
from tokenmall.domain.economy.wallet import Wallet
from tokenmall.errors import InvalidCommand

__all__ = ["Economy"]

_DECIMAL_FIELDS: dict[type, tuple[str, ...]] = {
    Purchase: ("amount", "pool_amount", "fund_amount"),
    Sell: ("points",),
    Redeem: ("points",),
    Exchange: ("points",),
    BuyPoints: ("stable",),
    CloseDay: (),
    Refund: ("amount",),
    Join: (),
    Pay: ("cny", "sp", "points"),
    Settle: ("pool_amount", "fund_amount"),
    Withdraw: ("amount", "fee"),
    PayoutResult: (),
    RewardGrant: ("amount",),
    RewardTakeBack: ("amount",),
    TokenSale: ("price", "proceeds", "fee", "pool_share", "royalty"),
}
# Stored atoms are 64-bit: 10^12 CNY at 4 places or EP at 8 places stays far inside that.
_MAX_DIGITS = 12


class Economy(Orders, DayClose, Wallet):
    """Applies commands to one tenant's state; see the package docstring."""

    # ------------------------------------------------------------------ dispatch

    def apply(self, cmd: Command) -> dict[str, Decimal]:
        """Apply one command, then the exit cascade (R7); return its own figures."""
        # NaN and infinities otherwise surface as decimal.InvalidOperation (or pass a "> 0"
        # check), not as the InvalidCommand every bad input must raise.
        for name in _DECIMAL_FIELDS[type(cmd)]:
            v = getattr(cmd, name)
            if v is not None and (not v.is_finite() or v.adjusted() >= _MAX_DIGITS):
                raise InvalidCommand(f"{name} must be a finite number below 10^12, got {v}")
        if isinstance(cmd, Purchase):
            out = self._purchase(cmd)
        elif isinstance(cmd, Sell):
            out = self._sell_cmd(cmd.member, cmd.points, to_wallet=True)
        elif isinstance(cmd, Redeem):
            out = self._sell_cmd(cmd.member, cmd.points, to_wallet=False)
        elif isinstance(cmd, Exchange):
            out = self._exchange(cmd)
        elif isinstance(cmd, BuyPoints):
            out = self._buy_points(cmd)
        elif isinstance(cmd, CloseDay):
            out = self._close_day(cmd.day)
        elif isinstance(cmd, Refund):
            out = self._refund(cmd)
        elif isinstance(cmd, Join):
            out = self._join(cmd)
        elif isinstance(cmd, Pay):
            out = self._pay(cmd)
        elif isinstance(cmd, Settle):
            out = self._settle(cmd)
        elif isinstance(cmd, Withdraw):
            out = self._withdraw(cmd)
        elif isinstance(cmd, PayoutResult):
            out = self._payout_result(cmd)
        elif isinstance(cmd, RewardGrant):
            out = self._reward_grant(cmd)
        elif isinstance(cmd, RewardTakeBack):
            out = self._reward_take_back(cmd)
        elif isinstance(cmd, TokenSale):
            out = self._token_sale(cmd)
        else:  # pragma: no cover - the union is closed
            raise InvalidCommand(f"unknown command {cmd!r}")
        out["exits"] = Decimal(self.run_exits())
        return out
