"""Helpers of the merchant and after-sales tests: a second merchant with its own key and SKU,
member tokens, shipping addresses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from api_helpers import Mall, bearer, ok
from fastapi.testclient import TestClient

ADDRESS = {
    "recipient": "张三",
    "phone": "13800138000",
    "province": "广东省",
    "city": "深圳市",
    "district": "南山区",
    "detail": "科技园路 1 号 2 栋 301",
}


@dataclass
class Merchant:
    id: int
    sku_id: int
    key: dict[str, str]


def add_merchant(client: TestClient, mall: Mall, code: str) -> Merchant:
    """Another merchant of the mall, with a product of one SKU (50.00, 20 in stock) and a key."""
    m = ok(
        client.post(
            mall.url("/merchants"),
            json={"code": code, "name": f"Shop {code}", "accepts_sp": True},
            headers=mall.operator,
        ),
        201,
    )
    key = ok(
        client.post(
            mall.url("/api-keys"),
            json={"scope": "merchant", "name": code, "merchant_id": m["id"]},
            headers=mall.operator,
        ),
        201,
    )
    product = ok(
        client.post(
            mall.url("/products"),
            json={
                "merchant_id": m["id"],
                "name": f"Goods of {code}",
                "skus": [{"name": "one", "price": "50.00", "stock": 20}],
            },
            headers=mall.operator,
        ),
        201,
    )
    return Merchant(m["id"], product["skus"][0]["id"], bearer(key["key"]))


def member_token(client: TestClient, mall: Mall, member: str) -> dict[str, str]:
    got = ok(
        client.post(mall.url(f"/members/{member}/tokens"), json={}, headers=mall.operator), 201
    )
    return bearer(got["token"])


def order_of(
    client: TestClient,
    mall: Mall,
    skus: list[int],
    *,
    headers: dict[str, str],
    address: dict[str, str] | None = None,
    paid: bool = True,
) -> Any:
    """An order of one unit of each SKU, by the member whose token ``headers`` is, paid
    through the sandbox unless ``paid`` is False."""
    body: dict[str, Any] = {"lines": [{"sku_id": k, "quantity": 1} for k in skus]}
    if address is not None:
        body["shipping_address"] = address
    order = ok(client.post(mall.url("/orders"), json=body, headers=headers), 201)
    if paid:
        ref = order["ref"]
        pay = ok(client.post(mall.url(f"/orders/{ref}/payments"), json={}, headers=headers), 201)
        ok(
            client.post(
                mall.url(f"/payments/sandbox/intents/{pay['intent_id']}/complete"),
                json={},
                headers=headers,
            )
        )
        order = ok(client.get(mall.url(f"/orders/{ref}"), headers=headers))
        assert order["status"] == "paid"
    return order
