"""The whole life of an order over HTTP, on SQLite and PostgreSQL: create, pay through the
sandbox (the notification delivered five times), confirm, settle, and refunds before and
after settlement with the effects of R11."""

from __future__ import annotations

from decimal import Decimal

from api_helpers import Mall, assert_error, ok
from fastapi.testclient import TestClient
from orders_helpers import (
    complete,
    create_order,
    economy,
    figures,
    notify,
    paid_order,
    read_order,
    run_settlement,
    set_params,
    start_payment,
)

WEEK = 7 * 86_400


def sku_stock(client: TestClient, mall: Mall) -> int:
    return int(ok(client.get(mall.url(f"/skus/{mall.sku_id}"), headers=mall.operator))["stock"])


def test_order_life_notification_five_times_rewards_once(client: TestClient, mall: Mall) -> None:
    order = create_order(client, mall, member="bob", qty=1)
    assert order["status"] == "pending_payment"
    assert order["total"] == "100.00"
    assert order["lines"][0]["pool_amount"] == "30.00"
    assert sku_stock(client, mall) == 9
    ref = order["ref"]

    pay = start_payment(client, mall, ref)
    assert (pay["provider"], pay["cny"], pay["sp"], pay["status"]) == (
        "sandbox",
        "100.00",
        "0.00",
        "requires_payment",
    )
    # asking again with the same split returns the same waiting attempt
    assert start_payment(client, mall, ref)["intent_id"] == pay["intent_id"]

    done = complete(client, mall, pay["intent_id"], deliver=False)
    assert done["status"] == "succeeded"
    assert len(done["deliveries"]) == 1
    assert read_order(client, mall, ref)["status"] == "pending_payment"  # nothing delivered yet
    delivery = done["deliveries"][0]
    answers = [ok(notify(client, mall, delivery)) for _ in range(5)]
    assert [a["duplicate"] for a in answers] == [False, True, True, True, True]
    assert {a["outcome"] for a in answers} == {"applied"}
    assert answers[0]["order_ref"] == ref

    paid = read_order(client, mall, ref)
    assert paid["status"] == "paid"
    assert (paid["paid_cny"], paid["paid_sp"]) == ("100.00", "0.00")
    assert [p["status"] for p in paid["payments"]] == ["paid"]
    # R11: nothing is granted before settlement; the money waits in escrow
    assert figures(client, mall, "bob")["points"] == 0
    assert figures(client, mall, "bob")["quota_remaining"] == 0
    assert economy(client, mall)["escrow"] == Decimal(100)

    delivered = ok(client.post(mall.url(f"/orders/{ref}/delivery"), headers=mall.operator))
    assert delivered["status"] == "delivered"
    assert delivered["settle_at"] is not None
    # the return window has not passed: nothing settles
    assert run_settlement(client, mall, 60).settled == 0
    report = run_settlement(client, mall, WEEK + 60)
    assert (report.settled, report.failed) == (1, [])
    assert run_settlement(client, mall, WEEK + 120).settled == 0  # once

    settled = read_order(client, mall, ref)
    assert settled["status"] == "settled"
    bob = figures(client, mall, "bob")
    # R1 at price 1: 30 to the pool (the product's amount), 70% of it as EP to bob
    assert bob["points"] == Decimal(21)
    assert bob["quota_remaining"] == Decimal(200)
    assert bob["spent"] == Decimal(100)
    # bob was invited by alice; the mall's referral_ratio is 0.05
    assert figures(client, mall, "alice")["points"] == Decimal("1.5")
    eco = economy(client, mall)
    assert (eco["pool"], eco["escrow"]) == (Decimal(30), Decimal(0))

    # notifications delivered again after settlement still change nothing
    assert ok(notify(client, mall, delivery))["duplicate"] is True
    assert figures(client, mall, "bob")["points"] == Decimal(21)


def test_refund_before_settlement_returns_money_and_grants_nothing(
    client: TestClient, mall: Mall
) -> None:
    order = paid_order(client, mall, member="bob")
    ref = order["ref"]
    before = economy(client, mall)
    r = client.post(
        mall.url(f"/orders/{ref}/refunds"), json={"refund_id": "rf-1"}, headers=mall.operator
    )
    refund = ok(r, 201)
    assert (refund["amount"], refund["cny"], refund["sp"]) == ("100.00", "100.00", "0.00")
    assert refund["phase"] == "before_settlement"
    # the CNY part went back through the sandbox, whose notification confirmed it
    assert refund["provider_status"] == "succeeded"
    after = read_order(client, mall, ref)
    assert after["status"] == "refunded"
    assert after["refunded"] == "100.00"
    eco = economy(client, mall)
    assert eco["escrow"] == Decimal(0)
    assert eco["world"] == before["world"] + Decimal(100)
    assert figures(client, mall, "bob")["points"] == 0
    # a refunded order never settles
    ok(client.post(mall.url(f"/orders/{ref}/delivery"), headers=mall.operator))
    assert run_settlement(client, mall, 2 * WEEK).settled == 0
    assert figures(client, mall, "bob")["points"] == 0
    assert figures(client, mall, "alice")["points"] == 0


def test_refund_after_settlement_takes_rewards_back_without_lowering_the_price(
    client: TestClient, mall: Mall
) -> None:
    first = paid_order(client, mall, member="alice")
    second = paid_order(client, mall, member="bob")
    for o in (first, second):
        ok(client.post(mall.url(f"/orders/{o['ref']}/settlement"), headers=mall.operator))
    bob = figures(client, mall, "bob")
    assert bob["points"] > 0
    assert bob["quota_remaining"] == Decimal(200)
    before = economy(client, mall)

    refund = ok(
        client.post(
            mall.url(f"/orders/{second['ref']}/refunds"),
            json={"refund_id": "after-1", "reason": "returned"},
            headers=mall.operator,
        ),
        201,
    )
    assert refund["phase"] == "after_settlement"
    assert refund["cny"] == "100.00"
    after = economy(client, mall)
    bob_after = figures(client, mall, "bob")
    assert bob_after["points"] == 0  # the EP it granted are burned
    assert bob_after["quota_remaining"] == 0  # the quota it granted is removed
    assert bob_after["spent"] == 0
    assert after["burned"] > before["burned"]
    assert after["price"] >= before["price"]  # R11: the price does not fall
    assert after["pool"] < before["pool"]  # the pool gave back what the burned EP were worth
    assert read_order(client, mall, second["ref"])["status"] == "refunded"


def test_partial_refunds_and_idempotent_refund_ids(client: TestClient, mall: Mall) -> None:
    order = paid_order(client, mall, member="bob", qty=2)
    ref = order["ref"]
    url = mall.url(f"/orders/{ref}/refunds")

    def post(body: dict[str, str]) -> object:
        return client.post(url, json=body, headers=mall.operator)

    first = ok(post({"refund_id": "p1", "amount": "50.00"}), 201)
    assert first["amount"] == "50.00"
    # the same id and amount: the same answer, nothing refunded twice
    again = ok(post({"refund_id": "p1", "amount": "50.00"}), 200)
    assert again == first
    assert_error(post({"refund_id": "p1", "amount": "60.00"}), 409, "idempotency_conflict")
    assert_error(post({"refund_id": "p1"}), 409, "idempotency_conflict")
    assert read_order(client, mall, ref)["refunded"] == "50.00"

    ok(post({"refund_id": "p2", "amount": "100.00"}), 201)
    assert_error(post({"refund_id": "p3", "amount": "60.00"}), 422)  # only 50 left
    partial = read_order(client, mall, ref)
    assert (partial["status"], partial["refunded"]) == ("paid", "150.00")

    # settles on what is left: 50 of 200, so a quarter of the rewards
    ok(client.post(mall.url(f"/orders/{ref}/settlement"), headers=mall.operator))
    bob = figures(client, mall, "bob")
    assert bob["spent"] == Decimal(50)
    assert bob["quota_remaining"] == Decimal(100)
    assert bob["points"] == Decimal("10.5")  # 30 x 2 x 50/200 into the pool, 70% of it

    last = ok(post({"refund_id": "p3"}), 201)  # all that is left, after settlement
    assert (last["amount"], last["phase"]) == ("50.00", "after_settlement")
    done = read_order(client, mall, ref)
    assert (done["status"], done["refunded"]) == ("refunded", "200.00")
    assert [r["refund_id"] for r in done["refunds"]] == ["p1", "p2", "p3"]
    assert figures(client, mall, "bob")["points"] == 0
    assert_error(post({"refund_id": "p4", "amount": "1.00"}), 409, "order_state")

    # a refund id belongs to one refund: reusing it for another order is refused
    other = paid_order(client, mall, member="bob")
    r = client.post(
        mall.url(f"/orders/{other['ref']}/refunds"),
        json={"refund_id": "p1", "amount": "50.00"},
        headers=mall.operator,
    )
    assert_error(r, 409, "idempotency_conflict")


def test_settle_days_zero_settles_at_payment(client: TestClient, mall: Mall) -> None:
    set_params(client, mall, settle_days="0")
    order = paid_order(client, mall, member="bob")
    assert order["status"] == "settled"
    assert order["settled_at"] is not None
    assert figures(client, mall, "bob")["points"] == Decimal(21)
    confirmed = ok(client.post(mall.url(f"/orders/{order['ref']}/delivery"), headers=mall.operator))
    assert confirmed["status"] == "settled"
    assert confirmed["delivered_at"] is not None


def test_cancel_and_expiry_release_stock_once(client: TestClient, mall: Mall) -> None:
    order = create_order(client, mall, member="bob", qty=3)
    assert sku_stock(client, mall) == 7
    cancelled = ok(client.post(mall.url(f"/orders/{order['ref']}/cancel"), headers=mall.operator))
    assert cancelled["status"] == "cancelled"
    assert sku_stock(client, mall) == 10
    ok(client.post(mall.url(f"/orders/{order['ref']}/cancel"), headers=mall.operator))
    assert sku_stock(client, mall) == 10  # cancelling again gives nothing back twice
    assert_error(
        client.post(mall.url(f"/orders/{order['ref']}/payments"), json={}, headers=mall.operator),
        409,
        "order_state",
    )
    paid = paid_order(client, mall, member="bob")
    r = client.post(mall.url(f"/orders/{paid['ref']}/cancel"), headers=mall.operator)
    assert_error(r, 409, "order_state")


def test_a_full_refund_of_undelivered_goods_restocks_once(client: TestClient, mall: Mall) -> None:
    order = paid_order(client, mall, member="bob", qty=3)
    assert sku_stock(client, mall) == 7
    url = mall.url(f"/orders/{order['ref']}/refunds")
    ok(client.post(url, json={"refund_id": "half", "amount": "100.00"}, headers=mall.operator), 201)
    assert sku_stock(client, mall) == 7  # a partial refund is money, not units
    ok(client.post(url, json={"refund_id": "rest"}, headers=mall.operator), 201)
    assert read_order(client, mall, order["ref"])["status"] == "refunded"
    assert sku_stock(client, mall) == 10
    # the same refund again is a replay: nothing comes back twice
    ok(client.post(url, json={"refund_id": "rest"}, headers=mall.operator), 200)
    assert sku_stock(client, mall) == 10


def test_a_refund_of_delivered_goods_leaves_stock_alone(client: TestClient, mall: Mall) -> None:
    order = paid_order(client, mall, member="bob", qty=2)
    ok(client.post(mall.url(f"/orders/{order['ref']}/delivery"), headers=mall.operator))
    assert sku_stock(client, mall) == 8
    ok(
        client.post(
            mall.url(f"/orders/{order['ref']}/refunds"),
            json={"refund_id": "after-delivery"},
            headers=mall.operator,
        ),
        201,
    )
    assert read_order(client, mall, order["ref"])["status"] == "refunded"
    assert sku_stock(client, mall) == 8  # the goods are with the buyer
