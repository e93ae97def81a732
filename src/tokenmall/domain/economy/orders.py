"""Orders paid into escrow and settled later (R4), members joining, and refunds (R11)."""

from __future__ import annotations

from decimal import Decimal

from tokenmall.domain.accounts import Asset, Escrow, Grant, Member, SystemAccount
from tokenmall.domain.commands import Join, Pay, Refund, Settle
from tokenmall.domain.economy.core import EP_EXP
from tokenmall.domain.economy.purchases import Purchases
from tokenmall.domain.pricing import sale_value
from tokenmall.errors import (
    IdempotencyConflict,
    InsufficientBalance,
    InvalidCommand,
    NotFound,
    UnknownMember,
)
from tokenmall.money import CNY_PLACES, ZERO, floor_cny, floor_ep, floor_fen, mul, ratio_floor

__all__ = ["Orders"]

_FEN_EXP = Decimal("0.01")
_CNY_EXP = Decimal(1).scaleb(-CNY_PLACES)


class Orders(Purchases):
    """Escrow, settlement and refunds; a settlement rewards as a purchase does (R1, R2)."""

    # ------------------------------------------------------------------ orders (R4, R11)

    def _join(self, cmd: Join) -> dict[str, Decimal]:
        if cmd.referrer is not None and cmd.referrer == cmd.member:
            raise InvalidCommand("a member cannot refer themselves")
        m = self._find(cmd.member)
        if m is not None:
            if cmd.referrer is not None and m.referrer not in (None, cmd.referrer):
                raise InvalidCommand(
                    f"member {cmd.member!r} already has referrer {m.referrer!r}; "
                    "links are permanent"
                )
            if m.referrer is None and cmd.referrer is not None:
                m.referrer = cmd.referrer
                self.dirty.add(m.code)
            return {"created": ZERO}
        if cmd.referrer is not None and self._find(cmd.referrer) is None:
            self._create(cmd.referrer, None)
        self._create(cmd.member, cmd.referrer)
        return {"created": Decimal(1)}

    def _pay(self, cmd: Pay) -> dict[str, Decimal]:
        if (
            self._escrow(cmd.order) is not None
            or cmd.order in self.grants
            or (self.source is not None and self.source.fetch_grant(cmd.order) is not None)
        ):
            raise IdempotencyConflict(f"order {cmd.order!r} was already paid")
        for name, v in (("cny", cmd.cny), ("sp", cmd.sp)):
            if v < 0 or floor_fen(v) != v:
                raise InvalidCommand(f"{name} must be >= 0 and whole fen")
        if cmd.points < 0 or floor_ep(cmd.points) != cmd.points:
            raise InvalidCommand("points must be >= 0 with at most 8 decimal places")
        if cmd.cny + cmd.sp + cmd.points <= 0:
            raise InvalidCommand("a payment must pay something")
        m = self._find(cmd.member)
        if m is None:
            if cmd.sp > 0 or cmd.points > 0:
                raise UnknownMember(f"unknown member {cmd.member!r}")
            m = self._create(cmd.member, None)
        if cmd.sp > m.sp:
            raise InsufficientBalance(f"member {cmd.member!r} holds {m.sp} SP, {cmd.sp} asked")
        if cmd.points > m.ep:
            raise InsufficientBalance(f"member {cmd.member!r} holds {m.ep} EP, {cmd.points} asked")
        ep_value = ZERO
        if cmd.points > 0:
            num, den = self.price_ratio()
            ep_value = sale_value(cmd.points, num, den, self.params.sell_fee)
        # Points worth less than a fen, paid alone, used to pass the check above and leave an
        # escrow worth 0 that Settle and a refund then divide by (decimal.InvalidOperation).
        if cmd.cny + cmd.sp + ep_value <= 0:
            raise InvalidCommand("a payment must be worth at least one fen")
        if cmd.points > 0:
            self._remember_empty_price(cmd.points)
            self._move(Asset.EP, m, SystemAccount.BURNED, cmd.points)
            self._move(Asset.CNY, SystemAccount.POOL, SystemAccount.ESCROW, ep_value)
        self._move(Asset.CNY, SystemAccount.WORLD, SystemAccount.ESCROW, cmd.cny)
        if cmd.sp > 0:
            self._move(Asset.SP, m, SystemAccount.SP_ISSUANCE, cmd.sp)
            self._move(Asset.CNY, SystemAccount.SP_RESERVE, SystemAccount.ESCROW, cmd.sp)
        self._touch(m)
        esc = Escrow(cmd.order, m.code, cmd.cny, cmd.sp, cmd.points, ep_value, new=True)
        self.escrows[cmd.order] = esc
        self.dirty_escrows.add(cmd.order)
        return {"total": esc.total, "ep_value": ep_value}

    def _void(self, esc: Escrow, amount: Decimal | None) -> dict[str, Decimal]:
        """Refund before settlement: money back in the mix it came, no reward to take back."""
        total = esc.total
        left = total - esc.refunded
        r = left if amount is None else amount
        if r <= 0 or floor_fen(r) != r:
            raise InvalidCommand("refund amount must be > 0 and whole fen")
        if r > left:
            raise InvalidCommand(f"order {esc.order!r} has only {left} left to refund")
        after = esc.refunded + r
        cny_back = ratio_floor(mul(esc.cny, after), total, _FEN_EXP) - ratio_floor(
            mul(esc.cny, esc.refunded), total, _FEN_EXP
        )
        m = self.member(esc.member)
        self._move(Asset.CNY, SystemAccount.ESCROW, SystemAccount.WORLD, cny_back)
        if r > cny_back:
            self._move(Asset.CNY, SystemAccount.ESCROW, SystemAccount.SP_RESERVE, r - cny_back)
            self._credit_sp(m, r - cny_back)
            self._touch(m)
        esc.refunded = after
        self.dirty_escrows.add(esc.order)
        return {"refunded": r, "cny_back": cny_back}

    def _settle(self, cmd: Settle) -> dict[str, Decimal]:
        esc = self._escrow(cmd.order)
        if esc is None:
            raise NotFound(f"no paid order {cmd.order!r}")
        if esc.settled:
            raise IdempotencyConflict(f"order {cmd.order!r} was already settled")
        for override in (cmd.pool_amount, cmd.fund_amount):
            if override is not None and override < 0:
                raise InvalidCommand("pool and dividend amounts must not be negative")
        total = esc.total
        left = total - esc.refunded
        # What is left of each part after pre-settlement refunds (cut down: the rest stays in
        # escrow's rounding and goes to revenue below).
        base = ratio_floor(mul(esc.cny + esc.sp, left), total, _FEN_EXP)
        cny_left = ratio_floor(mul(esc.cny, left), total, _FEN_EXP)
        p = self.params
        c = floor_cny(cmd.pool_amount if cmd.pool_amount is not None else mul(base, p.pool_rate))
        d = floor_cny(
            cmd.fund_amount if cmd.fund_amount is not None else mul(base, p.dividend_rate)
        )
        if c + d > base:
            raise InvalidCommand("pool and dividend amounts exceed the rewarded amount")
        buyer = self.member(esc.member)
        referrer = None
        if buyer.referrer is not None:
            referrer = self._find(buyer.referrer) or self._create(buyer.referrer, None)
        esc.settled = True
        self.dirty_escrows.add(esc.order)
        rest = left - base  # the EP-paid part: the merchant's revenue, no reward
        self._move(Asset.CNY, SystemAccount.ESCROW, SystemAccount.REVENUE, rest)
        if base <= 0:
            # Paid entirely with points: no reward, but a grant so a later refund finds it
            # (the money goes back as SP, out of revenue, like any non-CNY part).
            g = Grant(
                esc.order,
                buyer.code,
                None,
                ZERO,
                ZERO,
                ZERO,
                ZERO,
                ZERO,
                ZERO,
                new=True,
                total=left,
                cny_part=cny_left,
            )
            self.grants[esc.order] = g
            self.dirty_grants.add(esc.order)
            return {"points": ZERO, "referral_points": ZERO, "quota": ZERO}
        return self._reward(
            esc.order,
            buyer,
            referrer,
            x=base,
            c=c,
            d=d,
            source=SystemAccount.ESCROW,
            total=left,
            cny_part=cny_left,
        )

    # ------------------------------------------------------------------ R11

    def _refund(self, cmd: Refund) -> dict[str, Decimal]:
        esc = self._escrow(cmd.order)
        if esc is not None and not esc.settled:
            return self._void(esc, cmd.amount)
        g = self.grants.get(cmd.order)
        if g is None and self.source is not None:
            g = self.source.fetch_grant(cmd.order)
            if g is not None:
                self.grants[g.order] = g
        if g is None:
            raise NotFound(f"no paid order {cmd.order!r}")
        total = g.total if g.total is not None else g.amount
        cny_total = g.cny_part if g.cny_part is not None else g.amount
        left = total - g.refunded
        r = left if cmd.amount is None else cmd.amount
        if r <= 0 or floor_fen(r) != r:
            raise InvalidCommand("refund amount must be > 0 and whole fen")
        if r > left:
            raise InvalidCommand(f"order {cmd.order!r} has only {left} left to refund")
        # Cumulative take-back after this refund is floor(grant * refunded_after / total), so
        # partial refunds add up to exactly what the order granted once it is fully refunded.
        before, after = g.refunded, g.refunded + r

        def part(amount: Decimal, exp: Decimal) -> Decimal:
            return ratio_floor(mul(amount, after), total, exp) - ratio_floor(
                mul(amount, before), total, exp
            )

        buyer = self.member(g.member)
        take_buyer = part(g.ep_member, EP_EXP)
        take_ref = ZERO
        referrer = None
        if g.referrer is not None:
            referrer = self.member(g.referrer)
            take_ref = part(g.ep_referrer, EP_EXP)
        pool_part = part(g.pool_in, _CNY_EXP)
        quota_part = part(g.quota, _CNY_EXP)
        spent_part = part(g.amount, _CNY_EXP)
        cny_back = part(cny_total, _FEN_EXP)

        num, den = self.price_ratio()
        burned = ZERO
        for who, take in ((buyer, take_buyer), (referrer, take_ref)):
            if who is None or take <= 0:
                continue
            burn = min(take, who.ep)
            if burn > 0:
                # if this empties circulation, the price is the one the refund started from:
                # the buyer's points may be gone already and the pool gives back below
                self._remember_empty_price(burn, (num, den))
                self._move(Asset.EP, who, SystemAccount.BURNED, burn)
                burned += burn
            who.ep_debt += take - burn
            self._touch(who)
        back = min(pool_part, ratio_floor(mul(burned, num), den, _FEN_EXP), r)
        # The pool's share goes out first, to the payer's account, then the platform's revenue
        # covers the rest; what was paid in SP or EP comes back as SP.
        pool_to_world = min(back, cny_back)
        self._move(Asset.CNY, SystemAccount.POOL, SystemAccount.WORLD, pool_to_world)
        self._move(Asset.CNY, SystemAccount.REVENUE, SystemAccount.WORLD, cny_back - pool_to_world)
        self._refund_as_sp(buyer, r - cny_back, from_pool=back - pool_to_world)
        buyer.quota = max(ZERO, buyer.quota - quota_part)
        buyer.spent = max(ZERO, buyer.spent - spent_part)
        self._touch(buyer)
        g.refunded += r
        self.dirty_grants.add(g.order)
        return {"burned": burned, "pool_back": back, "debt": buyer.ep_debt}

    def _refund_as_sp(self, m: Member, amount: Decimal, *, from_pool: Decimal) -> None:
        if amount <= 0:
            return
        self._move(Asset.CNY, SystemAccount.POOL, SystemAccount.SP_RESERVE, from_pool)
        self._move(Asset.CNY, SystemAccount.REVENUE, SystemAccount.SP_RESERVE, amount - from_pool)
        self._credit_sp(m, amount)
        self._touch(m)
