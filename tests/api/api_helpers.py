"""Helpers of the HTTP API tests: settings, credentials, the error shape, a populated tenant."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient

from tokenmall.settings import Settings

ADMIN_TOKEN = "test-admin-token-0123456789abcdef-xyz"
SECRET_KEY = "test-secret-key-0123456789abcdef-0123456789"


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


ADMIN = bearer(ADMIN_TOKEN)


def make_settings(db_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "db_url": db_url,
        "admin_token": ADMIN_TOKEN,
        "secret_key": SECRET_KEY,
        "rate_limit_per_second": 0,  # off unless a test is about it
    }
    values.update(overrides)
    return Settings(**values)


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The common error shape: {"error": {"code", "message"}} and the expected status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error["code"], str)
    assert error["code"]
    assert isinstance(error["message"], str)
    assert error["message"]
    assert set(error) <= {"code", "message", "details"}
    if code is not None:
        assert error["code"] == code, body
    return error


@dataclass
class Mall:
    """A tenant with a merchant, a product with a SKU, two members and a credential of each
    kind; ids of its resources fill route templates in the isolation test."""

    code: str
    operator: dict[str, str]
    merchant: dict[str, str]
    member: dict[str, str]
    merchant_id: int
    product_id: int
    sku_id: int
    member_code: str
    other_member: str
    key_id: str
    invite_code: str
    extra: dict[str, Any] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"/v1/tenants/{self.code}{path}"

    @property
    def path_values(self) -> dict[str, str]:
        return {
            "tenant": self.code,
            "merchant_id": str(self.merchant_id),
            "product_id": str(self.product_id),
            "sku_id": str(self.sku_id),
            "member": self.member_code,
            "key_id": self.key_id,
        }


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def make_mall(client: TestClient, code: str | None = None) -> Mall:
    code = code or f"t-{uuid.uuid4().hex[:12]}"
    ok(client.post("/v1/tenants", json={"code": code, "name": "Test mall"}, headers=ADMIN), 201)
    base = f"/v1/tenants/{code}"
    op_key = ok(
        client.post(
            f"{base}/api-keys", json={"scope": "operator", "name": "backend"}, headers=ADMIN
        ),
        201,
    )
    operator = bearer(op_key["key"])
    merchant = ok(
        client.post(
            f"{base}/merchants",
            json={"code": "m1", "name": "Tea House", "accepts_sp": True},
            headers=operator,
        ),
        201,
    )
    mkey = ok(
        client.post(
            f"{base}/api-keys",
            json={"scope": "merchant", "name": "tea", "merchant_id": merchant["id"]},
            headers=operator,
        ),
        201,
    )
    product = ok(
        client.post(
            f"{base}/products",
            json={
                "merchant_id": merchant["id"],
                "name": "Green tea",
                "pool_amount": "30.00",
                "skus": [{"name": "250g", "price": "100.00", "stock": 10}],
            },
            headers=operator,
        ),
        201,
    )
    alice = ok(client.post(f"{base}/members", json={"code": "alice"}, headers=operator), 201)
    ok(
        client.post(
            f"{base}/members",
            json={"code": "bob", "invite_code": alice["invite_code"]},
            headers=operator,
        ),
        201,
    )
    token = ok(client.post(f"{base}/members/alice/tokens", json={}, headers=operator), 201)
    ok(
        client.post(
            f"{base}/param-changes", json={"params": {"referral_ratio": "0.05"}}, headers=operator
        ),
        201,
    )
    return Mall(
        code=code,
        operator=operator,
        merchant=bearer(mkey["key"]),
        member=bearer(token["token"]),
        merchant_id=merchant["id"],
        product_id=product["id"],
        sku_id=product["skus"][0]["id"],
        member_code="alice",
        other_member="bob",
        key_id=mkey["id"],
        invite_code=alice["invite_code"],
    )


def second_catalog(client: TestClient, mall: Mall) -> dict[str, int]:
    """A second merchant, product and SKU in ``mall``: numbers a mall fresh from
    :func:`make_mall` does not have.  Merchants, products and SKUs are numbered per tenant, so
    another tenant's *first* ids exist in every tenant (as that tenant's own rows): a test of
    "another tenant's id finds nothing here" needs ids like these."""
    merchant = ok(
        client.post(
            mall.url("/merchants"), json={"code": "second", "name": "Second"}, headers=mall.operator
        ),
        201,
    )
    product = ok(
        client.post(
            mall.url("/products"),
            json={
                "merchant_id": merchant["id"],
                "name": "Second product",
                "skus": [
                    {"name": "a", "price": "10.00", "stock": 1},
                    {"name": "b", "price": "20.00", "stock": 1},
                ],
            },
            headers=mall.operator,
        ),
        201,
    )
    return {
        "merchant_id": merchant["id"],
        "product_id": product["id"],
        "sku_id": product["skus"][-1]["id"],
    }


def reserve_in_process(db_url: str, tenant_id: int, sku_id: int, attempts: int) -> int:
    """A separate process reserving one unit ``attempts`` times; returns how many it got.
    (Here, not in the test module, so a spawned process can import it.)"""
    from tokenmall.service.catalog import reserve_stock  # noqa: PLC0415
    from tokenmall.store.db import create_db_engine  # noqa: PLC0415

    engine = create_db_engine(db_url)
    got = 0
    try:
        for _ in range(attempts):
            with engine.begin() as conn:
                got += reserve_stock(conn, tenant_id, sku_id, 1)
    finally:
        engine.dispose()
    return got
