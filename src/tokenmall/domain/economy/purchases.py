"""Purchases (R1, R2): the pool's and the dividend fund's shares of an order, the points issued
to the buyer and the referrer at the price before the purchase, and the exit quota."""

from __future__ import annotations

from decimal import Decimal

from tokenmall.domain.accounts import Asset, Grant, Member, SystemAccount
from tokenmall.domain.commands import Purchase
from tokenmall.domain.economy.core import EP_EXP, EconomyCore
from tokenmall.errors import IdempotencyConflict, InvalidCommand
from tokenmall.money import ZERO, floor_cny, floor_fen, mul, ratio_floor

__all__ = ["Purchases"]


class Purchases(EconomyCore):
    """R1 and R2; also the reward of an order settled from escrow (:class:`Orders`)."""

    def _purchase(self, cmd: Purchase) -> dict[str, Decimal]:
        x = cmd.amount
        if x <= 0:
            raise InvalidCommand("purchase amount must be greater than zero")
        if floor_fen(x) != x:
            raise InvalidCommand("purchase amount must be whole fen (0.01)")
        if cmd.referrer is not None and cmd.referrer == cmd.member:
            raise InvalidCommand("a member cannot refer themselves")
        if cmd.order in self.grants or (
            self.source is not None and self.source.fetch_grant(cmd.order) is not None
        ):
            raise IdempotencyConflict(f"order {cmd.order!r} was already settled")
        # A negative override used to pass the c + d <= x check and only fail in _move, after
        # the buyer had been created: refuse it here, before anything changes.
        for override in (cmd.pool_amount, cmd.fund_amount):
            if override is not None and override < 0:
                raise InvalidCommand("pool and dividend amounts must not be negative")
        p = self.params
        c = floor_cny(cmd.pool_amount if cmd.pool_amount is not None else mul(x, p.pool_rate))
        d = floor_cny(cmd.fund_amount if cmd.fund_amount is not None else mul(x, p.dividend_rate))
        if c + d > x:
            raise InvalidCommand("pool and dividend amounts exceed the order amount")
        buyer = self._find(cmd.member)
        if (
            buyer is not None
            and cmd.referrer is not None
            and buyer.referrer not in (None, cmd.referrer)
        ):
            raise InvalidCommand(
                f"member {cmd.member!r} already has referrer {buyer.referrer!r}; "
                "links are permanent"
            )
        if buyer is not None and buyer.referrer is None and cmd.referrer is not None:
            buyer.referrer = cmd.referrer  # first binding of a member who joined unreferred
        referrer: Member | None = None
        ref_code = buyer.referrer if buyer is not None else cmd.referrer
        if ref_code is not None:
            referrer = self._find(ref_code) or self._create(ref_code, None)
        if buyer is None:
            buyer = self._create(cmd.member, cmd.referrer)

        return self._reward(
            cmd.order,
            buyer,
            referrer,
            x=x,
            c=c,
            d=d,
            source=SystemAccount.WORLD,
            total=x,
            cny_part=x,
        )

    def _reward(
        self,
        order: str,
        buyer: Member,
        referrer: Member | None,
        *,
        x: Decimal,
        c: Decimal,
        d: Decimal,
        source: str,
        total: Decimal,
        cny_part: Decimal,
    ) -> dict[str, Decimal]:
        """R1/R2 once validated: move x from ``source``, issue EP, grant quota, record it."""
        p = self.params
        num, den = self.price_ratio()  # price before c enters the pool
        left = p.total_supply - self.issued
        ep_buyer = min(ratio_floor(mul(c, p.gift_ratio, den), num, EP_EXP), max(left, ZERO))
        left -= ep_buyer
        ep_ref = ZERO
        if referrer is not None:
            ep_ref = min(ratio_floor(mul(c, p.referral_ratio, den), num, EP_EXP), max(left, ZERO))

        self._move(Asset.CNY, source, SystemAccount.POOL, c)
        self._move(Asset.CNY, source, SystemAccount.DIVIDEND_FUND, d)
        self._move(Asset.CNY, source, SystemAccount.REVENUE, x - c - d)
        self._credit_ep(buyer, ep_buyer, SystemAccount.ISSUANCE)
        if referrer is not None:
            self._credit_ep(referrer, ep_ref, SystemAccount.ISSUANCE)
            self._touch(referrer)
        quota = floor_cny(mul(x, p.quota_multiplier))
        buyer.spent += x
        buyer.quota += quota
        buyer.exited = False
        self._touch(buyer)
        g = Grant(
            order,
            buyer.code,
            referrer.code if referrer else None,
            x,
            c,
            d,
            ep_buyer,
            ep_ref,
            quota,
            new=True,
            total=total,
            cny_part=cny_part,
        )
        self.grants[order] = g
        self.dirty_grants.add(order)
        return {"points": ep_buyer, "referral_points": ep_ref, "quota": quota}
