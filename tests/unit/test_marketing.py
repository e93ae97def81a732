"""Marketing models with worked numbers: every grant, every refund path, the runner and guard."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tokenmall.domain.marketing import (
    ComplianceRefused,
    DayClosed,
    ModelSet,
    OrderRefunded,
    OrderSettled,
    Reward,
    TaskDone,
)
from tokenmall.errors import InvalidCommand, InvalidParameter

D = Decimal
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
DAY = date(2024, 5, 1)


class Links:
    def __init__(self, **referrer: str) -> None:
        self.referrer = referrer

    def referrer_of(self, member: str) -> str | None:
        return self.referrer.get(member)


class Run:
    """One tenant's models, their states and every reward they returned."""

    def __init__(self, config: dict[str, Any], links: Links, override: str | None = None):
        self.set = ModelSet.from_config(config, compliance_override=override)
        self.states = self.set.new_states()
        self.links = links
        self.amounts: dict[str, D] = {}
        self.all: list[Reward] = []

    def _go(self, event: Any) -> list[Reward]:
        out = self.set.handle(self.states, event, self.links)
        self.all += out
        return out

    def settle(self, order: str, member: str, amount: str, product: str = "P") -> list[Reward]:
        self.amounts[order] = D(amount)
        return self._go(OrderSettled(order, member, D(amount), product, T0))

    def refund(self, order: str, rid: str, refunded: str) -> list[Reward]:
        return self._go(OrderRefunded(order, rid, D(refunded), self.amounts[order]))

    def close(self, day: date) -> list[Reward]:
        return self._go(DayClosed(day))

    def task(self, member: str) -> list[Reward]:
        return self._go(TaskDone(member, "share", DAY))

    def net(self) -> dict[str, D]:
        out: dict[str, D] = defaultdict(D)
        for r in self.all:
            out[r.beneficiary] += r.amount
        return {k: v for k, v in out.items() if v}


def pay(rewards: list[Reward]) -> list[tuple[str, D]]:
    return [(r.beneficiary, r.amount) for r in rewards]


# --- distribution ----------------------------------------------------------------------------


def test_distribution_on_100_pays_10_00_and_5_00_up_two_levels() -> None:
    run = Run({"distribution": {}}, Links(C="B", B="A", A="Z"))
    out = run.settle("o1", "C", "100")
    assert pay(out) == [("B", D("10.00")), ("A", D("5.00"))]  # Z is a third level: nothing
    assert [r.key for r in out] == [
        ("o1", "distribution", "B", "level1"),
        ("o1", "distribution", "A", "level2"),
    ]
    assert run.settle("o1", "C", "100") == []  # a replayed settlement pays nothing


def test_distribution_freeze_days_7_sets_withdrawable_at() -> None:
    run = Run({"distribution": {"freeze_days": 7}}, Links(C="B"))
    (r,) = run.settle("o1", "C", "100")
    assert r.withdrawable_at == T0 + timedelta(days=7)


def test_distribution_partial_refunds_30_then_100_add_up_to_a_full_one() -> None:
    run = Run({"distribution": {}}, Links(C="B", B="A"))
    run.settle("o1", "C", "100")
    # q = 0.3: 10.00 x 0.3 = 3.00, 5.00 x 0.3 = 1.50
    assert pay(run.refund("o1", "r1", "30")) == [("B", D("-3.00")), ("A", D("-1.50"))]
    assert run.refund("o1", "r1", "30") == []  # the same refund again takes nothing
    # q = 1 in total: 10.00 - 3.00 = 7.00 and 5.00 - 1.50 = 3.50
    assert pay(run.refund("o1", "r2", "100")) == [("B", D("-7.00")), ("A", D("-3.50"))]
    assert run.net() == {}


def test_distribution_thirds_of_33_33_take_back_1_11_each_time() -> None:
    run = Run({"distribution": {"ratios": ["0.10"]}}, Links(C="B"))
    assert pay(run.settle("o1", "C", "33.33")) == [("B", D("3.33"))]
    # floor2(3.33 x 1/3) = 1.11, floor2(3.33 x 2/3) = 2.22 (1.11 more), then 3.33 (1.11 more)
    assert pay(run.refund("o1", "r1", "11.11")) == [("B", D("-1.11"))]
    assert pay(run.refund("o1", "r2", "22.22")) == [("B", D("-1.11"))]
    assert pay(run.refund("o1", "r3", "33.33")) == [("B", D("-1.11"))]
    assert run.net() == {}


def test_distribution_stops_at_a_referral_loop() -> None:
    run = Run({"distribution": {}}, Links(A="B", B="A"))
    assert pay(run.settle("o1", "A", "100")) == [("B", D("10.00"))]


# --- compliance guard and configuration -----------------------------------------------------


def test_three_distribution_ratios_are_refused_unless_overridden_with_a_reason() -> None:
    three = {"distribution": {"ratios": ["0.10", "0.05", "0.02"]}}
    with pytest.raises(ComplianceRefused, match="rule max_levels: distribution pays through 3"):
        ModelSet.from_config(three)
    with pytest.raises(ComplianceRefused):
        ModelSet.from_config(three, compliance_override="   ")
    ms = ModelSet.from_config(three, compliance_override="approved by counsel, ticket 12")
    assert ms.override_reason == "approved by counsel, ticket 12"
    assert ModelSet.from_config({"distribution": {}}).override_reason is None


def test_chain21_is_always_refused_without_an_override() -> None:
    with pytest.raises(ComplianceRefused, match="chain21 pays through any number of levels"):
        ModelSet.from_config({"chain21": {}})
    assert ModelSet.from_config({"chain21": {}}, compliance_override="pilot").names == ("chain21",)


def test_configuration_errors_name_the_model_and_parameter() -> None:
    with pytest.raises(InvalidParameter, match="unknown marketing model"):
        ModelSet.from_config({"pyramid": {}})
    with pytest.raises(InvalidParameter, match=r"model rebate: bogus: Extra inputs"):
        ModelSet.from_config({"rebate": {"bogus": "1"}})
    with pytest.raises(InvalidParameter, match="not a float"):
        ModelSet.from_config({"rebate": {"release_rate": 0.005}})
    with pytest.raises(InvalidParameter, match="release_rate: Input should be less than"):
        ModelSet.from_config({"rebate": {"release_rate": "2"}})
    with pytest.raises(InvalidParameter, match="not add up to more than 1"):
        ModelSet.from_config({"distribution": {"ratios": ["0.6", "0.5"]}})


def test_models_run_in_the_fixed_order_whatever_the_config_order() -> None:
    config = {m: {} for m in ("rebate", "queue_free", "refer3", "distribution")}
    assert ModelSet.from_config(config).names == ("distribution", "refer3", "queue_free", "rebate")


def test_refund_event_is_validated() -> None:
    with pytest.raises(InvalidCommand, match="must be in"):
        OrderRefunded("o", "r", D("101"), D("100"))


# --- refer3 ----------------------------------------------------------------------------------


def refer3_run() -> Run:
    links = Links(**{f"b{i}": "R" for i in range(1, 10)})
    return Run({"refer3": {"products": ["P"]}}, links)


def test_refer3_third_recruit_order_refunds_the_referrers_80() -> None:
    run = refer3_run()
    assert run.settle("r-own", "R", "80") == []
    assert run.settle("o1", "b1", "50") == []  # position 1 pays 0 x 80
    assert run.settle("o2", "b2", "50") == []  # position 2 pays 0 x 80
    out = run.settle("o3", "b3", "50")  # position 3 pays 1.0 x 80 = 80.00
    assert [(r.beneficiary, r.amount, r.step) for r in out] == [("R", D("80.00"), "cycle1:pos3")]
    assert run.settle("o4", "b4", "50") == []  # a new cycle starts at position 1
    assert run.states["refer3"].cycles["R"] == [["o1", "o2", "o3"], ["o4", None, None]]


def test_refer3_needs_the_referrers_own_qualifying_order() -> None:
    run = refer3_run()
    run.settle("r-own", "R", "80", product="OTHER")  # not a qualifying product
    for i in (1, 2, 3):
        assert run.settle(f"o{i}", f"b{i}", "50") == []
    assert "R" not in run.states["refer3"].cycles  # no position taken at all


def test_refer3_full_refund_frees_the_position_for_the_oldest_incomplete_cycle() -> None:
    run = refer3_run()
    run.settle("r-own", "R", "80")
    for i in range(1, 5):
        run.settle(f"o{i}", f"b{i}", "50")
    # o3 held cycle 1 position 3 and paid 80.00: a full refund reverses it and frees it
    assert pay(run.refund("o3", "x1", "50")) == [("R", D("-80.00"))]
    # the next order takes cycle 1 position 3 (oldest incomplete), not cycle 2 position 2
    out = run.settle("o5", "b5", "50")
    assert [(r.amount, r.step) for r in out] == [(D("80.00"), "cycle1:pos3")]
    assert run.states["refer3"].cycles["R"] == [["o1", "o2", "o5"], ["o4", None, None]]


def test_refer3_partial_refund_keeps_the_position_and_takes_back_a_quarter() -> None:
    run = refer3_run()
    run.settle("r-own", "R", "80")
    for i in (1, 2, 3):
        run.settle(f"o{i}", f"b{i}", "50")
    assert pay(run.refund("o3", "x1", "12.50")) == [("R", D("-20.00"))]  # q = 0.25 of 80
    assert run.states["refer3"].positions["o3"] == ("R", 0, 3)
    assert pay(run.refund("o3", "x2", "50")) == [("R", D("-60.00"))]  # the rest: 80 in total
    assert run.net() == {}


def test_refer3_base_is_the_referrers_latest_order_less_its_refunds() -> None:
    run = refer3_run()
    run.settle("r1", "R", "80")
    run.settle("r2", "R", "60")
    run.refund("r2", "x", "10")  # latest own order now counts 50
    for i in (1, 2):
        run.settle(f"o{i}", f"b{i}", "50")
    assert pay(run.settle("o3", "b3", "50")) == [("R", D("50.00"))]
    run.refund("r2", "y", "60")  # fully refunded: the base falls back to r1 (80)
    for i in (4, 5):
        run.settle(f"o{i}", f"b{i}", "50")
    assert pay(run.settle("o6", "b6", "50")) == [("R", D("80.00"))]


# --- queue_free ------------------------------------------------------------------------------


def test_queue_free_three_orders_of_100_pot_and_payments_step_by_step() -> None:
    run = Run({"queue_free": {}}, Links())
    st = run.states["queue_free"]
    assert run.settle("o1", "m1", "100") == []  # pot 0 + 10 = 10, queue empty, o1 joins (100)
    assert st.pot == D("10")
    # pot 10 + 10 = 20 pays the head o1 min(20, 100) = 20; pot 0; o2 joins
    assert pay(run.settle("o2", "m2", "100")) == [("m1", D("20"))]
    assert st.pot == 0
    # pot 0 + 10 = 10 pays o1 10 (now 30 of 100); o3 joins
    out = run.settle("o3", "m3", "100")
    assert [(r.order, r.beneficiary, r.amount, r.step) for r in out] == [
        ("o1", "m1", D("10"), "from:o3")
    ]
    assert list(st.queue) == ["o1", "o2", "o3"]
    assert st.entries["o1"].paid == D("30")


def test_queue_free_head_leaves_when_its_target_is_reached_and_the_rest_flows_on() -> None:
    run = Run({"queue_free": {"rate_back": "0.5", "money_max": "30"}}, Links())
    run.settle("o1", "m1", "100")  # pot 50; o1 target min(100, 30) = 30
    # pot 50 + 50 = 100: o1 gets 30 and leaves; the queue is empty, pot keeps 70; o2 joins
    assert pay(run.settle("o2", "m2", "100")) == [("m1", D("30"))]
    st = run.states["queue_free"]
    assert st.pot == D("70")
    # pot 70 + 50 = 120: o2 gets 30 and leaves, pot keeps 90 (an order never pays itself)
    assert pay(run.settle("o3", "m3", "100")) == [("m2", D("30"))]
    assert st.pot == D("90")
    assert list(st.queue) == ["o3"]


def test_queue_free_pot_kept_to_4_decimals_pays_whole_fen() -> None:
    run = Run({"queue_free": {}}, Links())
    run.settle("o1", "m1", "100")  # pot 10
    run.settle("o2", "m2", "33.33")  # pot 10 + 3.333 = 13.333 -> pays 13.33, keeps 0.0030
    st = run.states["queue_free"]
    assert st.pot == D("0.0030")
    assert st.entries["o1"].paid == D("13.33")


def test_queue_free_refund_lowers_target_and_takes_the_excess_back_into_the_pot() -> None:
    run = Run({"queue_free": {}}, Links())
    for i in (1, 2, 3):
        run.settle(f"o{i}", f"m{i}", "100")  # o1 has been paid 30
    st = run.states["queue_free"]
    # refund 75 of o1: target floor2(100 x 0.25) = 25, so 5 goes back into the pot; it leaves
    assert [(r.amount, r.step) for r in run.refund("o1", "x1", "75")] == [(D("-5"), "refund:x1")]
    assert st.pot == D("5")
    assert list(st.queue) == ["o2", "o3"]
    assert pay(run.settle("o4", "m4", "100")) == [("m2", D("15"))]  # pot 5 + 10 = 15 to o2
    # a full refund of o2 takes back all it was paid and takes it out of the queue
    assert pay(run.refund("o2", "x2", "100")) == [("m2", D("-15"))]
    assert list(st.queue) == ["o3", "o4"]
    assert st.pot == D("15")  # its own 10.00 contribution stays in the pot


def test_queue_free_only_qualifying_orders_enter() -> None:
    run = Run({"queue_free": {"products": ["P"], "min_amount": "50"}}, Links())
    run.settle("o1", "m1", "49.99")
    run.settle("o2", "m2", "100", product="Q")
    assert run.states["queue_free"].pot == 0
    assert run.refund("o1", "x", "49.99") == []


# --- rebate ----------------------------------------------------------------------------------


def test_rebate_releases_0_50_a_day_of_100() -> None:
    run = Run({"rebate": {}}, Links())
    assert run.settle("o1", "m", "100") == []  # R = 100.00, daily floor2(100 x 0.005) = 0.50
    for i in range(3):
        out = run.close(DAY + timedelta(i))
        assert [(r.amount, r.step) for r in out] == [(D("0.50"), f"day:{DAY + timedelta(i)}")]
    assert run.close(DAY + timedelta(2)) == []  # a day is closed once
    assert run.states["rebate"].grants["o1"].released == D("1.50")


def test_rebate_last_payment_is_capped_at_what_remains() -> None:
    run = Run({"rebate": {"release_rate": "0.3"}}, Links())
    run.settle("o1", "m", "1")  # R = 1.00, daily 0.30
    paid = [r.amount for i in range(6) for r in run.close(DAY + timedelta(i))]
    assert paid == [D("0.30"), D("0.30"), D("0.30"), D("0.10")]


def test_rebate_half_refund_shrinks_the_grant_and_takes_back_half_of_what_was_released() -> None:
    run = Run({"rebate": {}}, Links())
    run.settle("o1", "m", "100")
    for i in range(3):
        run.close(DAY + timedelta(i))  # 1.50 released
    # q = 0.5: grant 100 - 50 = 50; take back floor2(1.50 x 0.5) = 0.75
    assert pay(run.refund("o1", "x1", "50")) == [("m", D("-0.75"))]
    g = run.states["rebate"].grants["o1"]
    assert (g.shrunk, g.kept) == (D("50.00"), D("0.75"))
    assert pay(run.close(DAY + timedelta(3))) == [("m", D("0.50"))]  # same daily amount
    # a full refund stops it and takes everything back: released 2.00, 0.75 taken -> 1.25
    assert pay(run.refund("o1", "x2", "100")) == [("m", D("-1.25"))]
    assert run.close(DAY + timedelta(4)) == []
    assert run.net() == {}


def test_rebate_after_a_partial_refund_stops_when_kept_reaches_the_shrunk_grant() -> None:
    run = Run({"rebate": {"release_rate": "0.5"}}, Links())
    run.settle("o1", "m", "10")  # R = 10.00, daily 5.00
    run.close(DAY)  # 5.00
    assert pay(run.refund("o1", "x", "6")) == [("m", D("-3.00"))]  # shrunk 4.00, kept 2.00
    paid = [r.amount for i in range(1, 4) for r in run.close(DAY + timedelta(i))]
    assert paid == [D("2.00")]  # capped: kept reaches 4.00


# --- chain21 ---------------------------------------------------------------------------------


def chain_run() -> Run:
    links = Links(B="A", C="A", D="B", E="B", F="B")
    return Run({"chain21": {"entry_products": ["PACK"]}}, links, override="pilot approved")


def test_chain21_hand_over_boss_team_and_peer_bonuses_with_20_percent_held() -> None:
    run = chain_run()
    assert run.settle("a", "A", "100", "PACK") == []  # A: agent at the top
    # B (A's 1st recruit): A has no upline, so A keeps B and the direct bonus 10.00,
    # of which floor2(10 x 0.20) = 2.00 is held: 8.00 paid
    assert [(r.beneficiary, r.step, r.amount) for r in run.settle("b", "B", "100", "PACK")] == [
        ("A", "direct", D("8.00"))
    ]
    # C (A's 2nd): direct to A; A becomes a boss, so C's nearest boss above is A: team 10.00
    out = run.settle("c", "C", "100", "PACK")
    assert [(r.beneficiary, r.step, r.amount) for r in out] == [
        ("A", "direct", D("8.00")),
        ("A", "team", D("8.00")),
    ]
    st = run.states["chain21"]
    assert st.agents["A"].boss
    # D and E (B's 1st and 2nd): handed over to B's upline A (direct to A) and team to A
    run.settle("d", "D", "100", "PACK")
    run.settle("e", "E", "100", "PACK")
    assert st.agents["D"].parent == "A"
    assert st.agents["E"].parent == "A"
    assert st.agents["B"].boss
    assert st.agents["B"].parent is None  # detached from A
    assert st.agents["E"].recruiter == "B"  # the original link is kept
    # F (B's 3rd) stays under B: direct + team to B, peer to B's boss A (original links)
    out = run.settle("f", "F", "100", "PACK")
    assert [(r.beneficiary, r.step, r.amount) for r in out] == [
        ("B", "direct", D("8.00")),
        ("B", "team", D("8.00")),
        ("A", "peer", D("8.00")),
    ]
    assert run.settle("x", "F", "100", "OTHER") == []  # not an entry pack
    kinds = [e.kind for e in st.log]
    assert kinds.count("boss") == 2
    assert kinds.count("held") == 10


def test_chain21_help_fund_released_by_a_task_and_refund_takes_held_money_first() -> None:
    run = chain_run()
    for o, m in (("a", "A"), ("b", "B"), ("c", "C")):
        run.settle(o, m, "100", "PACK")  # A holds 2.00 (b direct) + 2.00 + 2.00 (c direct, team)
    # half of c refunded: each c bonus 10.00 loses 5.00: 2.00 from held, 3.00 taken back
    assert pay(run.refund("c", "x1", "50")) == [("A", D("-3.00")), ("A", D("-3.00"))]
    # a task releases what is still held: b's 2.00 (c's held money is gone)
    out = run.task("A")
    assert [(r.order, r.step, r.amount) for r in out] == [("b", "direct:help", D("2.00"))]
    assert run.task("A") == []  # nothing held: nothing to release
    run.refund("c", "x2", "100")
    run.refund("b", "x3", "100")
    assert run.net() == {}


def test_chain21_referrer_who_is_not_an_agent_recruits_no_one() -> None:
    run = Run({"chain21": {}}, Links(B="A"), override="pilot")
    assert run.settle("b", "B", "100") == []  # A never bought a pack
    assert run.states["chain21"].agents["B"].parent is None
