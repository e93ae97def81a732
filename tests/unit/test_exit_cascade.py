"""The day close's bulk exit walk (domain.exits) against the reference ``Economy.run_exits``.

Same holders, same pool: both must force out the same members in the same order with the
same payouts, and leave the same pool, burned points and remembered empty price.  The
holders are drawn around the price so that some are due, some not, some tie on quota/EP (the
member number decides) and sometimes every point leaves circulation (the empty price).
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from decimal import Decimal
from random import Random

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tokenmall.domain.economy import (
    Asset,
    Economy,
    EconomyState,
    Escrow,
    Grant,
    Member,
    PayoutHold,
    SystemAccount,
)
from tokenmall.domain.exits import ExitCascade
from tokenmall.domain.params import TenantParams
from tokenmall.errors import InvariantViolation
from tokenmall.money import CNY_PLACES, EP_PLACES, ZERO, atoms, from_atoms


class _AllDue:
    """A member source whose pre-filter selects everyone (over-selecting is allowed)."""

    def __init__(self, members: list[Member]) -> None:
        self._members = members

    def fetch(self, code: str) -> Member | None:
        return None

    def fetch_grant(self, order: str) -> Grant | None:
        return None

    def fetch_escrow(self, order: str) -> Escrow | None:
        return None

    def fetch_hold(self, request: str) -> PayoutHold | None:
        return None

    def due(self, pool: Decimal, circulating: Decimal, exclude: Container[str]) -> Iterable[Member]:
        return [m for m in self._members if m.code not in exclude]


def _holders(rng: Random, n: int, pool: int, circ: int) -> list[tuple[int, int, int, int]]:
    """(ep, quota, spent, sp) atoms; EP sums to at most ``circ``; quota/EP near the price."""
    out: list[tuple[int, int, int, int]] = []
    left = circ
    for _ in range(n):
        if left <= 0:
            break
        if out and rng.random() < 0.2:
            # a tie on quota/EP with an earlier holder (scaled), or an exact copy
            ep0, q0, _, _ = rng.choice(out)
            k = rng.choice([1, 2, 3])
            ep, quota = ep0 * k, q0 * k
            if ep > left:
                continue
        else:
            ep = rng.randint(1, max(1, min(left, circ // max(1, n // 2))))
            value = ep * pool // circ  # CNY atoms the points are worth now
            quota = value * rng.randint(40, 160) // 100
        spent = 0 if rng.random() < 0.1 else rng.randint(1, 10**9)
        out.append((ep, quota, spent, rng.randint(0, 10**8)))
        left -= ep
    return out


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    n=st.integers(0, 40),
    pool=st.integers(0, 10**13),
    circ=st.integers(1, 10**15),
    fee=st.sampled_from(["0", "0.1", "0.05", "0.3333", "1"]),
    treasury_share=st.sampled_from([0, 0, 1, 10]),
)
def test_bulk_exits_equal_run_exits(
    seed: int, n: int, pool: int, circ: int, fee: str, treasury_share: int
) -> None:
    rng = Random(seed)
    holders = _holders(rng, n, pool, circ)
    held = sum(h[0] for h in holders)
    # the treasury holds the rest of circulation, or nothing (then all points can leave)
    circ = held + (circ - held) * treasury_share // 10 if holders else circ
    params = TenantParams(sell_fee=Decimal(fee))

    state = EconomyState()
    b = state.balances
    b[(SystemAccount.POOL, Asset.CNY)] = from_atoms(pool, CNY_PLACES)
    b[(SystemAccount.ISSUANCE, Asset.EP)] = -from_atoms(circ, EP_PLACES)
    b[(SystemAccount.TREASURY, Asset.EP)] = from_atoms(circ - held, EP_PLACES)
    members = [
        Member(
            code=f"c{no}",
            no=no,
            ep=from_atoms(ep, EP_PLACES),
            quota=from_atoms(quota, CNY_PLACES),
            spent=from_atoms(spent, CNY_PLACES),
            sp=from_atoms(sp, CNY_PLACES),
        )
        for no, (ep, quota, spent, sp) in enumerate(holders, 1)
    ]
    eco = Economy(params, state, _AllDue(members))
    count = eco.run_exits()
    expected = [
        (tr.asset.value, tr.debit, tr.credit, atoms(tr.amount, 8 if tr.asset == "EP" else 4))
        for tr in eco.take_journal()
    ]

    cascade = ExitCascade(pool, circ, 0, 0, params.initial_price, params.sell_fee)
    order = list(enumerate(holders, 1))
    rng.shuffle(order)  # the offer order must not matter
    for no, (ep, quota, spent, sp) in order:
        cascade.offer(no, ep, quota, spent, sp)
    got = []
    exits = []
    while (ex := cascade.next_exit()) is not None:
        exits.append(ex)
        got.append(("EP", f"m:{ex.no}", "burned", ex.ep))
        if ex.payout:
            got += [
                ("CNY", "pool", "sp_reserve", ex.payout),
                ("SP", "sp_issuance", f"m:{ex.no}", ex.payout),
            ]

    event("some exits" if exits else "no exit")
    event("every point left" if cascade.circulating == 0 else "points still circulate")
    event(
        "a tie on quota/EP"
        if len({h[1] * 10**9 // h[0] for h in holders}) < len(holders)
        else "no tie"
    )
    assert got == expected
    assert len(exits) == count
    assert from_atoms(cascade.pool, CNY_PLACES) == eco.pool
    assert from_atoms(cascade.circulating, EP_PLACES) == eco.circulating
    assert from_atoms(cascade.burned, EP_PLACES) == eco.burned
    assert from_atoms(cascade.empty_pool, CNY_PLACES) == state.empty_pool
    assert from_atoms(cascade.empty_circulating, EP_PLACES) == state.empty_circulating
    by_no = {m.no: m for m in members}
    for ex in exits:
        m = by_no[ex.no]
        assert m.exited
        assert m.quota == m.ep == ZERO
        assert from_atoms(ex.sp_after, CNY_PLACES) == m.sp


def test_the_walk_stops_at_the_first_holder_not_due_and_ties_go_by_number() -> None:
    # price 2 CNY/EP: pool 200 CNY backs 100 EP
    cascade = ExitCascade(200 * 10**4, 100 * 10**8, 0, 0, Decimal(1), Decimal("0.1"))
    cascade.offer(7, 10 * 10**8, 20 * 10**4, 1, 0)  # due: 10 EP x 2 = 20 >= 20
    cascade.offer(3, 10 * 10**8, 20 * 10**4, 1, 0)  # same quota/EP, lower number: first
    cascade.offer(5, 10 * 10**8, 30 * 10**4, 1, 0)  # quota/EP 3: not due even after two exits
    cascade.offer(9, 10 * 10**8, 0, 0, 0)  # never bought: never due
    first = cascade.next_exit()
    second = cascade.next_exit()
    assert first is not None
    assert second is not None
    assert (first.no, second.no) == (3, 7)
    # 10 EP at 2 CNY less 10%: 18 CNY; the fee stays, so the price rises
    assert first.payout == 18 * 10**4
    assert cascade.price() > 2
    assert cascade.next_exit() is None


def test_refuses_a_negative_start() -> None:
    with pytest.raises(InvariantViolation):
        ExitCascade(-1, 10, 0, 0, Decimal(1), Decimal(0))
