"""Helpers of the order tests: an order paid through the sandbox, ledger figures, time travel."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

from api_helpers import Mall, ok
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tokenmall.service.ledger import Ledger
from tokenmall.service.orders import OrderService, SettleReport, expire_orders, settle_due


def service(client: TestClient) -> OrderService:
    """The app's order service (created by the first request that needs it)."""
    app: Any = client.app
    svc = getattr(app.state, "orders", None)
    if svc is None:
        client.get("/v1/health")
        from tokenmall.api.routes.orders import _orders  # noqa: PLC0415

        svc = asyncio.run(_orders(_Req(app), app.state.tokenmall))  # type: ignore[arg-type]
    return svc


class _Req:
    def __init__(self, app: Any) -> None:
        self.app = app


def engine(client: TestClient) -> Engine:
    app: Any = client.app
    e: Engine = app.state.tokenmall.engine
    return e


def tenant_id(client: TestClient, mall: Mall) -> int:
    app: Any = client.app
    tid: int = app.state.tokenmall.tenant_id(mall.code)
    return tid


def create_order(
    client: TestClient,
    mall: Mall,
    *,
    member: str = "bob",
    qty: int = 1,
    sku: int | None = None,
    headers: dict[str, str] | None = None,
    status: int = 201,
) -> Any:
    body = {"member": member, "lines": [{"sku_id": sku or mall.sku_id, "quantity": qty}]}
    return ok(client.post(mall.url("/orders"), json=body, headers=headers or mall.operator), status)


def start_payment(client: TestClient, mall: Mall, ref: str, **body: Any) -> Any:
    return ok(
        client.post(mall.url(f"/orders/{ref}/payments"), json=body, headers=mall.operator), 201
    )


def complete(client: TestClient, mall: Mall, intent_id: str, **body: Any) -> Any:
    return ok(
        client.post(
            mall.url(f"/payments/sandbox/intents/{intent_id}/complete"),
            json=body,
            headers=mall.operator,
        )
    )


def notify(
    client: TestClient, mall: Mall, delivery: dict[str, Any], provider: str = "sandbox"
) -> Any:
    return client.post(
        mall.url(f"/payments/{provider}/notify"),
        content=delivery["body"].encode(),
        headers=delivery["headers"],
    )


def paid_order(client: TestClient, mall: Mall, **kw: Any) -> Any:
    """An order created and paid through the sandbox (notifications delivered in-process)."""
    order = create_order(client, mall, **kw)
    pay = start_payment(client, mall, order["ref"])
    complete(client, mall, pay["intent_id"])
    return ok(client.get(mall.url(f"/orders/{order['ref']}"), headers=mall.operator))


def read_order(client: TestClient, mall: Mall, ref: str) -> Any:
    return ok(client.get(mall.url(f"/orders/{ref}"), headers=mall.operator))


def figures(client: TestClient, mall: Mall, member: str) -> dict[str, Decimal]:
    """A member's ledger figures as Decimals (points, stable, quota_remaining, spent, ...)."""
    got = ok(client.get(mall.url(f"/members/{member}"), headers=mall.operator))["ledger"]
    return {k: Decimal(v) for k, v in got.items() if k != "exited"}


def economy(client: TestClient, mall: Mall) -> dict[str, Decimal]:
    """Pool, circulating EP, escrow and the price (pool / circulating) from the ledger."""
    bal = Ledger(engine(client)).balances(tenant_id(client, mall))
    pool = bal[("pool", "CNY")]
    circulating = -bal[("issuance", "EP")] - bal[("burned", "EP")]
    return {
        "pool": pool,
        "circulating": circulating,
        "escrow": bal[("escrow", "CNY")],
        "world": bal[("world", "CNY")],
        "price": pool / circulating if circulating else Decimal(1),
        "burned": bal[("burned", "EP")],
    }


def set_params(client: TestClient, mall: Mall, **params: str) -> None:
    ok(client.post(mall.url("/param-changes"), json={"params": params}, headers=mall.operator), 201)


def order_path_values(client: TestClient, mall: Mall) -> dict[str, str]:
    """An order of the mall's member (alice) with a sandbox payment waiting: the values of
    ``{order_ref}`` and ``{intent_id}`` in route templates (the route-table tests)."""
    order = create_order(client, mall, member=mall.member_code)
    pay = start_payment(client, mall, order["ref"])
    return {"order_ref": order["ref"], "intent_id": pay["intent_id"]}


def aftersales_path_values(client: TestClient, mall: Mall) -> dict[str, str]:
    """A refund request open on a paid order of the mall's member: ``{request_id}``."""
    paid = paid_order(client, mall, member=mall.member_code)
    body = {"amount": "1.00", "reason": "damaged"}
    done = ok(
        client.post(
            mall.url(f"/orders/{paid['ref']}/aftersales"), json=body, headers=mall.operator
        ),
        201,
    )
    return {"request_id": done["request_id"]}


def run_expiry(client: TestClient, mall: Mall, later: float) -> int:
    """The expiry job for this mall, ``later`` seconds from now."""
    return expire_orders(engine(client), time.time() + later, tenant_id=tenant_id(client, mall))


def run_settlement(client: TestClient, mall: Mall, later: float) -> SettleReport:
    """The settlement job for this mall, ``later`` seconds from now."""
    return settle_due(engine(client), time.time() + later, tenant_id=tenant_id(client, mall))
