"""Marketing models over HTTP on both stores: switching them on (audited, with the compliance
guard) and the worked numbers of docs/MODELS.md through the real order flow, with every refund
path (before settlement, partial, partials adding up to a full one, full, an SP debt)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from api_helpers import Mall, assert_error, ok
from fastapi.testclient import TestClient
from marketing_helpers import (
    books_ok,
    buy,
    close_day,
    join,
    models_on,
    net,
    product,
    refund,
    rewards,
    settle_at_payment,
    wallet,
)
from orders_helpers import set_params

from tokenmall.service import dayclose

D = Decimal


def _chain(client: TestClient, mall: Mall) -> int:
    """alice <- bob <- carol (the mall has alice and bob); settlement at payment."""
    join(client, mall, "carol", "bob")
    settle_at_payment(client, mall)
    return product(client, mall)


# ----------------------------------------------------------------------------- configuration


def test_models_are_switched_on_with_defaults_and_audited(client: TestClient, mall: Mall) -> None:
    assert ok(client.get(mall.url("/models"), headers=mall.operator))["models"] == {}
    got = models_on(
        client,
        mall,
        {"rebate": {"release_rate": "0.01"}, "distribution": {"freeze_days": 3}},
        reason="spring campaign",
    )
    assert got["order"] == ["distribution", "rebate"]
    assert got["models"]["distribution"] == {"ratios": ["0.10", "0.05"], "freeze_days": 3}
    assert got["models"]["rebate"] == {"rebate_ratio": "1.0", "release_rate": "0.01"}
    assert got["updated_by"].startswith("operator-key:")
    models_on(client, mall, {"rebate": {"release_rate": "0.01"}})
    trail = ok(client.get(mall.url("/model-changes"), headers=mall.operator))["items"]
    assert [c["id"] for c in trail] == [1, 2]
    assert trail[0]["before"] == {}
    assert trail[0]["reason"] == "spring campaign"
    assert trail[0]["changed"] == ["distribution", "rebate"]
    assert trail[1]["changed"] == ["distribution"]
    assert set(trail[1]["before"]) == {"distribution", "rebate"}
    assert set(trail[1]["after"]) == {"rebate"}


def test_bad_configurations_are_refused_and_change_nothing(client: TestClient, mall: Mall) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"pyramid": {}}, "invalid_parameter"),
        ({"distribution": {"ratios": ["0.6", "0.6"]}}, "invalid_parameter"),
        ({"distribution": {"ratios": [0.1]}}, "invalid_parameter"),  # a float
        ({"rebate": {"release_rate": "2"}}, "invalid_parameter"),
        ({"queue_free": {"speed": "1"}}, "invalid_parameter"),
        # bounded so that no order's reward can exceed what the ledger holds
        ({"rebate": {"rebate_ratio": "1e100"}}, "invalid_parameter"),
        ({"queue_free": {"money_max": "1e30"}}, "invalid_parameter"),
        ({"distribution": {"freeze_days": 10**12}}, "invalid_parameter"),
        ({"chain21": {}}, "compliance_refused"),
        ({"distribution": {"ratios": ["0.1", "0.05", "0.01"]}}, "compliance_refused"),
    ]
    for models, code in cases:
        r = client.put(mall.url("/models"), json={"models": models}, headers=mall.operator)
        err = assert_error(r, 422, code)
        if code == "compliance_refused":
            assert "rule max_levels" in err["message"]
    assert ok(client.get(mall.url("/models"), headers=mall.operator))["models"] == {}
    assert ok(client.get(mall.url("/model-changes"), headers=mall.operator))["items"] == []
    assert_error(client.put(mall.url("/models"), json={"models": {}}, headers=mall.member), 403)


def test_an_override_with_a_reason_is_recorded(client: TestClient, mall: Mall) -> None:
    reason = "legal reviewed 2026-12: two-level payout in practice"
    got = models_on(client, mall, {"chain21": {}}, compliance_override=reason)
    assert got["override_reason"] == reason
    trail = ok(client.get(mall.url("/model-changes"), headers=mall.operator))["items"]
    assert trail[-1]["override_reason"] == reason
    blank = client.put(
        mall.url("/models"),
        json={"models": {"chain21": {}}, "compliance_override": "   "},
        headers=mall.operator,
    )
    assert_error(blank, 422, "compliance_refused")


# ----------------------------------------------------------------------------- distribution


def test_distribution_pays_two_levels_and_partial_refunds_add_up(
    client: TestClient, mall: Mall
) -> None:
    sku = _chain(client, mall)
    models_on(client, mall, {"distribution": {}})
    order = buy(client, mall, "carol", sku)
    assert net(client, mall, member="bob") == D("10.00")  # floor2(100 x 0.10)
    assert net(client, mall, member="alice") == D("5.00")  # floor2(100 x 0.05)
    assert wallet(client, mall, "bob") == (D("10.00"), D(0))
    # three partial refunds of a third each: floor2(reward x q) cumulatively
    refund(client, mall, order, "33.33")
    assert net(client, mall, member="bob") == D("10.00") - D("3.33")
    assert net(client, mall, member="alice") == D("5.00") - D("1.66")
    refund(client, mall, order, "33.33")
    assert net(client, mall, member="bob") == D("10.00") - D("6.66")
    assert net(client, mall, member="alice") == D("5.00") - D("3.33")
    refund(client, mall, order, "33.34")
    assert net(client, mall, member="bob") == 0
    assert net(client, mall, member="alice") == 0
    assert wallet(client, mall, "bob") == (D(0), D(0))
    steps = [r["step"] for r in rewards(client, mall, member="bob")]
    assert steps[0] == "level1"
    assert all(s.startswith("level1:refund:") for s in steps[1:])
    books_ok(client, mall)


def test_refund_before_settlement_pays_no_reward_and_shrinks_the_base(
    client: TestClient, mall: Mall
) -> None:
    join(client, mall, "carol", "bob")
    sku = product(client, mall)
    models_on(client, mall, {"distribution": {}})
    order = buy(client, mall, "carol", sku)  # paid, waiting for settlement (7 days)
    refund(client, mall, order, "40.00")
    assert rewards(client, mall) == []
    ok(client.post(mall.url(f"/orders/{order}/settlement"), headers=mall.operator))
    assert net(client, mall, member="bob") == D("6.00")  # the 60.00 left
    assert net(client, mall, member="alice") == D("3.00")
    refund(client, mall, order, "30.00")  # half of what settled
    assert net(client, mall, member="bob") == D("3.00")
    refund(client, mall, order)  # the rest
    assert net(client, mall) == 0
    books_ok(client, mall)


def test_frozen_rewards_can_be_spent_not_withdrawn(client: TestClient, mall: Mall) -> None:
    sku = _chain(client, mall)
    models_on(client, mall, {"distribution": {"freeze_days": 7}})
    buy(client, mall, "carol", sku)
    mine = ok(client.get(mall.url("/members/bob/model-rewards"), headers=mall.operator))
    assert mine["net"] == "10.00"
    assert mine["frozen"] == "10.00"
    r = client.post(
        mall.url("/members/bob/withdrawals"),
        json={"amount": "5.00", "account": "openid-bob"},
        headers={**mall.operator, "Idempotency-Key": "w1"},
    )
    assert "frozen" in assert_error(r, 409, "insufficient_balance")["message"]
    assert wallet(client, mall, "bob") == (D("10.00"), D(0))
    # spending is allowed: 10.00 SP towards an order of 100.00
    buy(client, mall, "bob", sku, sp="10.00")
    assert wallet(client, mall, "bob") == (D(0), D(0))


def test_a_take_back_of_spent_sp_leaves_a_debt_set_off_by_the_next_credit(
    client: TestClient, mall: Mall
) -> None:
    sku = _chain(client, mall)
    models_on(client, mall, {"distribution": {"ratios": ["0.10"]}})
    carols = buy(client, mall, "carol", sku)
    bobs = buy(client, mall, "bob", sku, sp="10.00")  # bob spends his 10.00 reward
    assert wallet(client, mall, "bob") == (D(0), D(0))
    refund(client, mall, carols)
    assert wallet(client, mall, "bob") == (D(0), D("10.00"))  # owed, not negative
    refund(client, mall, bobs)  # his 10.00 SP comes back and pays the debt
    assert wallet(client, mall, "bob") == (D(0), D(0))
    assert net(client, mall) == 0
    books_ok(client, mall)


# ----------------------------------------------------------------------------- refer3


def test_refer3_every_third_recruit_order_returns_the_referrers_own(
    client: TestClient, mall: Mall
) -> None:
    settle_at_payment(client, mall)
    sku = product(client, mall)
    for f in ("f1", "f2", "f3", "f4"):
        join(client, mall, f, "alice")
    models_on(client, mall, {"refer3": {}})
    buy(client, mall, "bob", sku)  # alice has no order of her own yet: no position
    buy(client, mall, "alice", sku)
    buy(client, mall, "f1", sku)  # position 1 (pays 0)
    buy(client, mall, "f2", sku)  # position 2 (pays 0)
    third = buy(client, mall, "f3", sku)  # position 3: 1.0 x alice's 100.00
    assert net(client, mall, member="alice", model="refer3") == D("100.00")
    [paid] = rewards(client, mall, member="alice")
    assert paid["step"] == "cycle1:pos3"
    assert paid["order"] == third
    refund(client, mall, third)  # leaves its position: the reward is reversed
    assert net(client, mall, member="alice") == 0
    fourth = buy(client, mall, "f4", sku)  # takes the free position 3
    assert net(client, mall, member="alice") == D("100.00")
    refund(client, mall, fourth, "50.00")  # keeps the position, takes back half
    assert net(client, mall, member="alice") == D("50.00")
    books_ok(client, mall)


# ----------------------------------------------------------------------------- queue_free


def test_queue_free_pays_the_head_from_later_orders(client: TestClient, mall: Mall) -> None:
    settle_at_payment(client, mall)
    sku = product(client, mall)
    join(client, mall, "carol", None)
    join(client, mall, "dave", None)
    models_on(client, mall, {"queue_free": {}})
    # the pot keeps 10.00 of the first order (nobody waits yet); it joins, target 100.00
    first = buy(client, mall, "carol", sku)
    buy(client, mall, "dave", sku)  # pot 10.00 + 10.00 pays the head 20.00
    assert net(client, mall, member="carol") == D("20.00")
    buy(client, mall, "dave", sku)  # 10.00 more
    assert net(client, mall, member="carol") == D("30.00")
    refund(client, mall, first, "90.00")  # target -> 10.00: 20.00 taken back into the pot
    assert net(client, mall, member="carol") == D("10.00")
    paid = rewards(client, mall, model="queue_free")
    assert [r["amount"] for r in paid] == ["20.00", "10.00", "-20.00"]
    buy(client, mall, "carol", sku)  # pot 20 + 10 pays the next head (dave's first) 30.00
    assert net(client, mall, member="dave") == D("30.00")
    refund(client, mall, first)  # full: all it was paid comes back
    assert net(client, mall, member="carol") == 0
    books_ok(client, mall)


# ----------------------------------------------------------------------------- rebate


def _close(client: TestClient, mall: Mall, day: dt.date) -> None:
    app: Any = client.app
    ctx = app.state.tokenmall
    with ctx.store.read() as conn:
        clock = dayclose.tenant_clock(conn, ctx.tenant_id(mall.code))
    dayclose.close_day(ctx.store, clock, day)


def test_rebate_releases_at_each_day_close_and_refunds_shrink_it(
    client: TestClient, mall: Mall
) -> None:
    settle_at_payment(client, mall)
    sku = product(client, mall)
    models_on(client, mall, {"rebate": {}})
    order = buy(client, mall, "bob", sku)  # R = 100.00, 0.50 a day
    today = dt.date.fromisoformat(
        ok(client.get(mall.url("/day-close"), headers=mall.operator))["today"]
    )
    close_day(client, mall, today)
    assert net(client, mall, member="bob") == D("0.50")
    _close(client, mall, today + dt.timedelta(days=1))
    assert net(client, mall, member="bob") == D("1.00")
    refund(client, mall, order, "40.00")  # grant -> 60.00; floor2(1.00 x 0.4) back
    assert net(client, mall, member="bob") == D("0.60")
    _close(client, mall, today + dt.timedelta(days=2))
    assert net(client, mall, member="bob") == D("1.10")
    refund(client, mall, order)  # full: everything released comes back, release stops
    assert net(client, mall, member="bob") == 0
    _close(client, mall, today + dt.timedelta(days=3))
    assert net(client, mall, member="bob") == 0
    books_ok(client, mall)


# ----------------------------------------------------------------------------- chain21


def test_chain21_places_recruits_and_logs_every_move(client: TestClient, mall: Mall) -> None:
    settle_at_payment(client, mall)
    sku = product(client, mall)
    for f in ("c1", "c2"):
        join(client, mall, f, "bob")
    models_on(client, mall, {"chain21": {}}, compliance_override="test: reviewed")
    buy(client, mall, "alice", sku)  # an agent at the top
    buy(client, mall, "bob", sku)  # alice's first recruit: direct bonus 10.00, 2.00 held
    assert net(client, mall, member="alice") == D("8.00")
    buy(client, mall, "c1", sku)  # bob's first: handed over to alice (direct bonus)
    buy(client, mall, "c2", sku)  # bob's second: bob becomes a boss
    moves = ok(client.get(mall.url("/models/chain21/moves"), headers=mall.operator))["items"]
    kinds = [(m["kind"], m["member"]) for m in moves]
    assert ("agent", "alice") in kinds
    assert ("boss", "bob") in kinds
    assert ("placed", "c1") in kinds
    placed = {m["member"]: m["other"] for m in moves if m["kind"] == "placed"}
    assert placed["c1"] == "alice"
    held = sum(D(m["amount"]) for m in moves if m["kind"] == "held")
    paid = net(client, mall, model="chain21")
    bonus = sum(D(m["amount"]) for m in moves if m["kind"] == "bonus")
    assert paid + held == bonus  # what is not paid is held for the help task
    books_ok(client, mall)


def test_member_reads_own_rewards_only(client: TestClient, mall: Mall) -> None:
    sku = _chain(client, mall)
    models_on(client, mall, {"distribution": {}})
    buy(client, mall, "carol", sku)
    mine = ok(client.get(mall.url("/members/alice/model-rewards"), headers=mall.member))
    assert mine["models"][0]["model"] == "distribution"
    assert mine["net"] == "5.00"
    r = client.get(mall.url("/members/bob/model-rewards"), headers=mall.member)
    assert_error(r, 404, "not_found")
    totals = ok(client.get(mall.url("/rewards/totals"), headers=mall.operator))
    assert totals["net"] == "15.00"
    set_params(client, mall, settle_days="7")
