"""Random command sequences over an in-memory Economy; docs/RULES.md R8's consequences after each.

A failing run shrinks to a minimal sequence of commands.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from unit_helpers import FEN as FEN_FR
from unit_helpers import asset_sums, fingerprint, floor_to, fr, price, sp_reserve

from tokenmall.domain.economy import (
    Asset,
    BuyPoints,
    CloseDay,
    Command,
    Economy,
    Exchange,
    Pay,
    PayoutResult,
    Purchase,
    Refund,
    RewardGrant,
    RewardTakeBack,
    Sell,
    Settle,
    SystemAccount,
    Transfer,
    Withdraw,
)
from tokenmall.domain.params import TenantParams
from tokenmall.errors import IdempotencyConflict, InvalidCommand
from tokenmall.money import floor_ep, floor_fen

MEMBERS = ["A", "B", "C", "D", "E"]
ATOM = Decimal("1e-8")
FEN = Decimal("0.01")
fractions = st.fractions(min_value=Fraction(1, 1000), max_value=1)
fen_amounts = st.integers(1, 500_000).map(lambda fen: Decimal(fen) / 100)  # 0.01 .. 5000


class EconomyMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.e = Economy(TenantParams())
        self.orders: list[str] = []
        self.prev_price = self.e.price_ratio()
        self.days = 0
        self.paid = 0
        self.rewarded: dict[str, Decimal] = {}  # net reward per member (granted - taken back)

    @initialize(
        quota_multiplier=st.sampled_from(["2", "0.6"]),  # 0.6 makes exits frequent
        total_supply=st.sampled_from(["100000000", "600"]),  # 600 is reached quickly
        sell_fee=st.sampled_from(["0.10", "0"]),
        exchange_fee=st.sampled_from(["0", "0.05"]),
        weight=st.sampled_from(["points", "shares"]),
        first=fen_amounts,
    )
    def configure(
        self,
        quota_multiplier: str,
        total_supply: str,
        sell_fee: str,
        exchange_fee: str,
        weight: str,
        first: Decimal,
    ) -> None:
        self.e = Economy(
            TenantParams(
                quota_multiplier=Decimal(quota_multiplier),
                total_supply=Decimal(total_supply),
                sell_fee=Decimal(sell_fee),
                exchange_fee=Decimal(exchange_fee),
                dividend_weight=weight,  # type: ignore[arg-type]
            )
        )
        self.prev_price = self.e.price_ratio()
        self.purchase("A", None, first, insist=False)  # so every rule has something to act on

    # ------------------------------------------------------------------ helpers

    def attempt(self, cmd: Command) -> bool:
        """Apply; a refused command must leave everything as it was."""
        before = fingerprint(self.e)
        try:
            out = self.e.apply(cmd)
        except InvalidCommand as exc:
            event(f"refused {type(cmd).__name__}: {exc.code}")
            assert fingerprint(self.e) == before
            assert self.e.take_journal() == []
            return False
        self.e.take_journal()
        if out["exits"]:
            event(f"exits after {type(cmd).__name__}")
        return True

    def holders(self) -> list[str]:
        return [c for c, m in self.e.members.items() if m.ep > 0]

    # ------------------------------------------------------------------ rules

    @rule(
        member=st.sampled_from(MEMBERS),
        referrer=st.none() | st.sampled_from(MEMBERS),
        amount=fen_amounts,
        insist=st.booleans(),
    )
    def purchase(self, member: str, referrer: str | None, amount: Decimal, insist: bool) -> None:
        order = f"o{len(self.orders)}"
        stored = self.e.members.get(member)
        if not insist and stored is not None and stored.referrer is not None:
            referrer = None  # mostly buy as the member would; sometimes try another referrer
        if self.attempt(Purchase(order=order, member=member, amount=amount, referrer=referrer)):
            self.orders.append(order)
        else:
            # only a self-referral or a changed referrer may be refused
            assert referrer == member or (
                stored is not None and stored.referrer not in (None, referrer)
            )

    @precondition(lambda self: self.holders())
    @rule(data=st.data(), part=fractions)
    def sell(self, data: st.DataObject, part: Fraction) -> None:
        code = data.draw(st.sampled_from(self.holders()))
        q = max(ATOM, floor_ep(self.e.member(code).ep * Decimal(part.numerator) / part.denominator))
        assert self.attempt(Sell(code, q))

    @precondition(lambda self: self.holders())
    @rule(data=st.data(), part=fractions)
    def exchange(self, data: st.DataObject, part: Fraction) -> None:
        code = data.draw(st.sampled_from(self.holders()))
        q = max(ATOM, floor_ep(self.e.member(code).ep * Decimal(part.numerator) / part.denominator))
        assert self.attempt(Exchange(code, q))

    @precondition(
        lambda self: self.e.treasury > 0 and any(m.sp > 0 for m in self.e.members.values())
    )
    @rule(data=st.data(), part=fractions)
    def buy_points(self, data: st.DataObject, part: Fraction) -> None:
        code = data.draw(st.sampled_from([c for c, m in self.e.members.items() if m.sp > 0]))
        s = max(FEN, floor_fen(self.e.member(code).sp * Decimal(part.numerator) / part.denominator))
        num, den = self.e.price_ratio()
        fits = s * den / num <= self.e.treasury
        done = self.attempt(BuyPoints(code, s))
        if fits and s * den / num >= ATOM:
            assert done

    @rule()
    def close_day(self) -> None:
        self.days += 1
        assert self.attempt(CloseDay(f"day-{self.days}"))

    def refundable(self) -> list[str]:
        """Settled orders (a grant) and paid orders still in escrow."""
        unsettled = [o for o, x in self.e.escrows.items() if not x.settled]
        return sorted(self.e.grants) + unsettled

    @precondition(lambda self: self.refundable())
    @rule(data=st.data(), full=st.booleans(), part=fractions)
    def refund(self, data: st.DataObject, full: bool, part: Fraction) -> None:
        order = data.draw(st.sampled_from(self.refundable()))
        esc = self.e.escrows.get(order)
        if esc is not None and not esc.settled:
            left = esc.total - esc.refunded
        else:
            g = self.e.grants[order]
            left = (g.total if g.total is not None else g.amount) - g.refunded
        amount = None if full else floor_fen(left * Decimal(part.numerator) / part.denominator)
        done = self.attempt(Refund(order, amount))
        assert done == (left > 0 and (amount is None or amount > 0))

    # Orders paid first and settled later (Pay / Settle) and withdrawals: beyond R1-R11's
    # commands, but they move the same pool, points and wallets, so the same invariants hold.

    @rule(
        member=st.sampled_from(MEMBERS),
        cny=st.integers(0, 500_000).map(lambda fen: Decimal(fen) / 100),
        sp_part=st.none() | fractions,
        ep_part=st.none() | fractions,
    )
    def pay(
        self, member: str, cny: Decimal, sp_part: Fraction | None, ep_part: Fraction | None
    ) -> None:
        m = self.e.members.get(member)
        sp = ep = Decimal(0)
        if m is not None and sp_part is not None:
            sp = floor_fen(m.sp * Decimal(sp_part.numerator) / sp_part.denominator)
        if m is not None and ep_part is not None:
            ep = floor_ep(m.ep * Decimal(ep_part.numerator) / ep_part.denominator)
        order = f"p{self.paid}"
        self.paid += 1
        ep_value = floor_to(fr(ep) * price(self.e) * (1 - fr(self.e.params.sell_fee)), FEN_FR)
        done = self.attempt(Pay(order=order, member=member, cny=cny, sp=sp, points=ep))
        assert done == (fr(cny + sp) + ep_value > 0)  # refused only when worth nothing

    @precondition(lambda self: any(not x.settled for x in self.e.escrows.values()))
    @rule(data=st.data())
    def settle(self, data: st.DataObject) -> None:
        order = data.draw(
            st.sampled_from(sorted(o for o, x in self.e.escrows.items() if not x.settled))
        )
        assert self.attempt(Settle(order))

    @precondition(lambda self: any(m.sp > 0 for m in self.e.members.values()))
    @rule(data=st.data(), part=fractions, fee=st.integers(0, 200))
    def withdraw(self, data: st.DataObject, part: Fraction, fee: int) -> None:
        code = data.draw(st.sampled_from([c for c, m in self.e.members.items() if m.sp > 0]))
        amount = max(FEN, floor_fen(self.e.member(code).sp * part.numerator / part.denominator))
        fee_d = min(Decimal(fee) / 100, amount - FEN)
        assert self.attempt(Withdraw(f"w{len(self.e.holds)}", code, amount, fee_d))

    @precondition(lambda self: any(h.status == "held" for h in self.e.holds.values()))
    @rule(data=st.data(), paid=st.booleans())
    def payout_result(self, data: st.DataObject, paid: bool) -> None:
        held = sorted(r for r, h in self.e.holds.items() if h.status == "held")
        assert self.attempt(PayoutResult(data.draw(st.sampled_from(held)), paid))

    # Model rewards from revenue and their take-backs: a take-back larger than the wallet
    # leaves an SP debt that the next SP credits (sales, dividends, rewards...) set off.

    @precondition(lambda self: self.e.members)
    @rule(data=st.data(), amount=fen_amounts)
    def grant_reward(self, data: st.DataObject, amount: Decimal) -> None:
        code = data.draw(st.sampled_from(sorted(self.e.members)))
        m = self.e.member(code)
        debt, sp, revenue = m.sp_debt, m.sp, self.e.balance(SystemAccount.REVENUE, Asset.CNY)
        assert self.attempt(RewardGrant(code, amount, "test"))
        off = min(debt, amount)
        assert (m.sp, m.sp_debt) == (sp + amount - off, debt - off)
        # the platform pays what the member keeps; a set-off returns the rest at once
        assert self.e.balance(SystemAccount.REVENUE, Asset.CNY) == revenue - amount + off
        self.rewarded[code] = self.rewarded.get(code, Decimal(0)) + amount

    @precondition(lambda self: self.rewarded)
    @rule(data=st.data(), part=fractions)
    def take_back_reward(self, data: st.DataObject, part: Fraction) -> None:
        code = data.draw(st.sampled_from(sorted(self.rewarded)))
        net = self.rewarded[code]
        amount = floor_fen(net * Decimal(part.numerator) / part.denominator)
        m = self.e.member(code)
        sp, debt = m.sp, m.sp_debt
        done = self.attempt(RewardTakeBack(code, amount, "test"))
        assert done == (amount > 0)
        if done:
            taken = min(sp, amount)
            assert (m.sp, m.sp_debt) == (sp - taken, debt + amount - taken)
            self.rewarded[code] = net - amount

    @precondition(lambda self: self.orders)
    @rule(data=st.data())
    def replay_purchase(self, data: st.DataObject) -> None:
        g = self.e.grants[data.draw(st.sampled_from(self.orders))]
        twin = copy.deepcopy(self.e)
        before = fingerprint(twin)
        with pytest.raises(IdempotencyConflict):
            twin.apply(Purchase(g.order, g.member, g.amount, g.referrer))
        assert fingerprint(twin) == before

    # ------------------------------------------------------------------ invariants

    @invariant()
    def every_asset_balances_to_zero(self) -> None:
        sums = asset_sums(self.e)
        assert all(v == 0 for v in sums.values()), sums

    @invariant()
    def price_never_falls(self) -> None:
        num, den = self.e.price_ratio()
        pnum, pden = self.prev_price
        assert num * pden >= pnum * den, (self.prev_price, (num, den))
        self.prev_price = (num, den)

    @invariant()
    def no_negative_holdings_and_quota(self) -> None:
        for m in self.e.members.values():
            assert min(m.ep, m.sp, m.quota, m.ep_debt, m.sp_debt) >= 0, m
            # every SP credit sets a debt off first, so an indebted member holds no SP
            assert m.sp_debt == 0 or m.sp == 0, m
        assert self.e.pool >= 0
        assert self.e.treasury >= 0
        assert self.e.dividend_fund >= 0

    @invariant()
    def escrow_and_payout_hold_match_their_records(self) -> None:
        escrowed = sum(
            (x.total - x.refunded for x in self.e.escrows.values() if not x.settled), Decimal(0)
        )
        held = sum(
            (h.amount - h.fee for h in self.e.holds.values() if h.status == "held"), Decimal(0)
        )
        assert self.e.balance(SystemAccount.ESCROW, Asset.CNY) == escrowed
        assert self.e.balance(SystemAccount.PAYOUT_HOLD, Asset.CNY) == held

    @invariant()
    def supply_cap_holds(self) -> None:
        assert self.e.issued <= self.e.params.total_supply

    @invariant()
    def sp_is_backed_one_to_one(self) -> None:
        assert sp_reserve(self.e) == sum((m.sp for m in self.e.members.values()), Decimal(0))

    @invariant()
    def nobody_is_left_due_to_exit(self) -> None:
        num, den = self.e.price_ratio()
        for m in self.e.members.values():
            if m.spent > 0 and m.ep > 0:
                assert m.ep * num < m.quota * den, m

    @invariant()
    def pool_pays_every_holder_in_any_order(self) -> None:
        for order in (sorted, lambda xs: sorted(xs, reverse=True)):
            twin = copy.deepcopy(self.e)
            pool = fr(twin.pool)
            for code in order(twin.members):
                m = twin.members[code]
                if m.ep > 0:  # an earlier sale may have forced this member out already
                    twin.apply(Sell(code, m.ep))
            # every sale and forced exit paid SP, all of it out of the pool
            paid = fr(sum((m.sp for m in twin.members.values()), Decimal(0))) - fr(
                sum((m.sp for m in self.e.members.values()), Decimal(0))
            )
            assert paid <= pool
            assert twin.pool >= 0
            assert all(m.ep == 0 for m in twin.members.values())


EconomyMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestEconomyMachine = EconomyMachine.TestCase


def test_replaying_a_purchase_on_a_copy_is_refused_and_changes_nothing() -> None:
    e = Economy(TenantParams())
    cmd = Purchase(order="o1", member="A", amount=Decimal("100"), referrer="R")
    e.apply(cmd)
    e.apply(Purchase(order="o2", member="B", amount=Decimal("50")))
    twin = copy.deepcopy(e)
    before = fingerprint(twin)
    twin.take_journal()
    with pytest.raises(IdempotencyConflict):
        twin.apply(cmd)
    assert fingerprint(twin) == before
    assert twin.take_journal() == []
    assert fingerprint(e) == before  # the original was never touched either


# ----------------------------------------------------------------------------- the empty price


def _price_before_last_burn(start: tuple[Decimal, Decimal], journal: list[Transfer]) -> Fraction:
    """pool / circulating just before the last EP burn of a command's journal."""
    pool, circ = Fraction(start[0]), Fraction(start[1])
    last = None
    for t in journal:
        if t.asset == "EP" and t.credit == "burned":
            last = pool / circ
        if t.asset == "CNY":
            pool += Fraction(t.amount) * ((t.credit == "pool") - (t.debit == "pool"))
        if t.asset == "EP":
            circ += Fraction(t.amount) * ((t.debit == "issuance") - (t.credit == "burned"))
    assert last is not None
    return last


_steps = st.lists(
    st.tuples(
        st.sampled_from(["purchase", "refund", "sell", "pay", "exchange", "buy_points", "close"]),
        st.sampled_from(MEMBERS[:3]),
        st.none() | st.sampled_from(MEMBERS[:3]),
        fen_amounts,
        st.sampled_from([Fraction(1), Fraction(1, 2), Fraction(1, 3)]),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=300, deadline=None)
@given(
    steps=_steps,
    quota_multiplier=st.sampled_from(["2", "0.6", "0.3"]),
    sell_fee=st.sampled_from(["0.10", "0"]),
)
def test_emptying_circulation_keeps_the_price_of_the_last_points(
    steps: list[tuple[str, str, str | None, Decimal, Fraction]],
    quota_multiplier: str,
    sell_fee: str,
) -> None:
    """Random streams over three members, with full and partial refunds and sales of whole
    holdings, so circulation often empties.  After an event that takes the last points out of
    circulation, the price is the one just before that event: before the command when the
    command did it, before the last forced exit when an exit did.  No event lowers the price.
    """
    e = Economy(
        TenantParams(quota_multiplier=Decimal(quota_multiplier), sell_fee=Decimal(sell_fee))
    )
    orders: list[str] = []
    for n, (kind, who, referrer, amount, part) in enumerate(steps):
        m = e.members.get(who)
        cmd: Command | None = None
        if kind == "purchase" or (kind == "refund" and not orders):
            cmd = Purchase(f"o{n}", who, amount, referrer if m is None else None)
        elif kind == "refund":
            order = orders[n % len(orders)]
            g = e.grants[order]
            left = (g.total if g.total is not None else g.amount) - g.refunded
            r = floor_fen(left * part.numerator / part.denominator)
            cmd = Refund(order, None if part == 1 or r <= 0 else r)
        elif m is not None and m.ep > 0 and kind in ("sell", "pay", "exchange"):
            q = max(ATOM, floor_ep(m.ep * part.numerator / part.denominator))
            if kind == "sell":
                cmd = Sell(who, q)
            elif kind == "pay":
                cmd = Pay(f"p{n}", who, points=q)
            else:
                cmd = Exchange(who, q)
        elif m is not None and m.sp >= FEN and kind == "buy_points":
            cmd = BuyPoints(who, max(FEN, floor_fen(m.sp * part.numerator / part.denominator)))
        elif kind == "close":
            cmd = CloseDay("")
        if cmd is None:
            continue
        circ0, (num0, den0) = e.circulating, e.price_ratio()
        start = (e.pool, e.circulating)
        try:
            out = e.apply(cmd)
        except InvalidCommand:
            continue
        journal = e.take_journal()
        if isinstance(cmd, Purchase):
            orders.append(cmd.order)
        num, den = e.price_ratio()
        assert num * den0 >= num0 * den, ("the price fell", cmd)
        if e.circulating == 0 and (circ0 > 0 or out["exits"]):
            event(f"emptied by {type(cmd).__name__}{' exits' if out['exits'] else ''}")
            if out["exits"]:
                assert Fraction(num) / Fraction(den) == _price_before_last_burn(start, journal)
            else:
                assert num * den0 == num0 * den, ("the price moved", cmd)
