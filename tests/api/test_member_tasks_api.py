"""A member's task over HTTP (both stores): ``POST /members/{member}/tasks`` is the TaskDone
fact that releases chain21's held help money and a step of each locked activity fund, once
per idempotency key; a sign-up with an invitation is the referrer's invite task.

Worked numbers (docs/MODELS.md, "chain21"; docs/GROUPBUY.md, "Activity group"): products of
100.00 settled at payment; alice is an agent at the top, bob (her recruit) buys: alice's
direct bonus is 10.00, of which floor2(10.00 x 0.20) = 2.00 is held for her help task and
8.00 paid.  An activity group of 2 at 70.00 with 2 winners locks a fund of 70.00 for each,
released 7.00 a task, one a day.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from api_helpers import Mall, assert_error, ok
from fastapi.testclient import TestClient
from groupbuy_api_helpers import offer, pay_place
from marketing_helpers import buy, join, models_on, net, product, settle_at_payment, wallet


def _task(client: TestClient, mall: Mall, member: str, task: str, key: str) -> Any:
    return client.post(
        mall.url(f"/members/{member}/tasks"), json={"task": task, "key": key}, headers=mall.operator
    )


def _chain21(client: TestClient, mall: Mall, **params: Any) -> tuple[int, str]:
    """chain21 on; alice buys (an agent at the top), then bob: alice holds 2.00 of 10.00."""
    settle_at_payment(client, mall)
    sku = product(client, mall)
    models_on(client, mall, {"chain21": params}, compliance_override="test: reviewed")
    buy(client, mall, "alice", sku)
    order = buy(client, mall, "bob", sku)
    assert net(client, mall, model="chain21", member="alice") == Decimal("8.00")
    return sku, order


def _held(client: TestClient, mall: Mall, member: str) -> Decimal:
    """What chain21 holds for ``member`` now, from its log (held less released)."""
    moves = ok(
        client.get(
            mall.url("/models/chain21/moves"), params={"member": member}, headers=mall.operator
        )
    )["items"]
    held = sum((Decimal(m["amount"]) for m in moves if m["kind"] == "held"), Decimal(0))
    return held - sum((Decimal(m["amount"]) for m in moves if m["kind"] == "released"), Decimal(0))


def test_a_task_releases_chain21s_held_money_once_per_key(client: TestClient, mall: Mall) -> None:
    _, order = _chain21(client, mall)
    sp_before, _ = wallet(client, mall, "alice")
    assert _held(client, mall, "alice") == Decimal("2.00")
    r = _task(client, mall, "alice", "sign_in", "day-1")
    done = ok(r, 201)
    assert done["replayed"] is False
    assert done["released"] == [{"source": "chain21", "order": order, "amount": "2.00"}]
    assert net(client, mall, model="chain21", member="alice") == Decimal("10.00")
    assert wallet(client, mall, "alice")[0] == sp_before + Decimal("2.00")
    assert _held(client, mall, "alice") == 0
    step = {r["step"] for r in ok(client.get(mall.url("/rewards"), headers=mall.operator))["items"]}
    assert "direct:help" in step
    # the same key again: the first report's record, nothing paid
    again = ok(_task(client, mall, "alice", "sign_in", "day-1"), 200)
    assert again["replayed"] is True
    assert again["released"] == done["released"]
    assert net(client, mall, model="chain21", member="alice") == Decimal("10.00")
    # another task: nothing is held any more
    assert ok(_task(client, mall, "alice", "share", "s-1"), 201)["released"] == []
    # a used key under another task kind is refused, nothing recorded
    assert_error(_task(client, mall, "alice", "share", "day-1"), 409, "idempotency_conflict")
    listed = ok(client.get(mall.url("/members/alice/tasks"), headers=mall.member))["items"]
    assert [(t["task"], t["key"]) for t in listed] == [
        ("invite", "invite:bob"),  # bob signed up with alice's invitation (nothing held then)
        ("sign_in", "day-1"),
        ("share", "s-1"),
    ]
    assert listed[0]["released"] == []
    assert listed[1]["released"] == done["released"]


def test_help_tasks_2_counts_each_key_once(client: TestClient, mall: Mall) -> None:
    _, order = _chain21(client, mall, help_tasks=2)
    assert ok(_task(client, mall, "alice", "sign_in", "k1"), 201)["released"] == []
    # a replay of k1 is not a second task: still held
    assert ok(_task(client, mall, "alice", "sign_in", "k1"), 200)["released"] == []
    assert _held(client, mall, "alice") == Decimal("2.00")
    done = ok(_task(client, mall, "alice", "share", "k2"), 201)
    assert done["released"] == [{"source": "chain21", "order": order, "amount": "2.00"}]
    assert net(client, mall, model="chain21", member="alice") == Decimal("10.00")


def test_a_refund_takes_held_money_first_and_a_task_then_releases_what_is_left(
    client: TestClient, mall: Mall
) -> None:
    """Half of bob's order refunded: 5.00 of alice's 10.00 bonus goes, 2.00 of it from what
    was held (never paid) and 3.00 from what was paid; nothing is left held to release."""
    _, order = _chain21(client, mall)
    ok(
        client.post(
            mall.url(f"/orders/{order}/refunds"),
            json={"refund_id": f"r{uuid.uuid4().hex[:8]}", "amount": "50.00"},
            headers=mall.operator,
        ),
        201,
    )
    assert net(client, mall, model="chain21", member="alice") == Decimal("5.00")
    assert ok(_task(client, mall, "alice", "sign_in", "d1"), 201)["released"] == []
    assert net(client, mall, model="chain21", member="alice") == Decimal("5.00")


def test_one_task_releases_chain21_and_an_activity_fund_and_an_invite_is_a_task(
    client: TestClient, mall: Mall
) -> None:
    _, order = _chain21(client, mall)
    o = offer(client, mall, mode="activity", size=2, winners=2, steps=10, daily_steps=1)
    g = ok(
        client.post(
            mall.url("/groupbuys/groups"),
            json={"offer": o["code"], "member": "alice"},
            headers=mall.operator,
        ),
        201,
    )
    pay_place(client, mall, g, "alice")
    g = ok(
        client.post(
            mall.url(f"/groupbuys/groups/{g['public_id']}/places"),
            json={"member": "bob"},
            headers=mall.operator,
        ),
        201,
    )
    pay_place(client, mall, g, "bob")
    place = next(p["order"] for p in g["places"] if p["member"] == "alice")
    funds = ok(client.get(mall.url("/groupbuys/funds?member=alice"), headers=mall.operator))
    assert [(f["amount"], f["locked"]) for f in funds] == [("70.00", "70.00")]
    # carol signs up with alice's invitation: alice's invite task, keyed invite:carol
    join(client, mall, "carol", "alice")
    listed = ok(client.get(mall.url("/members/alice/tasks"), headers=mall.operator))["items"]
    assert [(t["task"], t["key"]) for t in listed] == [
        ("invite", "invite:bob"),
        ("invite", "invite:carol"),
    ]
    assert listed[1]["released"] == [
        {"source": "chain21", "order": order, "amount": "2.00"},
        {"source": "groupbuy", "order": place, "amount": "7.00"},
    ]
    funds = ok(client.get(mall.url("/groupbuys/funds?member=alice"), headers=mall.operator))
    assert [(f["released"], f["locked"]) for f in funds] == [("7.00", "63.00")]
    # the integrator reporting that invite too: the same task, replayed
    again = ok(_task(client, mall, "alice", "invite", "invite:carol"), 200)
    assert again["released"] == listed[1]["released"]
    # a sign-in the same day: the fund's daily step is used, nothing is held by chain21
    assert ok(_task(client, mall, "alice", "sign_in", "d1"), 201)["released"] == []
    funds = ok(client.get(mall.url("/groupbuys/funds?member=alice"), headers=mall.operator))
    assert funds[0]["released"] == "7.00"


def test_the_group_buy_task_route_is_the_same_fact_and_only_for_the_back_end(
    client: TestClient, mall: Mall
) -> None:
    _, order = _chain21(client, mall)
    body = {"task": "share", "ref": "s1", "member": "alice"}
    assert_error(
        client.post(mall.url("/groupbuys/tasks"), json=body, headers=mall.member), 403, "forbidden"
    )
    done = ok(client.post(mall.url("/groupbuys/tasks"), json=body, headers=mall.operator))
    assert done["released"] == []  # no activity fund
    assert net(client, mall, model="chain21", member="alice") == Decimal("10.00")  # held released
    listed = ok(client.get(mall.url("/members/alice/tasks"), headers=mall.operator))["items"]
    assert [(t["task"], t["key"]) for t in listed] == [("invite", "invite:bob"), ("share", "s1")]
    assert [r["order"] for r in listed[1]["released"]] == [order]


def test_bad_task_reports_are_refused_and_change_nothing(client: TestClient, mall: Mall) -> None:
    _chain21(client, mall)
    assert_error(
        client.post(
            mall.url("/members/alice/tasks"),
            json={"task": "sign_in", "key": "k1"},
            headers=mall.member,
        ),
        403,
        "forbidden",
    )
    assert_error(_task(client, mall, "alice", "dance", "k1"), 422, "validation_error")
    assert_error(_task(client, mall, "alice", "sign_in", "bad key!"), 422, "validation_error")
    assert_error(_task(client, mall, "nobody", "sign_in", "k1"), 404, "not_found")
    r = client.get(mall.url("/members/bob/tasks"), headers=mall.member)
    assert_error(r, 404, "not_found")  # a member reads only their own
    listed = ok(client.get(mall.url("/members/alice/tasks"), headers=mall.operator))["items"]
    assert [t["key"] for t in listed] == ["invite:bob"]
    assert net(client, mall, model="chain21", member="alice") == Decimal("8.00")
