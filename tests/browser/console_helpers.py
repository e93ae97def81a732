"""Helpers of the browser tests: a shop made through the services (a tenant, its catalog,
members, keys, a paid order and a withdrawal waiting for review), the ledger's checks, and
logging in from a page."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

from tokenmall.bootstrap import Services
from tokenmall.domain.economy import Purchase, Sell
from tokenmall.service import accounting, catalog, credentials, members, tenants, wallet
from tokenmall.store.db import read_only

ADMIN_TOKEN = "test-admin-token-0123456789abcdef-xyz"
SECRET_KEY = "test-secret-key-0123456789abcdef-0123456789"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@dataclass
class Served:
    base: str
    services: Services


@dataclass
class Watch:
    """What a page did that it must not: console errors, uncaught exceptions, dialogs
    (an injected script's ``alert``), requests to anywhere but 127.0.0.1."""

    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


@dataclass
class Shop:
    code: str
    tenant_id: int
    operator_key: str
    merchant_key: str
    merchant_id: int
    sku_id: int
    order_ref: str
    withdrawal_id: str


def make_shop(svc: Services, *, timezone: str = "Asia/Shanghai") -> Shop:
    """A tenant with a product, two members (bob referred by alice), an operator and a merchant
    key, bob's order paid through the sandbox, and a 5.00 withdrawal of alice's waiting."""
    code = f"b-{uuid.uuid4().hex[:10]}"
    ledger = svc.store.ledger
    tid = tenants.create_tenant(ledger, code, name="测试商城", timezone=timezone).id
    with svc.engine.begin() as conn:
        merchant = catalog.create_merchant(conn, tid, code="tea", name="茶馆", accepts_sp=True)
        product = catalog.create_product(
            conn, tid, merchant_id=merchant.id, name="龙井", description="明前"
        )
        sku = catalog.create_sku(
            conn, tid, product_id=product.id, name="250 克", price=Decimal("100.00"), stock=50
        )
        alice = members.create_member(conn, tid, "alice", display_name="Alice")
        members.create_member(conn, tid, "bob", invite_code=alice.invite_code)
        _, op_key = credentials.create_api_key(
            conn, tid, scope="operator", name="console", actor="test"
        )
        _, m_key = credentials.create_api_key(
            conn, tid, scope="merchant", name="tea", actor="test", merchant_id=merchant.id
        )
    order = svc.orders.create_order(tid, member="bob", lines=[(sku.id, 2)])
    pay = svc.orders.start_payment(tid, code, order.ref)
    assert pay.intent_id is not None
    svc.orders.complete_sandbox(tid, code, pay.intent_id, succeed=True, deliver=True)
    assert svc.orders.get_order(tid, order.ref).status == "paid"
    # alice buys for 100 elsewhere and sells 21 EP: SP to withdraw
    out = ledger.submit(
        tid,
        [
            ("shop:buy", Purchase("shop-order", "alice", Decimal(100))),
            ("shop:sell", Sell("alice", Decimal(21))),
        ],
    )
    assert all(o.status != "rejected" for o in out), out
    wd, _ = wallet.request_withdrawal(
        ledger, tid, "alice", amount=Decimal("5.00"), account="oid-alice", key="shop-wd"
    )
    return Shop(code, tid, op_key, m_key, merchant.id, sku.id, order.ref, wd.id)


def assert_ledger_balanced(svc: Services, tenant_id: int) -> None:
    """Every asset's balances sum to zero and the balance sheet's identities hold."""
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for (_, asset), amount in svc.store.ledger.balances(tenant_id).items():
        sums[asset] += amount
    assert sums, "no balances"
    assert all(v == 0 for v in sums.values()), dict(sums)
    with read_only(svc.engine).connect() as conn:
        sheet = accounting.balance_sheet(conn, tenant_id)
    assert sheet.ok, sheet.broken


def login(page: Page, base: str, tenant: str, key: str) -> Any:
    page.goto(f"{base}/console/login")
    page.fill("input[name=tenant]", tenant)
    page.fill("input[name=key]", key)
    with page.expect_navigation():
        page.click("#login-form button[type=submit]")
    return page
