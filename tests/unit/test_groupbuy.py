"""Group buys G1-G4 as a pure state machine, with worked numbers and every refund path."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from tokenmall.domain import draw
from tokenmall.domain.groupbuy import (
    Campaign,
    Confirm,
    GroupState,
    GroupTerms,
    Hold,
    LockFund,
    Mode,
    PaySP,
    PlaceStatus,
    Refund,
    campaign_draw,
    cancel,
    close,
    join,
    open_group,
)
from tokenmall.domain.groupfund import ShoppingFund
from tokenmall.errors import InvalidCommand

D = Decimal
T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
SEED = bytes(range(32))
SEED2 = bytes(range(1, 33))


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def multi(size: int = 3) -> GroupTerms:
    return GroupTerms(Mode.MULTI, "P", D("70"), size)


# --- G1 multi-person group -------------------------------------------------------------------


def test_multi_group_of_3_at_70_succeeds_when_full_all_confirmed_in_join_order() -> None:
    g, moves = open_group("g1", multi(), "A", "pA", T0)
    assert moves == [Hold("g1", "pA", "A", D("70"), "group:g1:hold:pA")]
    assert g.deadline == T0 + timedelta(hours=24)  # default deadline
    assert [type(m) for m in join(g, "B", "pB", at(1))] == [Hold]
    moves = join(g, "C", "pC", at(2))
    confirms = [m for m in moves if isinstance(m, Confirm)]
    assert [(c.member, c.amount) for c in confirms] == [("A", 70), ("B", 70), ("C", 70)]
    assert g.state is GroupState.SUCCEEDED
    assert all(p.status is PlaceStatus.CONFIRMED for p in g.places)


def test_join_is_refused_when_not_open_past_deadline_or_already_in() -> None:
    g, _ = open_group("g1", multi(2), "A", "pA", T0, deadline=at(60))
    with pytest.raises(InvalidCommand, match="already in group g1"):
        join(g, "A", "pA2", at(1))
    with pytest.raises(InvalidCommand, match="past its deadline"):
        join(g, "B", "pB", at(60))
    with pytest.raises(InvalidCommand, match="already a place"):
        join(g, "B", "pA", at(1))
    join(g, "B", "pB", at(1))
    with pytest.raises(InvalidCommand, match="is succeeded, not open"):
        join(g, "C", "pC", at(2))


def test_expired_multi_group_fails_every_payment_refunded_in_full_no_compensation() -> None:
    g, _ = open_group("g1", multi(3), "A", "pA", T0, deadline=at(60))
    join(g, "B", "pB", at(1))
    with pytest.raises(InvalidCommand, match="not past its deadline"):
        close(g, at(59))
    moves = close(g, at(60))
    assert moves == [
        Refund("g1", "pA", "A", D("70"), "group:g1:refund:pA", "expired"),
        Refund("g1", "pB", "B", D("70"), "group:g1:refund:pB", "expired"),
    ]
    assert g.state is GroupState.FAILED
    assert close(g, at(61)) == []  # a repeated close refunds nothing twice


def test_cancel_before_full_refunds_at_once_and_frees_the_place() -> None:
    g, _ = open_group("g1", multi(3), "A", "pA", T0)
    join(g, "B", "pB", at(1))
    assert cancel(g, "B", at(2)) == [
        Refund("g1", "pB", "B", D("70"), "group:g1:refund:pB", "cancelled")
    ]
    join(g, "C", "pC", at(3))
    moves = join(g, "B", "pB2", at(4))  # B comes back with a new payment and fills it
    assert [m.ref for m in moves if isinstance(m, Confirm)] == ["pA", "pC", "pB2"]
    with pytest.raises(InvalidCommand, match="too late to cancel"):
        cancel(g, "C", at(5))


def test_leader_may_cancel_only_while_alone_then_the_group_fails() -> None:
    g, _ = open_group("g1", multi(3), "A", "pA", T0)
    join(g, "B", "pB", at(1))
    with pytest.raises(InvalidCommand, match="leader of group g1 cannot cancel"):
        cancel(g, "A", at(2))
    cancel(g, "B", at(2))
    with pytest.raises(InvalidCommand, match="no place"):
        cancel(g, "Z", at(3))
    assert [m.reason for m in cancel(g, "A", at(3))] == ["leader cancelled"]
    assert g.state is GroupState.FAILED


def test_terms_are_validated() -> None:
    with pytest.raises(InvalidCommand, match="at least 2 places"):
        GroupTerms(Mode.MULTI, "P", D("70"), 1)
    with pytest.raises(InvalidCommand, match="price must be a whole-fen amount"):
        GroupTerms(Mode.MULTI, "P", D("70.001"), 3)
    with pytest.raises(InvalidCommand, match="winners must be between 1"):
        GroupTerms(Mode.MERCHANT, "P", D("70"), 3, winners=4)
    with pytest.raises(InvalidCommand, match="belongs to a campaign"):
        GroupTerms(Mode.LOTTERY, "P", D("70"), 3)
    with pytest.raises(InvalidCommand, match="whole-fen"):
        GroupTerms(Mode.LOTTERY, "P", D("70"), 3, campaign="c", compensation=D("0.001"))
    with pytest.raises(InvalidCommand, match="needs a 32-byte seed"):
        open_group("g", GroupTerms(Mode.MERCHANT, "P", D("70"), 3), "A", "pA", T0)
    with pytest.raises(InvalidCommand, match="no seed"):
        open_group("g", multi(), "A", "pA", T0, seed=SEED)


# --- G3 merchant group -----------------------------------------------------------------------


def merchant(**kw: object) -> GroupTerms:
    return GroupTerms(Mode.MERCHANT, "P", D("70"), 3, winners=1, subsidy=D("5"), **kw)  # type: ignore[arg-type]


def test_merchant_group_of_3_draws_1_at_once_others_refunded_plus_subsidy_5() -> None:
    g, _ = open_group("g3", merchant(commission=D("8")), "A", "pA", T0, seed=SEED)
    assert g.commitment == draw.commitment(SEED)
    assert g.public()["seed"] is None  # secret until the draw
    join(g, "B", "pB", at(1))
    moves = join(g, "C", "pC", at(2))
    (winner,) = draw.winners(SEED, ["A", "B", "C"], 1)
    ref = {"A": "pA", "B": "pB", "C": "pC"}
    losers = [m for m in "ABC" if m != winner]
    assert moves[1:] == [
        Confirm("g3", ref[winner], winner, D("70"), f"group:g3:confirm:{ref[winner]}"),
        *[
            x
            for m in losers
            for x in (
                Refund("g3", ref[m], m, D("70"), f"group:g3:refund:{ref[m]}", "not drawn"),
                PaySP("g3", m, D("5"), "subsidy", f"group:g3:subsidy:{ref[m]}"),
            )
        ],
        # the leader's commission waits for the winner's order to settle
        PaySP("g3", "A", D("8"), "commission", "group:g3:commission:A", (ref[winner],)),
    ]
    assert g.state is GroupState.SUCCEEDED
    pub = g.public()
    assert draw.verify({**pub, "candidates": ["A", "B", "C"], "k": 1}) == [winner]


def test_merchant_commission_by_ratio_0_05_x_70_x_3_is_10_50() -> None:
    terms = merchant(commission_ratio=D("0.05"))
    assert terms.commission_amount() == D("10.50")
    g, _ = open_group("g3", terms, "A", "pA", T0, seed=SEED)
    join(g, "B", "pB", at(1))
    moves = join(g, "C", "pC", at(2))
    assert [m.amount for m in moves if isinstance(m, PaySP) and m.kind == "commission"] == [
        D("10.50")
    ]


def test_merchant_group_not_full_at_deadline_fails_without_subsidy() -> None:
    g, _ = open_group("g3", merchant(), "A", "pA", T0, seed=SEED, deadline=at(10))
    join(g, "B", "pB", at(1))
    moves = close(g, at(10))
    assert all(isinstance(m, Refund) for m in moves)
    assert len(moves) == 2
    assert g.result is None


# --- G2 lottery group ------------------------------------------------------------------------


def lottery_terms() -> GroupTerms:
    return GroupTerms(Mode.LOTTERY, "P", D("50"), 2, campaign="c1", compensation=D("10"))


def test_lottery_campaign_5_full_groups_k_2_losers_refunded_plus_compensation_10() -> None:
    c = Campaign.create("c1", SEED)
    groups = [open_group(f"g{i}", lottery_terms(), f"L{i}", f"p{i}a", at(i))[0] for i in range(5)]
    for i in (4, 3, 2, 1, 0):  # they fill in the reverse order of opening
        g = groups[i]
        assert join(g, f"M{i}", f"p{i}b", at(10 - i), campaign=c) == [
            Hold(f"g{i}", f"p{i}b", f"M{i}", D("50"), f"group:g{i}:hold:p{i}b")
        ]
        assert g.state is GroupState.FULL
    # one group of the campaign still open: not a candidate, fails later without compensation
    late, _ = open_group("late", lottery_terms(), "Z", "pz", at(20), deadline=at(30))
    fill_order = ["g4", "g3", "g2", "g1", "g0"]  # filled at minutes 6, 7, 8, 9, 10
    assert sorted(groups, key=lambda g: g.fill_no or 0) == [
        next(g for g in groups if g.id == gid) for gid in fill_order
    ]
    moves = campaign_draw(c, [*groups, late], 2, at(25), SEED2)
    won = draw.winners(SEED, fill_order, 2)
    confirms = [(m.group, m.member) for m in moves if isinstance(m, Confirm)]
    won_in_fill_order = [gid for gid in fill_order if gid in won]
    assert confirms == [
        (gid, who) for gid in won_in_fill_order for who in (f"L{gid[1]}", f"M{gid[1]}")
    ]
    refunds = [m for m in moves if isinstance(m, Refund)]
    comps = [m for m in moves if isinstance(m, PaySP)]
    assert len(refunds) == 6
    assert all(r.amount == D("50") for r in refunds)
    assert [(c.beneficiary, c.amount, c.kind) for c in comps] == [
        (r.member, D("10"), "compensation") for r in refunds
    ]
    states = {g.id: g.state for g in groups}
    assert states == {
        gid: GroupState.SUCCEEDED if gid in won else GroupState.LOST for gid in states
    }
    # the draw is public and verifiable; the next draw has a fresh commitment
    record = c.draws[0].public()
    assert record["candidates"] == fill_order
    assert draw.verify(record) == won
    assert c.commitment == draw.commitment(SEED2)
    # the open one expires: refunded, no compensation
    assert [type(m) for m in close(late, at(30))] == [Refund]
    # a second draw sees no group twice
    assert campaign_draw(c, groups, 2, at(40), SEED) == []


def test_lottery_fill_needs_its_campaign_and_a_full_group_waits_for_the_draw() -> None:
    g, _ = open_group("g", lottery_terms(), "A", "pA", T0, deadline=at(5))
    with pytest.raises(InvalidCommand, match="needs campaign c1"):
        join(g, "B", "pB", at(1), campaign=Campaign.create("other", SEED))
    assert len(g.places) == 1  # the refused join changed nothing
    join(g, "B", "pB", at(1), campaign=Campaign.create("c1", SEED))
    assert close(g, at(6)) == []  # full, not expired: it waits for the campaign's draw
    assert g.state is GroupState.FULL


def test_campaign_draw_refuses_a_reused_seed_and_foreign_groups() -> None:
    c = Campaign.create("c1", SEED)
    with pytest.raises(InvalidCommand, match="fresh 32-byte seed"):
        campaign_draw(c, [], 1, T0, SEED)
    g, _ = open_group("g", multi(), "A", "pA", T0)
    with pytest.raises(InvalidCommand, match="not lottery groups of campaign c1: g"):
        campaign_draw(c, [g], 1, T0, SEED2)


# --- G4 activity group and its shopping fund --------------------------------------------------


def test_activity_group_of_10_with_3_winners_each_gets_a_locked_fund_of_70() -> None:
    terms = GroupTerms(Mode.ACTIVITY, "P", D("70"), 10, winners=3, campaign="spring")
    g, _ = open_group("g4", terms, "M0", "p0", T0, seed=SEED)
    moves: list[object] = []
    for i in range(1, 10):
        moves = list(join(g, f"M{i}", f"p{i}", at(i)))
    won = draw.winners(SEED, [f"M{i}" for i in range(10)], 3)
    locks = [m for m in moves if isinstance(m, LockFund)]
    assert sorted(lk.member for lk in locks) == sorted(won)
    assert all(lk.amount == D("70") and lk.steps == 10 for lk in locks)
    refunds = [m for m in moves if isinstance(m, Refund)]
    assert len(refunds) == 7
    assert not [m for m in moves if isinstance(m, PaySP)]  # losers: no subsidy in G4


def test_fund_of_70_releases_7_00_per_task_at_most_one_step_a_day() -> None:
    fund = ShoppingFund("g4", "p1", "M1", D("70"))
    day = date(2024, 5, 1)
    first = fund.on_task("sign_in", day, "sign_in:2024-05-01")
    assert [(p.amount, p.kind, p.key) for p in first] == [
        (D("7.00"), "fund_release", "fund:p1:step:1")
    ]
    assert fund.on_task("share", day, "share:1") == []  # daily cap 1
    assert fund.on_task("sign_in", day + timedelta(1), "sign_in:2024-05-01") == []  # replay
    paid = [D("7.00")]
    for i in range(1, 12):
        paid += [p.amount for p in fund.on_task("invite", day + timedelta(i), f"invite:{i}")]
    assert paid == [D("7.00")] * 10
    assert fund.locked == 0
    with pytest.raises(InvalidCommand, match="unknown task"):
        fund.on_task("dance", day, "x")


def test_fund_steps_add_up_33_33_in_10_steps_is_9_x_3_33_plus_3_36() -> None:
    fund = ShoppingFund("g", "o", "m", D("33.33"), daily_steps=2)
    amounts = []
    for i in range(10):
        amounts += [p.amount for p in fund.on_task("share", date(2024, 1, 1 + i // 2), f"s{i}")]
    assert amounts == [D("3.33")] * 9 + [D("3.36")]
    assert sum(amounts) == D("33.33")


def test_refunded_winner_order_forfeits_what_is_still_locked() -> None:
    fund = ShoppingFund("g", "o", "m", D("70"))
    fund.on_task("share", date(2024, 1, 1), "a")  # 7.00 released and kept
    assert fund.on_refund(D("70")) == D("63.00")
    assert fund.on_task("share", date(2024, 1, 2), "b") == []


def test_partially_refunded_winner_order_shrinks_the_fund_to_what_was_paid() -> None:
    fund = ShoppingFund("g", "o", "m", D("70"))
    fund.on_task("share", date(2024, 1, 1), "a")  # 7.00
    assert fund.on_refund(D("60")) == D("60.00")  # entitled to 10.00, 3.00 left locked
    out = fund.on_task("share", date(2024, 1, 2), "b")
    assert [p.amount for p in out] == [D("3.00")]
    assert fund.released == D("10.00")
