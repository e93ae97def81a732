"""Scenario files with marketing models and group buys (docs/RULES.md sections 4, 5 and 7):
the worked numbers of each model and each group mode, derived by hand from the rules."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenmall.scenario import ScenarioError, load_scenario, parse_scenario, run_on, run_scenario
from tokenmall.service.ledger import Ledger
from tokenmall.store.db import create_db_engine, migrate

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SEED = "5eed" * 16
SEED2 = "c0de" * 16


def buy(member: str, amount: str = "100", **extra: str) -> dict[str, str]:
    return {"type": "purchase", "member": member, "amount": amount, **extra}


def refund(order: str, amount: str | None = None) -> dict[str, str]:
    ev = {"type": "refund", "order": order}
    if amount is not None:
        ev["amount"] = amount
    return ev


def run(events: list[dict[str, Any]], models: dict[str, Any] | None = None, **config: Any):
    cfg: dict[str, Any] = dict(config)
    if models is not None:
        cfg["models"] = models
    return run_scenario(parse_scenario({"config": cfg, "events": events})).output()


def rewards(out: dict[str, Any], member: str) -> dict[str, str]:
    return out["members"][member]["rewards"]


def winners_by_hand(seed_hex: str, candidates: list[str], k: int) -> list[str]:
    """docs/RULES.md section 4: the k smallest sha256(seed:candidate) tickets, ascending."""
    seed = bytes.fromhex(seed_hex)

    def ticket(c: str) -> int:
        return int.from_bytes(hashlib.sha256(seed + b":" + c.encode()).digest(), "big")

    return sorted(candidates, key=ticket)[:k]


# ----------------------------------------------------------------------------- models


def test_distribution_pays_two_levels_and_partial_refunds_add_up_to_a_full_one() -> None:
    events = [
        buy("A"),
        buy("B", referrer="A"),
        buy("C", referrer="B", order="oc"),
    ]
    out = run(events, {"distribution": {}})
    # C's 100: referrer B floor2(100 x 0.10) = 10.00, grand-referrer A floor2(100 x 0.05) = 5.00;
    # B's own 100 paid A 10.00 as B's referrer
    assert rewards(out, "B") == {"distribution": "10"}
    assert rewards(out, "A") == {"distribution": "15"}
    assert rewards(out, "C") == {}
    assert out["members"]["B"]["stable"] == "10"  # SP in the wallet, paid from revenue
    assert out["steps"][2]["pool"] == run(events)["steps"][2]["pool"]  # never from the pool
    assert out["steps"][2]["dividend_fund"] == "90"  # nor from the dividend fund

    # refunding 30, then 20, then the rest takes back 3.00 + 2.00 + 5.00 and 1.50 + 1.00 + 2.50
    partial = run(
        [*events, refund("oc", "30"), refund("oc", "20"), refund("oc")], {"distribution": {}}
    )
    full = run([*events, refund("oc")], {"distribution": {}})
    assert rewards(partial, "B") == rewards(full, "B") == {"distribution": "0"}
    assert rewards(partial, "A") == rewards(full, "A") == {"distribution": "10"}
    assert partial["members"] == full["members"]


def test_a_take_back_of_spent_sp_leaves_a_debt_set_off_by_the_next_reward() -> None:
    events = [
        buy("A"),
        buy("B", referrer="A", order="ob"),  # A earns 10.00
        {"type": "withdraw", "request": "w1", "member": "A", "amount": "10"},
        {"type": "payout_result", "request": "w1", "paid": True},
        refund("ob"),  # 10.00 taken back from a wallet holding 0: a debt of 10
        buy("C", "200", referrer="A"),  # A earns 20.00: 10 set off, 10 kept
    ]
    out = run(events, {"distribution": {"ratios": ["0.10"]}})
    assert rewards(out, "A") == {"distribution": "20"}  # 10 - 10 + 20
    assert out["members"]["A"]["stable"] == "10"


def test_refer3_every_third_recruit_order_pays_back_the_referrer_order() -> None:
    recruits = [buy(f"b{i}", "50", referrer="R", order=f"o{i}") for i in range(1, 5)]
    events = [buy("R", "80"), *recruits]
    out = run(events, {"refer3": {}})
    # positions 1 and 2 pay 0 x 80, position 3 pays 1.0 x 80 = 80.00, the 4th starts cycle 2
    assert rewards(out, "R") == {"refer3": "80"}
    # the position-3 order refunded in full: 80.00 back, its position free; the next recruit
    # order takes it (cycle 1 is the oldest incomplete) and pays 80.00 again
    again = run([*events, refund("o3"), buy("b5", "50", referrer="R")], {"refer3": {}})
    assert rewards(again, "R") == {"refer3": "80"}
    # a quarter of the position-3 order refunded keeps the position, takes back 20.00
    quarter = run([*events, refund("o3", "12.50")], {"refer3": {}})
    assert rewards(quarter, "R") == {"refer3": "60"}


def test_chain21_hands_over_recruits_and_holds_the_help_fund_until_a_task() -> None:
    events = [
        buy("A"),
        buy("B", referrer="A"),
        buy("C", referrer="A"),
        buy("D", referrer="B"),
        buy("E", referrer="B"),
        buy("F", referrer="B"),
    ]
    models = {"chain21": {}}
    with pytest.raises(ScenarioError, match="max_levels"):
        run(events, models)
    out = run(events, models, compliance_override="pilot approved by legal")
    # A: direct for B, C, D, E; team for C, D, E; peer for F = 8 bonuses of 10.00, each
    # 10.00 - floor2(10.00 x 0.20) = 8.00 paid; B (a boss after E): direct and team for F
    assert rewards(out, "A") == {"chain21": "64"}
    assert rewards(out, "B") == {"chain21": "16"}
    done = run(
        [*events, {"type": "task", "member": "A", "task": "share"}],
        models,
        compliance_override="pilot approved by legal",
    )
    assert rewards(done, "A") == {"chain21": "80"}  # the 8 x 2.00 held is released


def test_queue_free_pays_the_queue_from_its_head_and_a_refund_lowers_the_target() -> None:
    events = [buy(f"X{i}", order=f"o{i}") for i in (1, 2, 3)]
    out = run(events, {"queue_free": {}})
    # o1: pot 10, joins; o2: pot 20 pays o1 20; o3: pot 10 pays o1 10
    assert rewards(out, "X1") == {"queue_free": "30"}
    assert rewards(out, "X2") == {}
    # refund 75 of o1: target floor2(25 x 1.0) = 25, 5 taken back; o4 pays the new head o2 15
    more = run([*events, refund("o1", "75"), buy("X4", order="o4")], {"queue_free": {}})
    assert rewards(more, "X1") == {"queue_free": "25"}
    assert rewards(more, "X2") == {"queue_free": "15"}


def test_rebate_releases_at_day_close_and_a_refund_shrinks_the_grant() -> None:
    close = {"type": "close_day"}
    events = [buy("A", order="o1"), close, close, close]
    out = run(events, {"rebate": {}})
    assert rewards(out, "A") == {"rebate": "1.5"}  # 3 x floor2(100 x 0.005)
    half = run([*events, refund("o1", "50"), close], {"rebate": {}})
    assert rewards(half, "A") == {"rebate": "1.25"}  # 1.50 - 0.75 + 0.50
    gone = run([*events, refund("o1", "50"), close, refund("o1")], {"rebate": {}})
    assert rewards(gone, "A") == {"rebate": "0"}


# ----------------------------------------------------------------------------- groups


def group_open(group: str, mode: str, leader: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "group_open",
        "group": group,
        "mode": mode,
        "product": "P",
        "price": extra.pop("price", "70"),
        "size": extra.pop("size", 3),
        "leader": leader,
        **extra,
    }


def join(group: str, member: str, **extra: str) -> dict[str, str]:
    return {"type": "group_join", "group": group, "member": member, **extra}


def test_a_multi_group_succeeds_when_full_in_join_order_and_fails_when_it_expires() -> None:
    events = [group_open("g1", "multi", "A"), join("g1", "B", referrer="A"), join("g1", "C")]
    out = run(events, {"distribution": {}})
    assert out["groups"]["g1"] == {
        "state": "succeeded",
        "members": ["A", "B", "C"],
        "winners": [],
        "commitment": None,
        "seed": None,
    }
    # held until full: the first two steps issue nothing; the third confirms A, B, C in join
    # order as purchases of 70: A 70 x 0.30 x 0.70 / 1 = 14.7 EP at the starting price,
    # then, as B's referrer, 21 x 0.10 / (21 / 14.7) = 1.47 at the price after A's
    assert [s["circulating"] for s in out["steps"][:2]] == ["0", "0"]
    assert out["members"]["A"]["points"] == "16.17"
    assert {m["spent"] for m in out["members"].values()} == {"70"}
    assert rewards(out, "A") == {"distribution": "7"}  # B's confirmed place, referred by A

    expired = run([*events[:2], {"type": "group_close", "group": "g1"}], {"distribution": {}})
    assert expired["groups"]["g1"]["state"] == "failed"
    for code in ("A", "B"):  # refunded in full: never a purchase, no reward
        m = expired["members"][code]
        assert (m["points"], m["stable"], m["spent"], m["quota_remaining"]) == ("0",) * 4
        assert m["rewards"] == {}
    assert expired["steps"][-1]["pool"] == "0"


def test_a_lottery_campaign_confirms_the_drawn_groups_and_compensates_the_others() -> None:
    events: list[dict[str, Any]] = []
    for g in ("g4", "g3", "g2"):  # fill in this order
        events += [
            group_open(g, "lottery", f"{g}a", size=2, price="50", campaign="c1", compensation="10"),
            join(g, f"{g}b"),
        ]
    events.append(group_open("g9", "lottery", "late", size=2, price="50", campaign="c1"))
    events.append({"type": "campaign_draw", "campaign": "c1", "winners": 1, "seed": SEED})
    events.append({"type": "group_close", "group": "g9"})
    out = run(events)
    won = winners_by_hand(SEED, ["g4", "g3", "g2"], 1)
    assert out["draws"]["c1"] == {
        "state": "drawn",
        "members": ["g4", "g3", "g2"],
        "winners": won,
        "commitment": hashlib.sha256(bytes.fromhex(SEED)).hexdigest(),
        "seed": SEED,
    }
    for g in ("g4", "g3", "g2"):
        state = "succeeded" if g in won else "lost"
        assert out["groups"][g]["state"] == state
        for code in (f"{g}a", f"{g}b"):
            m = out["members"][code]
            if g in won:
                assert (m["spent"], m["rewards"]) == ("50", {})
            else:  # refunded in full plus 10.00 compensation in SP from revenue
                assert (m["spent"], m["stable"], m["points"]) == ("0", "10", "0")
                assert m["rewards"] == {"groupbuy": "10"}
    assert out["groups"]["g9"]["state"] == "failed"  # not full at the draw: no compensation
    assert out["members"]["late"]["rewards"] == {}
    assert out["steps"][-1]["pool"] == "30"  # two confirmed places of 50 at 0.30


def test_a_merchant_group_draws_when_full_pays_subsidies_and_the_leader_commission() -> None:
    events = [
        group_open("m1", "merchant", "A", winners=1, subsidy="5", commission="8", seed=SEED),
        join("m1", "B"),
        join("m1", "C"),
    ]
    out = run(events)
    (won,) = winners_by_hand(SEED, ["A", "B", "C"], 1)
    assert out["groups"]["m1"]["winners"] == [won]
    assert out["groups"]["m1"]["seed"] == SEED
    for code in "ABC":
        m = out["members"][code]
        commission = Decimal(8) if code == "A" else Decimal(0)
        subsidy = Decimal(0) if code == won else Decimal(5)
        assert m["spent"] == ("70" if code == won else "0")
        got = Decimal(m["rewards"].get("groupbuy", "0"))
        assert got == commission + subsidy


def test_an_activity_winner_gets_a_fund_released_by_tasks_and_a_refund_forfeits_it() -> None:
    events = [
        group_open("a1", "activity", "A", winners=1, seed=SEED2),
        join("a1", "B"),
        join("a1", "C"),
    ]
    out = run(events)
    (won,) = winners_by_hand(SEED2, ["A", "B", "C"], 1)
    assert out["groups"]["a1"]["winners"] == [won]
    assert out["members"][won]["rewards"] == {}  # the fund is locked: nothing paid yet
    task = {"type": "task", "member": won, "task": "sign_in"}
    # one step of 70 / 10 = 7.00 per task, at most one a day (a second task the same day waits)
    released = run([*events, task, {**task, "task": "share"}])
    assert rewards(released, won) == {"groupbuy": "7"}
    # the winner's order refunded in full: what is still locked (63.00) is forfeited
    forfeited = run([*events, task, refund(f"a1:{won}"), {"type": "close_day"}, task])
    assert rewards(forfeited, won) == {"groupbuy": "7"}


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"models": {"lottery": {}}}, "config: unknown marketing model(s): lottery"),
        ({"models": {"distribution": {"ratio": "0.1"}}}, "config: model distribution: ratio"),
        (
            {"models": {"distribution": {"ratios": ["0.1", "0.05", "0.02"]}}},
            "config: rule max_levels: distribution pays through 3 levels",
        ),
    ],
)
def test_an_invalid_model_config_is_refused_with_its_reason(
    config: dict[str, Any], message: str
) -> None:
    with pytest.raises(ScenarioError) as exc:
        parse_scenario({"config": config, "events": [buy("A")]})
    assert str(exc.value).startswith(message)


def test_three_ratios_with_an_override_run() -> None:
    cfg = {"ratios": ["0.1", "0.05", "0.02"]}
    out = run(
        [buy("A"), buy("B", referrer="A"), buy("C", referrer="B"), buy("D", referrer="C")],
        {"distribution": cfg},
        compliance_override="three levels approved for the pilot",
    )
    assert rewards(out, "A") == {"distribution": "17"}  # 10 (B) + 5 (C) + 2 (D)


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([join("nope", "A")], "event 0: no group 'nope'"),
        ([group_open("g", "multi", "A", size=2), join("g", "B"), join("g", "C")], "event 2:"),
        ([group_open("g", "merchant", "A", compensation="1")], "merchant group has no compens"),
        ([group_open("g", "multi", "A", seed="zz")], "seed must be 64 hexadecimal"),
        ([buy("A", order="o1"), refund("o1", "101")], "event 1: order 'o1' has only 100"),
        (
            [group_open("g", "multi", "A"), refund("g:A")],
            "event 1: order 'g:A' is a place held in group 'g'",
        ),
    ],
)
def test_an_invalid_group_event_stops_the_run_naming_it(
    events: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(ScenarioError, match=message):
        run(events, {"distribution": {}})


# ----------------------------------------------------------------------------- stores, examples


def test_both_stores_agree_and_a_rerun_replays(db_url: str, tenant_code: str) -> None:
    scenario = load_scenario(EXAMPLES / "groups.json")
    first = run_scenario(scenario, db_url=db_url, tenant=tenant_code)
    again = run_scenario(scenario, db_url=db_url, tenant=tenant_code)
    assert first.output() == again.output() == run_scenario(scenario).output()
    assert again.applied == 0
    assert first.output()["groups"]


def test_the_models_example_runs() -> None:
    out = run_scenario(load_scenario(EXAMPLES / "models.json")).output()
    assert any(m["rewards"] for m in out["members"].values())


# ----------------------------------------------------------------------------- property


ALL_MODELS = {
    "distribution": {},
    "refer3": {},
    "chain21": {},
    "queue_free": {},
    "rebate": {"release_rate": "0.05"},
}
MEMBERS = ["A", "B", "C", "D", "E", "F"]


@st.composite
def scenarios(draw: st.DrawFn) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    refs: dict[str, str | None] = {}
    left: dict[str, Decimal] = {}  # what is left to refund of each purchase
    groups = 0
    for i in range(draw(st.integers(3, 14))):
        kind = draw(st.sampled_from(["buy", "buy", "buy", "close", "task", "group"]))
        who = draw(st.sampled_from(MEMBERS))
        if who not in refs:  # links are permanent: a member's first referrer stays
            earlier = [m for m in MEMBERS if m in refs and m != who]
            refs[who] = draw(st.none() | st.sampled_from(earlier)) if earlier else None
        ref = {"referrer": refs[who]} if refs[who] else {}
        if kind == "buy":
            amount = Decimal(draw(st.integers(100, 30000))) / 100
            events.append(buy(who, str(amount), order=f"o{i}", **ref))
            left[f"o{i}"] = amount
        elif kind == "close":
            events.append({"type": "close_day"})
        elif kind == "task":
            events.append({"type": "task", "member": who, "task": "share"})
        else:
            g = f"g{groups}"
            groups += 1
            other = next(m for m in MEMBERS if m != who)
            events.append(group_open(g, "multi", who, size=2, price="40", **ref))
            events.append(join(g, other))
            left[f"{g}:{who}"] = left[f"{g}:{other}"] = Decimal(40)
        partial = [o for o, v in left.items() if v > 1]
        if partial and draw(st.booleans()):
            o = draw(st.sampled_from(partial))
            events.append(refund(o, "1"))
            left[o] -= 1
    events += [refund(o) for o, v in left.items() if v > 0]  # what is left of every purchase
    return events


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=scenarios())
def test_after_every_purchase_is_refunded_no_model_keeps_anything(
    events: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    scenario = parse_scenario(
        {
            "config": {"models": ALL_MODELS, "compliance_override": "property test"},
            "events": events,
        }
    )
    url = f"sqlite:///{tmp_path_factory.mktemp('prop') / 'p.db'}"
    engine = create_db_engine(url)
    migrate(engine)
    try:
        out = run_on(engine, scenario).output()
        ledger = Ledger(engine)
        sums: dict[str, Decimal] = defaultdict(Decimal)
        for (_acct, asset), v in ledger.balances(ledger.tenant_id("scenario")).items():
            sums[asset] += v
    finally:
        engine.dispose()
    for m in out["members"].values():
        assert all(Decimal(v) == 0 for v in m["rewards"].values()), m
    assert all(v == 0 for v in sums.values()), dict(sums)
