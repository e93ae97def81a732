"""Selling, redeeming and exchanging points, and buying them back from the treasury (R3-R6)."""

from __future__ import annotations

from decimal import Decimal

from tokenmall.domain.accounts import Asset, Member, SystemAccount
from tokenmall.domain.commands import BuyPoints, Exchange
from tokenmall.domain.economy.core import EconomyCore
from tokenmall.domain.pricing import points_bought, sale_value
from tokenmall.errors import InsufficientBalance, InvalidCommand
from tokenmall.money import floor_ep, floor_fen

__all__ = ["Trading"]


class Trading(EconomyCore):
    """R3-R6; :meth:`_sell` is also how a forced exit sells (R7)."""

    # ------------------------------------------------------------------ R3, R4

    def _sell_cmd(self, code: str, q: Decimal, *, to_wallet: bool) -> dict[str, Decimal]:
        m = self.member(code)
        if q <= 0:
            raise InvalidCommand("points to sell must be greater than zero")
        if floor_ep(q) != q:
            raise InvalidCommand("points have at most 8 decimal places")
        if q > m.ep:
            raise InsufficientBalance(f"member {code!r} holds {m.ep} EP, cannot sell {q}")
        payout = self._sell(m, q, to_wallet=to_wallet)
        self._touch(m)
        return {"payout": payout}

    def _sell(self, m: Member, q: Decimal, *, to_wallet: bool) -> Decimal:
        num, den = self.price_ratio()
        payout = sale_value(q, num, den, self.params.sell_fee)
        self._remember_empty_price(q)
        self._move(Asset.EP, m, SystemAccount.BURNED, q)
        if to_wallet:
            self._move(Asset.CNY, SystemAccount.POOL, SystemAccount.SP_RESERVE, payout)
            self._credit_sp(m, payout)
        else:
            self._move(Asset.CNY, SystemAccount.POOL, SystemAccount.REVENUE, payout)
        return payout

    # ------------------------------------------------------------------ R5, R6

    def _exchange(self, cmd: Exchange) -> dict[str, Decimal]:
        m = self.member(cmd.member)
        q = cmd.points
        if q <= 0 or floor_ep(q) != q:
            raise InvalidCommand("points to exchange must be > 0 with at most 8 decimal places")
        if q > m.ep:
            raise InsufficientBalance(f"member {cmd.member!r} holds {m.ep} EP, cannot exchange {q}")
        num, den = self.price_ratio()
        sp = sale_value(q, num, den, self.params.exchange_fee)
        self._move(Asset.EP, m, SystemAccount.TREASURY, q)
        # The platform backs the new SP from its revenue: the pool (and so the price) is untouched.
        self._move(Asset.CNY, SystemAccount.REVENUE, SystemAccount.SP_RESERVE, sp)
        self._credit_sp(m, sp)
        self._touch(m)
        return {"stable": sp}

    def _buy_points(self, cmd: BuyPoints) -> dict[str, Decimal]:
        m = self.member(cmd.member)
        s = cmd.stable
        if s <= 0 or floor_fen(s) != s:
            raise InvalidCommand("stable points must be > 0 and whole fen")
        if s > m.sp:
            raise InsufficientBalance(f"member {cmd.member!r} holds {m.sp} SP, cannot spend {s}")
        num, den = self.price_ratio()
        q = points_bought(s, num, den)
        if q <= 0:
            raise InvalidCommand(f"{s} SP buys less than one point atom at the current price")
        if q > self.treasury:
            # the treasury's balance is the platform's business, not the member's: say only
            # that this purchase does not fit (R6)
            raise InsufficientBalance(
                f"the treasury cannot sell {q} EP for {s} SP now; try a smaller amount later"
            )
        self._move(Asset.SP, m, SystemAccount.SP_ISSUANCE, s)
        self._move(Asset.CNY, SystemAccount.SP_RESERVE, SystemAccount.REVENUE, s)
        self._credit_ep(m, q, SystemAccount.TREASURY)
        self._touch(m)
        return {"points": q}
