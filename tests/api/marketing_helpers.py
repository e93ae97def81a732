"""Helpers of the marketing model tests: switch models on, register referred members, buy,
refund, close a day, read rewards and the books."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from api_helpers import Mall, ok
from fastapi.testclient import TestClient
from orders_helpers import complete, create_order, engine, set_params, start_payment, tenant_id
from sqlalchemy import select

from tokenmall.money import CNY_PLACES, from_atoms
from tokenmall.store import schema as s


def models_on(client: TestClient, mall: Mall, models: dict[str, Any], **kw: Any) -> Any:
    body = {"models": models, **kw}
    return ok(client.put(mall.url("/models"), json=body, headers=mall.operator))


def settle_at_payment(client: TestClient, mall: Mall) -> None:
    set_params(client, mall, settle_days="0")


def product(client: TestClient, mall: Mall, price: str = "100.00", stock: int = 1000) -> int:
    """A product of one SKU at ``price`` with plenty of stock; its SKU id."""
    body = {
        "merchant_id": mall.merchant_id,
        "name": f"p-{uuid.uuid4().hex[:6]}",
        "skus": [{"name": "one", "price": price, "stock": stock}],
    }
    made = ok(client.post(mall.url("/products"), json=body, headers=mall.operator), 201)
    return int(made["skus"][0]["id"])


def join(client: TestClient, mall: Mall, code: str, referrer: str | None) -> None:
    body: dict[str, Any] = {"code": code}
    if referrer is not None:
        who = ok(client.get(mall.url(f"/members/{referrer}"), headers=mall.operator))
        body["invite_code"] = who["invite_code"]
    ok(client.post(mall.url("/members"), json=body, headers=mall.operator), 201)


def buy(client: TestClient, mall: Mall, member: str, sku: int, *, sp: str = "0") -> str:
    """An order of one unit paid through the sandbox (SP part ``sp``); its ref."""
    order = create_order(client, mall, member=member, sku=sku)
    pay = start_payment(client, mall, order["ref"], sp=sp)
    if pay.get("intent_id"):
        complete(client, mall, pay["intent_id"])
    return str(order["ref"])


def refund(client: TestClient, mall: Mall, ref: str, amount: str | None = None) -> Any:
    body: dict[str, Any] = {"refund_id": f"r-{uuid.uuid4().hex[:10]}"}
    if amount is not None:
        body["amount"] = amount
    return ok(
        client.post(mall.url(f"/orders/{ref}/refunds"), json=body, headers=mall.operator), 201
    )


def close_day(client: TestClient, mall: Mall, day: dt.date) -> Any:
    return ok(
        client.post(mall.url("/day-close"), json={"date": day.isoformat()}, headers=mall.operator)
    )


def rewards(client: TestClient, mall: Mall, **filters: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {**filters, "limit": "500"}
        if cursor:
            params["cursor"] = cursor
        page = ok(client.get(mall.url("/rewards"), params=params, headers=mall.operator))
        out += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return out


def net(client: TestClient, mall: Mall, **filters: str) -> Decimal:
    return sum((Decimal(r["amount"]) for r in rewards(client, mall, **filters)), Decimal(0))


def wallet(client: TestClient, mall: Mall, member: str) -> tuple[Decimal, Decimal]:
    """(SP held, SP debt) of ``member`` as the ledger stores them."""
    m = s.members.c
    with engine(client).connect() as conn:
        row = conn.execute(
            select(m.sp, m.sp_debt).where(m.tenant_id == tenant_id(client, mall), m.code == member)
        ).one()
    return from_atoms(row.sp, CNY_PLACES), from_atoms(row.sp_debt, CNY_PLACES)


def books_ok(client: TestClient, mall: Mall) -> None:
    sheet = ok(client.get(mall.url("/balance-sheet"), headers=mall.operator))
    assert sheet["ok"], [i for i in sheet["identities"] if not i["holds"]]
