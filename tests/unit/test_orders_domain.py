"""The order life cycle in the pure domain: escrow, settlement, refunds in the paid mix."""

from decimal import Decimal

import pytest

from tokenmall import (
    CloseDay,
    Economy,
    IdempotencyConflict,
    InsufficientBalance,
    Pay,
    PayoutResult,
    Purchase,
    Refund,
    Settle,
    TenantParams,
    Withdraw,
)
from tokenmall.domain.economy import Asset, SystemAccount

D = Decimal


def _economy() -> Economy:
    e = Economy(TenantParams())
    e.apply(Purchase("seed", "A", D(100)))  # A holds 21 EP, price 30/21
    return e


def test_rewards_wait_for_settlement() -> None:
    e = _economy()
    e.apply(Pay("o1", "B", cny=D(100)))
    assert e.member("B").ep == 0
    assert e.balance(SystemAccount.ESCROW, Asset.CNY) == 100
    pool_before = e.pool
    out = e.apply(Settle("o1"))
    assert out["points"] == D("14.7")
    assert e.pool == pool_before + 30
    assert e.balance(SystemAccount.ESCROW, Asset.CNY) == 0
    with pytest.raises(IdempotencyConflict):
        e.apply(Settle("o1"))


def test_refund_before_settlement_moves_money_only() -> None:
    e = _economy()
    e.apply(Pay("o1", "B", cny=D(100)))
    snap = e.snapshot()
    e.apply(Refund("o1", D(40)))
    e.apply(Refund("o1"))
    assert e.snapshot()["pool"] == snap["pool"]
    assert e.member("B").ep == 0
    assert e.balance(SystemAccount.ESCROW, Asset.CNY) == 0
    assert e.balance(SystemAccount.WORLD, Asset.CNY) == -100  # only the seed purchase stays


def test_sp_part_comes_back_as_sp_and_earns_rewards_once_settled() -> None:
    e = _economy()
    e.apply(Pay("x", "A", points=D(10)))  # A's points pay 10 EP worth of goods
    sp_before = e.member("A").sp
    assert sp_before == 0
    e.apply(Refund("x"))  # refunded before settlement: the EP part returns as SP
    assert e.member("A").sp > 0
    sp = e.member("A").sp
    e.apply(Pay("o2", "A", cny=D(50), sp=sp))
    e.apply(Settle("o2"))
    assert e.grants["o2"].amount == D(50) + sp
    e.apply(Refund("o2"))
    assert e.member("A").sp == sp  # the SP part back as SP
    with pytest.raises(InsufficientBalance):
        e.apply(Pay("o3", "A", sp=sp + 1))


def test_an_order_paid_only_with_points_can_be_refunded_after_settlement() -> None:
    e = _economy()
    e.apply(Pay("o1", "A", points=D(5)))
    e.apply(Settle("o1"))
    out = e.apply(Refund("o1"))
    assert out["burned"] == 0
    assert e.member("A").sp > 0


def test_withdrawal_holds_then_pays_or_releases() -> None:
    e = _economy()
    e.apply(Pay("o1", "A", points=D(10)))
    e.apply(Refund("o1"))
    sp = e.member("A").sp
    e.apply(Withdraw("w1", "A", sp, fee=D("0.01")))
    assert e.member("A").sp == 0
    with pytest.raises(InsufficientBalance):
        e.apply(Withdraw("w2", "A", D("0.01")))
    e.apply(PayoutResult("w1", paid=False))
    assert e.member("A").sp == sp
    e.apply(Withdraw("w3", "A", sp))
    e.apply(PayoutResult("w3", paid=True))
    assert e.balance(SystemAccount.PAYOUT_HOLD, Asset.CNY) == 0


def test_a_day_closes_once_in_memory() -> None:
    e = _economy()
    e.apply(CloseDay("2026-01-01"))
    with pytest.raises(IdempotencyConflict):
        e.apply(CloseDay("2026-01-01"))
