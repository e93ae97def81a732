"""Bad input to the order routes gets a 4xx in the error shape, never a 500, and changes
nothing; who may do what (scopes, members' own orders)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from api_helpers import Mall, assert_error, bearer, make_mall, make_settings, ok, second_catalog
from fastapi import FastAPI
from fastapi.testclient import TestClient
from orders_helpers import create_order, paid_order, read_order, start_payment

from tokenmall.api import create_app


@pytest.fixture
def lenient(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


GARBAGE: list[Any] = [
    [],
    "text",
    17,
    None,
    {"lines": None},
    {"lines": [{}]},
    {"lines": [{"sku_id": 2**64, "quantity": 2**64}]},
    {"lines": [{"sku_id": "1", "quantity": "1"}]},
    {"lines": [{"sku_id": 1, "quantity": 1.5}]},
    {"lines": [{"sku_id": 1, "quantity": 1}] * 51},
    {"member": "\u0000", "lines": [{"sku_id": 1, "quantity": 1}]},
    {"member": "a b", "client_ref": "x" * 65},
    {"sp": 10, "provider": "paypal"},
    {"sp": "-1"},
    {"sp": "1.001"},
    {"sp": "1e9"},
    {"sp": "99999999999999999999.99"},
    {"refund_id": "a b", "amount": "abc"},
    {"refund_id": "\ud800", "amount": "0"},
    {"refund_id": "r", "amount": 5},
    {"refund_id": "r", "reason": "长" * 500},
    {"result": "maybe", "deliver": "yes"},
    {"reason": {"$ne": 1}},
    {"api_v3_key": "k" * 32, "platform_keys": {"s": "-----BEGIN PUBLIC KEY-----\n\u0000"}},
    {"api_v3_key": 1, "platform_keys": []},
]


def test_no_garbage_gets_a_500_on_real_orders(lenient: TestClient) -> None:
    mall = make_mall(lenient)
    order = create_order(lenient, mall, member="alice")
    pay = start_payment(lenient, mall, order["ref"])
    paid = paid_order(lenient, mall, member="alice")
    routes = [
        ("POST", "/orders"),
        ("GET", "/orders"),
        ("GET", f"/orders/{order['ref']}"),
        ("POST", f"/orders/{order['ref']}/payments"),
        ("POST", f"/orders/{paid['ref']}/refunds"),
        ("POST", f"/orders/{paid['ref']}/cancel"),
        ("POST", f"/orders/{order['ref']}/delivery"),
        ("POST", f"/orders/{order['ref']}/settlement"),
        ("POST", f"/payments/sandbox/intents/{pay['intent_id']}/complete"),
        ("POST", "/payments/sandbox/notify"),
        ("POST", "/payments/wechat/notify"),
        ("PUT", "/payments/wechat/config"),
    ]
    for method, path in routes:
        for body in GARBAGE:
            r = lenient.request(
                method,
                mall.url(path),
                content=json.dumps(body).encode(),
                headers={**mall.operator, "content-type": "application/json"},
            )
            assert r.status_code < 500, (method, path, body, r.status_code, r.text)
            if r.status_code >= 400:
                assert_error(r, r.status_code)
        for query in ({"status": "nope"}, {"limit": "0"}, {"member": "x" * 65}, {"cursor": "%"}):
            r = lenient.request(method, mall.url(path), params=query, headers=mall.operator)
            assert r.status_code < 500, (method, path, query, r.text)
    # nothing of it changed the orders, but ``null``, which is no body for a route whose body is
    # optional: completing the sandbox intent with the defaults pays the order
    assert read_order(lenient, mall, order["ref"])["status"] in ("pending_payment", "paid")
    assert read_order(lenient, mall, paid["ref"])["refunded"] == "0.00"


def test_order_creation_rules(client: TestClient, mall: Mall) -> None:
    url = mall.url("/orders")

    def post(body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        return client.post(url, json=body, headers=headers or mall.operator)

    line = {"sku_id": mall.sku_id, "quantity": 1}
    assert_error(post({"member": "bob", "lines": []}), 422, "validation_error")
    assert_error(post({"member": "bob", "lines": [{**line, "quantity": 0}]}), 422)
    assert_error(post({"member": "bob", "lines": [{**line, "quantity": 10_001}]}), 422)
    assert_error(post({"member": "bob", "lines": [line, line]}), 422, "invalid_command")
    assert_error(post({"member": "bob", "lines": [{"sku_id": 999999, "quantity": 1}]}), 422)
    assert_error(post({"member": "nobody", "lines": [line]}), 422, "unknown_member")
    assert_error(post({"lines": [line]}), 422, "validation_error")  # operator: member needed
    assert_error(post({"member": "bob", "lines": [{**line, "quantity": 11}]}), 409, "out_of_stock")
    assert_error(post({"member": "bob", "lines": [line]}, mall.merchant), 403, "forbidden")
    # a member token orders for its own member only
    mine = ok(post({"lines": [line]}, mall.member), 201)
    assert mine["member"] == "alice"
    assert_error(post({"member": "bob", "lines": [line]}, mall.member), 403, "forbidden")
    # an order of another tenant's SKU: no such SKU here
    other = second_catalog(client, make_mall(client))
    assert_error(
        post({"member": "bob", "lines": [{"sku_id": other["sku_id"], "quantity": 1}]}), 422
    )
    stock = ok(client.get(mall.url(f"/skus/{mall.sku_id}"), headers=mall.operator))["stock"]
    assert stock == 9  # only the member's order reserved anything

    # totals are bounded (far below the ledger's limit)
    sku = ok(
        client.post(
            mall.url(f"/products/{mall.product_id}/skus"),
            json={"name": "gold", "price": "99999999.99", "stock": 100_000},
            headers=mall.operator,
        ),
        201,
    )
    big = {"member": "bob", "lines": [{"sku_id": sku["id"], "quantity": 11}]}
    assert_error(post(big), 422, "invalid_command")


def test_client_ref_makes_creation_safe_to_retry(client: TestClient, mall: Mall) -> None:
    body = {"member": "bob", "lines": [{"sku_id": mall.sku_id, "quantity": 2}], "client_ref": "A-1"}
    first = ok(client.post(mall.url("/orders"), json=body, headers=mall.operator), 201)
    again = ok(client.post(mall.url("/orders"), json=body, headers=mall.operator), 201)
    assert again["ref"] == first["ref"]
    stock = ok(client.get(mall.url(f"/skus/{mall.sku_id}"), headers=mall.operator))["stock"]
    assert stock == 8  # reserved once
    other = {**body, "lines": [{"sku_id": mall.sku_id, "quantity": 3}]}
    r = client.post(mall.url("/orders"), json=other, headers=mall.operator)
    assert_error(r, 409, "idempotency_conflict")


def test_members_see_and_touch_only_their_own_orders(client: TestClient, mall: Mall) -> None:
    bobs = create_order(client, mall, member="bob")
    alices = create_order(client, mall, member="alice")
    ref = bobs["ref"]
    for method, path in (
        ("GET", f"/orders/{ref}"),
        ("POST", f"/orders/{ref}/cancel"),
        ("POST", f"/orders/{ref}/payments"),
        ("POST", f"/orders/{ref}/delivery"),
        ("GET", f"/orders/{ref}/refunds"),
    ):
        r = client.request(method, mall.url(path), json={}, headers=mall.member)
        assert_error(r, 404, "not_found")
    pay = start_payment(client, mall, ref)
    r = client.post(
        mall.url(f"/payments/sandbox/intents/{pay['intent_id']}/complete"),
        json={},
        headers=mall.member,
    )
    assert_error(r, 404, "not_found")
    listed = ok(client.get(mall.url("/orders"), headers=mall.member))["items"]
    assert [o["ref"] for o in listed] == [alices["ref"]]
    listed = ok(client.get(mall.url("/orders?member=bob"), headers=mall.member))["items"]
    assert listed == []
    # the member pays and confirms their own order
    own = ok(
        client.post(mall.url(f"/orders/{alices['ref']}/payments"), json={}, headers=mall.member),
        201,
    )
    ok(
        client.post(
            mall.url(f"/payments/sandbox/intents/{own['intent_id']}/complete"),
            json={},
            headers=mall.member,
        )
    )
    done = ok(client.post(mall.url(f"/orders/{alices['ref']}/delivery"), headers=mall.member))
    assert done["status"] == "delivered"
    # operators only: refunds, settling now, provider settings
    for method, path, body in (
        ("POST", f"/orders/{alices['ref']}/refunds", {"refund_id": "x"}),
        ("POST", f"/orders/{alices['ref']}/settlement", {}),
        ("GET", "/payments/wechat/config", None),
    ):
        assert_error(client.request(method, mall.url(path), json=body, headers=mall.member), 403)
        assert_error(client.request(method, mall.url(path), json=body, headers=mall.merchant), 403)
    assert_error(client.get(mall.url(f"/orders/{ref}"), headers=mall.merchant), 403)


def test_state_rules(client: TestClient, mall: Mall) -> None:
    order = create_order(client, mall, member="bob")
    ref = order["ref"]
    for path, body in (
        (f"/orders/{ref}/refunds", {"refund_id": "early"}),
        (f"/orders/{ref}/delivery", None),
        (f"/orders/{ref}/settlement", None),
    ):
        assert_error(client.post(mall.url(path), json=body, headers=mall.operator), 409)
    assert_error(client.get(mall.url("/orders/nope"), headers=mall.operator), 404, "not_found")
    assert_error(client.get(mall.url("/orders/" + "x" * 65), headers=mall.operator), 422)
    paid = paid_order(client, mall, member="bob")
    r = client.post(
        mall.url(f"/orders/{paid['ref']}/refunds"),
        json={"refund_id": "too-much", "amount": "100.01"},
        headers=mall.operator,
    )
    assert_error(r, 422, "invalid_command")
    r = client.post(
        mall.url(f"/orders/{paid['ref']}/refunds"),
        json={"refund_id": "zero", "amount": "0"},
        headers=mall.operator,
    )
    assert_error(r, 422, "invalid_command")
    huge = b"{" + b" " * (70 * 1024) + b"}"
    r = client.post(mall.url("/payments/sandbox/notify"), content=huge)
    assert_error(r, 413)
    # a token of another member of another tenant: as if the tenant did not exist
    other = make_mall(client)
    token = ok(client.post(other.url("/members/bob/tokens"), json={}, headers=other.operator), 201)[
        "token"
    ]
    assert_error(client.get(mall.url(f"/orders/{ref}"), headers=bearer(token)), 404, "not_found")


def test_the_sandbox_is_off_in_production(db_url: str) -> None:
    """In production the sandbox would let anyone who can start a payment also 'pay' it."""
    app = create_app(make_settings(db_url, environment="production"))
    with TestClient(app) as client:
        mall = make_mall(client)
        order = create_order(client, mall, member="bob")
        r = client.post(
            mall.url(f"/orders/{order['ref']}/payments"), json={}, headers=mall.operator
        )
        assert_error(r, 409, "provider_not_configured")
        r = client.post(mall.url("/payments/sandbox/notify"), content=b"{}")
        assert_error(r, 409, "provider_not_configured")
        r = client.post(
            mall.url("/payments/sandbox/intents/pi_x/complete"), json={}, headers=mall.operator
        )
        assert_error(r, 409, "provider_not_configured")
        assert read_order(client, mall, order["ref"])["payments"] == []
