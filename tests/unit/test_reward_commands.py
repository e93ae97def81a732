"""Model rewards as ledger commands (docs/RULES.md section 5): SP from the platform's revenue,
take-backs, the SP debt and its set-off against every later SP credit."""

from __future__ import annotations

from decimal import Decimal

import pytest
from unit_helpers import asset_sums, fingerprint, sp_reserve

from tokenmall.domain.economy import (
    Asset,
    CloseDay,
    Economy,
    Exchange,
    Pay,
    PayoutResult,
    Purchase,
    Refund,
    RewardGrant,
    RewardTakeBack,
    Sell,
    SystemAccount,
    Withdraw,
)
from tokenmall.domain.params import TenantParams
from tokenmall.errors import InvalidCommand, UnknownMember

D = Decimal


def _eco() -> Economy:
    e = Economy(TenantParams())
    e.apply(Purchase("o1", "A", D(100)))
    e.apply(Purchase("o2", "B", D(100), referrer="A"))
    return e


def _revenue(e: Economy) -> Decimal:
    return e.balance(SystemAccount.REVENUE, Asset.CNY)


def _balanced(e: Economy) -> None:
    assert all(v == 0 for v in asset_sums(e).values())
    assert sp_reserve(e) == sum((m.sp for m in e.members.values()), D(0))


def test_a_grant_is_sp_backed_by_revenue_never_the_pool_or_the_fund() -> None:
    e = _eco()
    pool, fund, revenue = e.pool, e.dividend_fund, _revenue(e)
    e.take_journal()
    out = e.apply(RewardGrant("A", D("10.00"), "distribution"))
    assert out["granted"] == D(10)
    assert e.member("A").sp == D(10)
    assert (e.pool, e.dividend_fund) == (pool, fund)
    assert _revenue(e) == revenue - 10
    moves = [(t.asset, t.debit, t.credit, t.amount) for t in e.take_journal()]
    a = e.member("A").account
    assert moves == [
        (Asset.CNY, "revenue", "sp_reserve", D(10)),
        (Asset.SP, "sp_issuance", a, D(10)),
    ]
    _balanced(e)


def test_a_take_back_of_what_is_still_held_returns_it_to_revenue() -> None:
    e = _eco()
    e.apply(RewardGrant("A", D(10), "distribution"))
    revenue = _revenue(e)
    out = e.apply(RewardTakeBack("A", D(4), "distribution"))
    assert (out["taken"], out["debt"]) == (D(4), D(0))
    assert (e.member("A").sp, e.member("A").sp_debt) == (D(6), D(0))
    assert _revenue(e) == revenue + 4
    _balanced(e)


def test_a_take_back_beyond_the_wallet_leaves_a_debt() -> None:
    e = _eco()
    e.apply(RewardGrant("A", D(10), "distribution"))
    e.apply(Withdraw("w1", "A", D(7)))  # spent elsewhere: only 3 left
    out = e.apply(RewardTakeBack("A", D(10), "distribution"))
    assert (out["taken"], out["debt"]) == (D(3), D(7))
    assert (e.member("A").sp, e.member("A").sp_debt) == (D(0), D(7))
    _balanced(e)


def _indebted(debt: Decimal = Decimal(7)) -> Economy:
    e = _eco()
    e.apply(RewardGrant("A", debt, "distribution"))
    e.apply(Withdraw("w1", "A", debt))
    e.apply(RewardTakeBack("A", debt, "distribution"))
    assert e.member("A").sp_debt == debt
    return e


def test_the_next_reward_sets_the_debt_off_first() -> None:
    e = _indebted(D(7))
    revenue = _revenue(e)
    out = e.apply(RewardGrant("A", D(5), "refer3"))
    assert (out["set_off"], out["debt"]) == (D(5), D(2))
    assert (e.member("A").sp, e.member("A").sp_debt) == (D(0), D(2))
    assert _revenue(e) == revenue  # paid 5 from revenue, 5 set off back into it
    e.apply(RewardGrant("A", D(5), "refer3"))
    assert (e.member("A").sp, e.member("A").sp_debt) == (D(3), D(0))
    _balanced(e)


@pytest.mark.parametrize("credit", ["sell", "exchange", "dividend", "refund_as_sp", "release"])
def test_every_sp_credit_sets_the_debt_off(credit: str) -> None:
    e = _indebted(D("0.50"))
    a = e.member("A")
    if credit == "sell":
        e.apply(Sell("A", D(5)))
    elif credit == "exchange":
        e.apply(Exchange("A", D(5)))
    elif credit == "dividend":
        e.apply(CloseDay("d1"))
    elif credit == "refund_as_sp":  # a paid order refunded before settlement, paid with EP
        e.apply(Pay("p1", "A", points=D(5)))
        e.apply(Refund("p1"))
    else:  # the withdrawal that emptied the wallet is rejected: its SP comes back
        e.apply(PayoutResult("w1", paid=False))
    assert a.sp_debt == 0
    # the released withdrawal is exactly the debt; every other credit is larger
    assert a.sp == 0 if credit == "release" else a.sp > 0
    _balanced(e)


def test_set_off_equals_taking_the_debt_from_the_credit() -> None:
    """Sell with a debt == sell without it, less the debt, with the debt's CNY in revenue."""
    with_debt, without = _indebted(D(2)), _eco()
    without.apply(RewardGrant("A", D(2), "distribution"))
    without.apply(Withdraw("w1", "A", D(2)))
    p1 = with_debt.apply(Sell("A", D(5)))["payout"]
    p2 = without.apply(Sell("A", D(5)))["payout"]
    assert p1 == p2
    assert with_debt.member("A").sp == without.member("A").sp - 2
    assert _revenue(with_debt) == _revenue(without) + 2


def test_refused_rewards_change_nothing() -> None:
    e = _eco()
    before = fingerprint(e)
    for cmd, exc in (
        (RewardGrant("nobody", D(1), "x"), UnknownMember),
        (RewardGrant("A", D("0.001"), "x"), InvalidCommand),
        (RewardGrant("A", D(0), "x"), InvalidCommand),
        (RewardTakeBack("A", D(-1), "x"), InvalidCommand),
    ):
        with pytest.raises(exc):
            e.apply(cmd)
    assert fingerprint(e) == before
