"""The SP wallet's own moves: withdrawals and their payout results, the marketing models'
rewards and take-backs, and NFG token sales paid in SP."""

from __future__ import annotations

from decimal import Decimal

from tokenmall.domain.accounts import Asset, Member, PayoutHold, SystemAccount
from tokenmall.domain.commands import PayoutResult, RewardGrant, RewardTakeBack, TokenSale, Withdraw
from tokenmall.domain.economy.core import EconomyCore
from tokenmall.errors import IdempotencyConflict, InsufficientBalance, InvalidCommand, NotFound
from tokenmall.money import ZERO, floor_fen

__all__ = ["Wallet"]


class Wallet(EconomyCore):
    """Withdrawals, model rewards and token sales: SP in and out of members' wallets."""

    # ------------------------------------------------------------------ withdrawals

    def _hold(self, request: str) -> PayoutHold | None:
        h = self.holds.get(request)
        if h is None and self.source is not None:
            h = self.source.fetch_hold(request)
            if h is not None:
                self.holds[request] = h
        return h

    def _withdraw(self, cmd: Withdraw) -> dict[str, Decimal]:
        if self._hold(cmd.request) is not None:
            raise IdempotencyConflict(f"withdrawal {cmd.request!r} already exists")
        m = self.member(cmd.member)
        if cmd.amount <= 0 or floor_fen(cmd.amount) != cmd.amount:
            raise InvalidCommand("withdrawal amount must be > 0 and whole fen")
        if cmd.fee < 0 or floor_fen(cmd.fee) != cmd.fee or cmd.fee >= cmd.amount:
            raise InvalidCommand("fee must be whole fen, >= 0 and below the amount")
        if cmd.amount > m.sp:
            raise InsufficientBalance(
                f"member {cmd.member!r} holds {m.sp} SP, cannot withdraw {cmd.amount}"
            )
        self._move(Asset.SP, m, SystemAccount.SP_ISSUANCE, cmd.amount)
        self._move(
            Asset.CNY, SystemAccount.SP_RESERVE, SystemAccount.PAYOUT_HOLD, cmd.amount - cmd.fee
        )
        self._move(Asset.CNY, SystemAccount.SP_RESERVE, SystemAccount.REVENUE, cmd.fee)
        self._touch(m)
        self.holds[cmd.request] = PayoutHold(cmd.request, m.code, cmd.amount, cmd.fee, new=True)
        self.dirty_holds.add(cmd.request)
        return {"held": cmd.amount, "net": cmd.amount - cmd.fee}

    def _payout_result(self, cmd: PayoutResult) -> dict[str, Decimal]:
        h = self._hold(cmd.request)
        if h is None:
            raise NotFound(f"no withdrawal {cmd.request!r}")
        if h.status != "held":
            raise InvalidCommand(f"withdrawal {cmd.request!r} is already {h.status}")
        net = h.amount - h.fee
        if cmd.paid:
            self._move(Asset.CNY, SystemAccount.PAYOUT_HOLD, SystemAccount.WORLD, net)
            h.status = "paid"
        else:
            m = self.member(h.member)
            self._move(Asset.CNY, SystemAccount.PAYOUT_HOLD, SystemAccount.SP_RESERVE, net)
            self._move(Asset.CNY, SystemAccount.REVENUE, SystemAccount.SP_RESERVE, h.fee)
            self._credit_sp(m, h.amount)
            self._touch(m)
            h.status = "released"
        self.dirty_holds.add(h.request)
        return {"paid": net if cmd.paid else ZERO}

    # ------------------------------------------------------------------ model rewards

    def _reward_member(self, code: str, amount: Decimal, what: str) -> Member:
        if amount <= 0 or floor_fen(amount) != amount:
            raise InvalidCommand(f"{what} must be > 0 and whole fen, got {amount}")
        return self.member(code)

    def _reward_grant(self, cmd: RewardGrant) -> dict[str, Decimal]:
        """SP from the platform's revenue share: revenue -> sp_reserve, SP to the member."""
        m = self._reward_member(cmd.member, cmd.amount, "a reward")
        self._move(Asset.CNY, SystemAccount.REVENUE, SystemAccount.SP_RESERVE, cmd.amount)
        kept = self._credit_sp(m, cmd.amount)
        self._touch(m)
        return {"granted": cmd.amount, "set_off": cmd.amount - kept, "debt": m.sp_debt}

    def _reward_take_back(self, cmd: RewardTakeBack) -> dict[str, Decimal]:
        """What the member still holds goes back to revenue; the rest becomes an SP debt."""
        m = self._reward_member(cmd.member, cmd.amount, "a take-back")
        taken = min(cmd.amount, m.sp)
        self._move(Asset.SP, m, SystemAccount.SP_ISSUANCE, taken)
        self._move(Asset.CNY, SystemAccount.SP_RESERVE, SystemAccount.REVENUE, taken)
        m.sp_debt += cmd.amount - taken
        self._touch(m)
        return {"taken": taken, "debt": m.sp_debt}

    # ------------------------------------------------------------------ NFG

    def _token_sale(self, cmd: TokenSale) -> dict[str, Decimal]:
        """The buyer's SP leaves circulation; its CNY backing in ``sp_reserve`` follows each
        part: it stays behind the SP credited to a member (seller, issuer), goes to revenue
        for the platform's parts and into the pool for the pool share (which raises the
        price: nothing is issued against it).  Paid through an order (``cmd.order``), the
        same parts leave that order's escrow instead and settle it: the seller's and the
        issuer's shares back the SP credited to them, anything the escrow holds beyond the
        price (EP rounding) is revenue, as :meth:`_settle` does with it."""
        parts = (cmd.proceeds, cmd.fee, cmd.pool_share, cmd.royalty)
        if cmd.price <= 0 or floor_fen(cmd.price) != cmd.price:
            raise InvalidCommand(f"a token's price must be > 0 and whole fen, got {cmd.price}")
        if any(p < 0 or floor_fen(p) != p for p in parts):
            raise InvalidCommand("a token sale's parts must be >= 0 and whole fen")
        if cmd.proceeds + cmd.fee + cmd.royalty != cmd.price or cmd.pool_share > cmd.fee:
            raise InvalidCommand("proceeds, fee and royalty must add up to the price")
        buyer = self.member(cmd.buyer)
        seller = None if cmd.seller is None else self.member(cmd.seller)
        issuer = None if cmd.issuer is None else self.member(cmd.issuer)
        if buyer is seller:
            raise InvalidCommand("a member cannot buy a token from themselves")
        source = SystemAccount.SP_RESERVE
        extra = ZERO  # what a paid order's escrow holds beyond the price (EP rounding)
        if cmd.order is not None:
            esc = self._escrow(cmd.order)
            if esc is None:
                raise NotFound(f"no paid order {cmd.order!r}")
            if esc.settled:
                raise IdempotencyConflict(f"order {cmd.order!r} was already settled")
            if esc.member != buyer.code:
                raise InvalidCommand(f"order {cmd.order!r} was paid by {esc.member!r}")
            extra = esc.total - esc.refunded - cmd.price
            if extra < 0:
                raise InvalidCommand(
                    f"order {cmd.order!r} holds {esc.total - esc.refunded}, "
                    f"the token costs {cmd.price}"
                )
            esc.settled = True
            self.dirty_escrows.add(esc.order)
            source = SystemAccount.ESCROW
        else:
            if cmd.price > buyer.sp:
                raise InsufficientBalance(
                    f"member {cmd.buyer!r} holds {buyer.sp} SP, the token costs {cmd.price}"
                )
            self._move(Asset.SP, buyer, SystemAccount.SP_ISSUANCE, cmd.price)
            self._touch(buyer)
        to_revenue = cmd.fee - cmd.pool_share + extra
        for who, amount in ((seller, cmd.proceeds), (issuer, cmd.royalty)):
            if who is None:
                to_revenue += amount
            elif amount > 0:
                if source is SystemAccount.ESCROW:
                    self._move(Asset.CNY, source, SystemAccount.SP_RESERVE, amount)
                self._credit_sp(who, amount)
                self._touch(who)
        self._move(Asset.CNY, source, SystemAccount.REVENUE, to_revenue)
        self._move(Asset.CNY, source, SystemAccount.POOL, cmd.pool_share)
        return {"price": cmd.price, "to_pool": cmd.pool_share}
