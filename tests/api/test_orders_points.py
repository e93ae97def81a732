"""Paying for goods with EP (R4) over HTTP, on SQLite and PostgreSQL: the points are priced
when the payment applies, so the parts always add up to the total; EP earns no reward at
settlement; a refund returns the EP part as SP."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

from api_helpers import Mall, assert_error, ok
from fastapi.testclient import TestClient
from orders_helpers import (
    complete,
    create_order,
    economy,
    engine,
    figures,
    notify,
    read_order,
    start_payment,
    tenant_id,
)

from tokenmall.domain.economy import Purchase, Sell
from tokenmall.service.ledger import Ledger

ATOM = Decimal("0.00000001")
SELL_FEE = Decimal("0.10")


def seed_points(client: TestClient, mall: Mall, member: str, amount: str = "1000") -> Decimal:
    """``member`` buys (and settles) ``amount`` CNY outside the mall: they hold EP."""
    Ledger(engine(client)).submit(
        tenant_id(client, mall),
        [(f"seed-ep:{member}", Purchase(f"seed-ep-{member}", member, Decimal(amount)))],
    )
    return figures(client, mall, member)["points"]


def worth(points: Decimal, pool: Decimal, circulating: Decimal) -> Decimal:
    """What redeeming ``points`` pays (R3 payout, after the sell fee), cut to the fen."""
    return (points * pool * (1 - SELL_FEE) / circulating).quantize(Decimal("0.01"), ROUND_DOWN)


def test_points_and_sp_pay_at_once_at_the_current_price(client: TestClient, mall: Mall) -> None:
    held = seed_points(client, mall, "alice")
    before = economy(client, mall)
    order = create_order(client, mall, member="alice")
    pay = start_payment(client, mall, order["ref"], points_value="100.00")
    assert (pay["provider"], pay["cny"], pay["points_value"], pay["status"]) == (
        "wallet",
        "0.00",
        "100.00",
        "paid",
    )
    paid = read_order(client, mall, order["ref"])
    assert (paid["status"], paid["paid_points_value"]) == ("paid", "100.00")
    burned = Decimal(paid["paid_points"])
    # the fewest points worth exactly 100.00 at the price when it applied
    assert worth(burned, before["pool"], before["circulating"]) == Decimal(100)
    assert worth(burned - ATOM, before["pool"], before["circulating"]) < Decimal(100)
    assert figures(client, mall, "alice")["points"] == held - burned
    after = economy(client, mall)
    assert after["price"] >= before["price"]  # a redemption is a sell: the fee stays in the pool
    assert after["escrow"] == Decimal(100)

    # settled: EP-paid goods earn no reward
    ok(client.post(mall.url(f"/orders/{order['ref']}/settlement"), headers=mall.operator))
    assert figures(client, mall, "alice")["points"] == held - burned
    assert figures(client, mall, "alice")["spent"] == Decimal(1000)  # only the seed purchase
    # refunded after settlement: the EP part comes back as SP
    refund = ok(
        client.post(
            mall.url(f"/orders/{order['ref']}/refunds"),
            json={"refund_id": "ep-1"},
            headers=mall.operator,
        ),
        201,
    )
    assert (refund["cny"], refund["sp"], refund["provider_status"]) == ("0.00", "100.00", "none")
    assert figures(client, mall, "alice")["stable"] == Decimal(100)


def test_points_with_cny_are_priced_when_the_notification_arrives(
    client: TestClient, mall: Mall
) -> None:
    seed_points(client, mall, "bob")
    order = create_order(client, mall, member="bob")
    pay = start_payment(client, mall, order["ref"], points_value="40.00")
    assert (pay["cny"], pay["points_value"]) == ("60.00", "40.00")
    delivery = complete(client, mall, pay["intent_id"], deliver=False)["deliveries"][0]
    # meanwhile someone else buys: the price rises, so fewer points pay the same 40 CNY
    price_then = economy(client, mall)["price"]
    Ledger(engine(client)).submit(
        tenant_id(client, mall), [("other", Purchase("other-order", "zoe", Decimal(500)))]
    )
    at_apply = economy(client, mall)
    assert at_apply["price"] > price_then
    held = figures(client, mall, "bob")["points"]
    assert ok(notify(client, mall, delivery))["outcome"] == "applied"
    paid = read_order(client, mall, order["ref"])
    assert (paid["paid_cny"], paid["paid_sp"], paid["paid_points_value"]) == (
        "60.00",
        "0.00",
        "40.00",
    )
    burned = Decimal(paid["paid_points"])
    assert worth(burned, at_apply["pool"], at_apply["circulating"]) == Decimal(40)
    assert figures(client, mall, "bob")["points"] == held - burned
    assert economy(client, mall)["escrow"] == Decimal(100)

    # settlement rewards the 60 CNY only: the product's 30 per unit, scaled to 60 of 100
    pool_before = economy(client, mall)["pool"]
    settled = ok(client.post(mall.url(f"/orders/{order['ref']}/settlement"), headers=mall.operator))
    assert settled["status"] == "settled"
    assert economy(client, mall)["pool"] == pool_before + Decimal(18)
    assert figures(client, mall, "bob")["spent"] == Decimal(1000) + Decimal(60)


def test_points_spent_before_the_notification_fail_the_order(
    client: TestClient, mall: Mall
) -> None:
    held = seed_points(client, mall, "bob")
    order = create_order(client, mall, member="bob")
    pay = start_payment(client, mall, order["ref"], points_value="50.00")
    # bob sells every point before paying the CNY part
    Ledger(engine(client)).submit(tenant_id(client, mall), [("sell-all", Sell("bob", held))])
    done = complete(client, mall, pay["intent_id"])
    assert done["results"][0]["outcome"] == "voided"
    failed = read_order(client, mall, order["ref"])
    assert failed["status"] == "failed"
    assert failed["payments"][0]["refund_status"] == "succeeded"
    assert economy(client, mall)["escrow"] == 0


def test_points_value_is_checked(client: TestClient, mall: Mall) -> None:
    order = create_order(client, mall, member="bob")
    url = mall.url(f"/orders/{order['ref']}/payments")
    r = client.post(url, json={"points_value": "10.00"}, headers=mall.operator)
    assert_error(r, 409, "insufficient_balance")  # bob holds no EP
    r = client.post(url, json={"points_value": "60.00", "sp": "41.00"}, headers=mall.operator)
    assert_error(r, 422, "invalid_command")  # more than the total
    for bad in ("-1", "0.001", 5):
        r = client.post(url, json={"points_value": bad}, headers=mall.operator)
        assert_error(r, 422)
    assert read_order(client, mall, order["ref"])["payments"] == []
