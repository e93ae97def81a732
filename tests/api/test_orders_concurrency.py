"""50 concurrent buyers of the last 10 units, over HTTP, on SQLite and PostgreSQL: exactly 10
orders are paid, the other 40 are refused at once (409 out_of_stock), nothing is oversold,
and each paid order is in escrow once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from api_helpers import Mall, bearer, ok
from fastapi.testclient import TestClient
from orders_helpers import economy, engine, tenant_id
from sqlalchemy import func, select

from tokenmall.store import schema as s

BUYERS = 50
UNITS = 10


def test_50_concurrent_buyers_of_the_last_10_units_give_10_paid_orders(
    client: TestClient, mall: Mall
) -> None:
    tokens = []
    for i in range(BUYERS):
        code = f"buyer{i:02d}"
        ok(client.post(mall.url("/members"), json={"code": code}, headers=mall.operator), 201)
        token = ok(
            client.post(mall.url(f"/members/{code}/tokens"), json={}, headers=mall.operator), 201
        )
        tokens.append(bearer(token["token"]))
    assert ok(client.get(mall.url(f"/skus/{mall.sku_id}"), headers=mall.operator))["stock"] == UNITS
    start = threading.Barrier(BUYERS)

    def buy(headers: dict[str, str]) -> tuple[int, Any]:
        start.wait()
        r = client.post(
            mall.url("/orders"),
            json={"lines": [{"sku_id": mall.sku_id, "quantity": 1}]},
            headers=headers,
        )
        if r.status_code != 201:
            return r.status_code, r.json()["error"]["code"]
        ref = r.json()["ref"]
        pay = ok(client.post(mall.url(f"/orders/{ref}/payments"), json={}, headers=headers), 201)
        ok(
            client.post(
                mall.url(f"/payments/sandbox/intents/{pay['intent_id']}/complete"),
                json={},
                headers=headers,
            )
        )
        return 201, ok(client.get(mall.url(f"/orders/{ref}"), headers=headers))["status"]

    with ThreadPoolExecutor(BUYERS) as pool:
        results = list(pool.map(buy, tokens))

    assert sorted(results).count((201, "paid")) == UNITS
    assert sorted(results).count((409, "out_of_stock")) == BUYERS - UNITS
    assert ok(client.get(mall.url(f"/skus/{mall.sku_id}"), headers=mall.operator))["stock"] == 0
    paid = ok(client.get(mall.url("/orders?status=paid&limit=100"), headers=mall.operator))
    assert len(paid["items"]) == UNITS
    assert len({o["member"] for o in paid["items"]}) == UNITS
    assert economy(client, mall)["escrow"] == Decimal(100) * UNITS
    e = s.provider_events.c
    with engine(client).connect() as conn:
        events = conn.execute(
            select(func.count()).where(e.tenant_id == tenant_id(client, mall))
        ).scalar_one()
    assert events == UNITS
