"""Merchants and their orders over HTTP, on SQLite and PostgreSQL: the shipping address (checked,
shown to the buyer, the order's merchants and operators only), a merchant's list and view of its
orders (own lines only), shipping with carrier and tracking number, and merchant isolation on
every route that takes an order."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from api_helpers import Mall, assert_error, ok
from fastapi.testclient import TestClient
from merchant_helpers import ADDRESS, add_merchant, member_token, order_of

from tokenmall.api import create_app
from tokenmall.settings import Settings

SHIP = {"carrier": "顺丰速运", "tracking_no": "SF1234567890123"}


def _order_routes() -> list[tuple[str, str]]:
    """Every operation whose path names an order or an after-sales request."""
    schema = create_app(Settings(db_url="sqlite://")).openapi()
    return sorted(
        (method.upper(), path)
        for path, ops in schema["paths"].items()
        for method in ops
        if "{order_ref}" in path or "{request_id}" in path
    )


ORDER_ROUTES = _order_routes()


def test_the_route_table_has_the_merchant_and_aftersales_routes() -> None:
    paths = {p for _, p in ORDER_ROUTES}
    assert "/v1/tenants/{tenant}/merchants/{merchant_id}/orders/{order_ref}/shipment" in paths
    assert "/v1/tenants/{tenant}/aftersales/{request_id}/accept" in paths
    assert len(ORDER_ROUTES) >= 15


def test_shipping_address_is_checked_and_shown_only_to_those_who_ship_or_bought(
    client: TestClient, mall: Mall
) -> None:
    url = mall.url("/orders")
    line = [{"sku_id": mall.sku_id, "quantity": 1}]
    for field, bad in (
        ("phone", "12800138000"),  # 12x is no mobile prefix
        ("phone", "1380013800"),  # 10 digits
        ("phone", "+8613800138000"),
        ("recipient", ""),
        ("recipient", "x" * 51),
        ("detail", "x" * 201),
        ("province", "广东\n省"),
    ):
        body = {"lines": line, "shipping_address": {**ADDRESS, field: bad}}
        assert_error(client.post(url, json=body, headers=mall.member), 422)
    missing = {k: v for k, v in ADDRESS.items() if k != "city"}
    body = {"lines": line, "shipping_address": missing}
    assert_error(client.post(url, json=body, headers=mall.member), 422)
    # a zero-width character passes the schema's pattern; the service refuses it
    body = {"lines": line, "shipping_address": {**ADDRESS, "recipient": "张\u200b三"}}
    assert_error(client.post(url, json=body, headers=mall.member), 422, "invalid_command")

    spaced = {**ADDRESS, "detail": "  科技园路 1 号  "}
    order = order_of(client, mall, [mall.sku_id], headers=mall.member, address=spaced)
    ref = order["ref"]
    assert order["shipping_address"] == {**ADDRESS, "detail": "科技园路 1 号"}
    shown = order["shipping_address"]
    assert (
        ok(client.get(mall.url(f"/orders/{ref}"), headers=mall.operator))["shipping_address"]
        == shown
    )
    mine = ok(
        client.get(mall.url(f"/merchants/{mall.merchant_id}/orders/{ref}"), headers=mall.merchant)
    )
    assert mine["shipping_address"] == shown
    listed = ok(client.get(mall.url("/orders"), headers=mall.member))["items"]
    assert [o["shipping_address"] for o in listed if o["ref"] == ref] == [shown]
    # another member: the order does not exist; another merchant: neither
    bob = member_token(client, mall, "bob")
    assert_error(client.get(mall.url(f"/orders/{ref}"), headers=bob), 404, "not_found")
    assert ok(client.get(mall.url("/orders"), headers=bob))["items"] == []
    other = add_merchant(client, mall, "m2")
    assert_error(
        client.get(mall.url(f"/merchants/{other.id}/orders/{ref}"), headers=other.key), 404
    )
    assert (
        ok(client.get(mall.url(f"/merchants/{other.id}/orders"), headers=other.key))["items"] == []
    )
    # the same client_ref with another address is another order's content: 409
    body = {"lines": line, "client_ref": "c-1", "shipping_address": ADDRESS}
    first = ok(client.post(url, json=body, headers=mall.member), 201)
    assert ok(client.post(url, json=body, headers=mall.member), 201)["ref"] == first["ref"]
    body["shipping_address"] = {**ADDRESS, "phone": "13900139000"}
    assert_error(client.post(url, json=body, headers=mall.member), 409, "idempotency_conflict")
    # an order without an address still works (pick-up, virtual goods)
    assert order_of(client, mall, [mall.sku_id], headers=mall.member)["shipping_address"] is None


def test_a_merchant_ships_its_lines_and_the_buyer_confirms_delivery(
    client: TestClient, mall: Mall
) -> None:
    ship_url = mall.url(f"/merchants/{mall.merchant_id}/orders/{{}}/shipment")
    unpaid = order_of(client, mall, [mall.sku_id], headers=mall.member, paid=False)
    r = client.post(ship_url.format(unpaid["ref"]), json=SHIP, headers=mall.merchant)
    assert_error(r, 409, "order_state")
    for bad in (
        {**SHIP, "tracking_no": "SF 123"},
        {**SHIP, "tracking_no": "S1"},
        {**SHIP, "carrier": ""},
    ):
        assert_error(
            client.post(ship_url.format(unpaid["ref"]), json=bad, headers=mall.merchant), 422
        )

    order = order_of(client, mall, [mall.sku_id], headers=mall.member, address=ADDRESS)
    ref = order["ref"]
    shipped = ok(client.post(ship_url.format(ref), json=SHIP, headers=mall.merchant), 201)
    assert shipped["status"] == "paid"  # shipping is not delivery
    assert shipped["shipment"]["carrier"] == "顺丰速运"
    assert shipped["shipment"]["tracking_no"] == "SF1234567890123"
    assert shipped["shipment"]["shipped_by"].startswith("merchant-key:")
    first_at = shipped["shipment"]["shipped_at"]
    # the same again changes nothing; another number is a correction, recorded
    again = ok(client.post(ship_url.format(ref), json=SHIP, headers=mall.merchant), 200)
    assert again["shipment"] == shipped["shipment"]
    fixed = {"carrier": "SF", "tracking_no": "SF0000000000001"}
    corrected = ok(client.post(ship_url.format(ref), json=fixed, headers=mall.operator), 200)
    assert corrected["shipment"]["tracking_no"] == "SF0000000000001"
    assert corrected["shipment"]["shipped_at"] == first_at
    assert corrected["shipment"]["updated_by"].startswith("operator-key:")
    full = ok(client.get(mall.url(f"/orders/{ref}"), headers=mall.member))
    assert [(s["merchant_id"], s["tracking_no"]) for s in full["shipments"]] == [
        (mall.merchant_id, "SF0000000000001")
    ]
    # the buyer confirms delivery: the existing transition, the return window starts
    done = ok(client.post(mall.url(f"/orders/{ref}/delivery"), headers=mall.member))
    assert done["status"] == "delivered"
    assert done["settle_at"] is not None

    # the merchant's list: status and date filters
    base = mall.url(f"/merchants/{mall.merchant_id}/orders")

    def refs(**params: Any) -> list[str]:
        return [
            o["ref"] for o in ok(client.get(base, params=params, headers=mall.merchant))["items"]
        ]

    assert refs() == [unpaid["ref"], ref]
    assert refs(status="delivered") == [ref]
    assert refs(status="pending_payment") == [unpaid["ref"]]
    now = datetime.now(UTC)
    assert refs(created_from=(now - timedelta(hours=1)).isoformat()) == [unpaid["ref"], ref]
    assert refs(created_from=(now + timedelta(hours=1)).isoformat()) == []
    assert refs(created_to=(now - timedelta(hours=1)).isoformat()) == []
    # shown to the microsecond (rounded): a millisecond either side holds this order only
    created = datetime.fromisoformat(full["created_at"])
    window = {
        "created_from": (created - timedelta(milliseconds=1)).isoformat(),
        "created_to": (created + timedelta(milliseconds=1)).isoformat(),
    }
    assert refs(**window) == [ref]
    naive = client.get(base, params={"created_from": "2026-01-01T00:00:00"}, headers=mall.merchant)
    assert_error(naive, 422, "validation_error")
    page = ok(client.get(base, params={"limit": 1}, headers=mall.merchant))
    assert [o["ref"] for o in page["items"]] == [unpaid["ref"]]
    nxt = ok(client.get(base, params={"cursor": page["next_cursor"]}, headers=mall.merchant))
    assert [o["ref"] for o in nxt["items"]] == [ref]


def test_a_mixed_order_shows_each_merchant_its_own_lines_and_ships_them_apart(
    client: TestClient, mall: Mall
) -> None:
    b = add_merchant(client, mall, "m2")
    order = order_of(client, mall, [mall.sku_id, b.sku_id], headers=mall.member, address=ADDRESS)
    ref = order["ref"]
    a_view = ok(
        client.get(mall.url(f"/merchants/{mall.merchant_id}/orders/{ref}"), headers=mall.merchant)
    )
    b_view = ok(client.get(mall.url(f"/merchants/{b.id}/orders/{ref}"), headers=b.key))
    assert [ln["sku_id"] for ln in a_view["lines"]] == [mall.sku_id]
    assert [ln["sku_id"] for ln in b_view["lines"]] == [b.sku_id]
    assert (a_view["amount"], b_view["amount"]) == ("100.00", "50.00")
    assert a_view["mixed"] is True
    assert b_view["mixed"] is True
    assert "payments" not in a_view
    ok(
        client.post(mall.url(f"/merchants/{b.id}/orders/{ref}/shipment"), json=SHIP, headers=b.key),
        201,
    )
    a_view = ok(
        client.get(mall.url(f"/merchants/{mall.merchant_id}/orders/{ref}"), headers=mall.merchant)
    )
    assert a_view["shipment"] is None  # B's shipment is B's
    full = ok(client.get(mall.url(f"/orders/{ref}"), headers=mall.operator))
    assert [s["merchant_id"] for s in full["shipments"]] == [b.id]
    only_a = order_of(client, mall, [mall.sku_id], headers=mall.member)
    a_only_view = ok(
        client.get(
            mall.url(f"/merchants/{mall.merchant_id}/orders/{only_a['ref']}"), headers=mall.merchant
        )
    )
    assert a_only_view["mixed"] is False


def _fill(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


@pytest.mark.parametrize(
    ("method", "path"), ORDER_ROUTES, ids=[f"{m} {p}" for m, p in ORDER_ROUTES]
)
def test_merchant_a_never_sees_or_ships_merchant_bs_orders(
    client: TestClient, mall: Mall, method: str, path: str
) -> None:
    """On every route that takes an order (or a request on one): merchant A's key on an order
    of merchant B alone gets 403 or 404, never an answer, and changes nothing."""
    b = add_merchant(client, mall, "m2")
    order = order_of(client, mall, [b.sku_id], headers=mall.member, address=ADDRESS)
    ref = order["ref"]
    request = ok(
        client.post(
            mall.url(f"/orders/{ref}/aftersales"),
            json={"amount": "10.00", "reason": "broken"},
            headers=mall.member,
        ),
        201,
    )
    values = {
        "tenant": mall.code,
        "order_ref": ref,
        "request_id": request["request_id"],
        "intent_id": "none",
    }
    bodies: dict[str, Any] = {
        "shipment": SHIP,
        "refuse": {"reason": "no"},
        "aftersales": {"amount": "1.00", "reason": "a merchant asking"},
        "refunds": {"refund_id": "r-1"},
    }
    body = next((v for k, v in bodies.items() if path.endswith(k)), {})
    for merchant_id in (mall.merchant_id, b.id):  # A's own id, and B's id in the path
        url = _fill(path, {**values, "merchant_id": str(merchant_id)})
        r = client.request(method, url, json=body, headers=mall.merchant)
        assert r.status_code in (403, 404), (r.status_code, r.text)
    # nothing changed: no shipment, the request still open, the order still paid
    after = ok(client.get(mall.url(f"/orders/{ref}"), headers=mall.operator))
    assert after["shipments"] == []
    assert after["status"] == "paid"
    assert after["refunded"] == "0.00"
    got = ok(client.get(mall.url(f"/aftersales/{request['request_id']}"), headers=mall.operator))
    assert got["status"] == "requested"
    # and A's key lists none of it
    assert (
        ok(client.get(mall.url(f"/merchants/{mall.merchant_id}/orders"), headers=mall.merchant))[
            "items"
        ]
        == []
    )
    assert ok(client.get(mall.url("/aftersales"), headers=mall.merchant))["items"] == []
    # while B's key reaches it (the paths really name B's order)
    ok(client.get(mall.url(f"/merchants/{b.id}/orders/{ref}"), headers=b.key))
    ok(client.get(mall.url(f"/aftersales/{request['request_id']}"), headers=b.key))
