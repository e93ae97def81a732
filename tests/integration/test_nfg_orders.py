"""A product linked to a collection: a paid order mints, a refund burns the token or, once
it changed hands, takes its price back from the buyer (SP, then an SP debt); both stores."""

from __future__ import annotations

import uuid
from decimal import Decimal

from nfg_helpers import card, store_for, sums
from sqlalchemy import Engine

from tokenmall.domain.params import TenantParams
from tokenmall.service import catalog, members
from tokenmall.service.ledger import Ledger
from tokenmall.service.nfg import collections, tokens
from tokenmall.service.orders import OrderService, PaymentHub
from tokenmall.store import schema as s

SECRET = "nfg-orders-secret-0123456789abcdef"


def _paid(svc: OrderService, tid: int, code: str, sku: int, member: str, n: int) -> str:
    order = svc.create_order(tid, member=member, lines=[(sku, n)])
    pay = svc.start_payment(tid, code, order.ref)
    assert pay.intent_id is not None
    done = svc.complete_sandbox(tid, code, pay.intent_id, deliver=False)
    for headers, body in done.deliveries:
        svc.handle_notification(tid, code, "sandbox", headers, body, pump=False)
    return order.ref


def test_paid_order_mints_and_refunds_take_back(db_engine: Engine) -> None:
    code = f"t-{uuid.uuid4().hex[:12]}"
    tid = Ledger(db_engine).create_tenant(code, TenantParams(settle_days=Decimal(0)))
    with db_engine.begin() as conn:
        merchant = catalog.create_merchant(conn, tid, code="m", name="M")
        product = catalog.create_product(conn, tid, merchant_id=merchant.id, name="Black card")
        sku = catalog.create_sku(
            conn, tid, product_id=product.id, name="card", price=Decimal(999), stock=10
        )
        members.create_member(conn, tid, "ann")
        members.create_member(conn, tid, "bob")
    store = store_for(db_engine)
    with store.tenant_tx(tid) as tx:
        collections.create_collection(tx, card(), product_id=product.id)
    svc = OrderService(db_engine, PaymentHub(SECRET), store=store)
    ref = _paid(svc, tid, code, sku.id, "ann", 2)
    with db_engine.connect() as conn:
        held = tokens.tokens_of(conn, tid, "ann")
    assert [(t.serial, t.last_price) for t in held] == [
        (1, Decimal("999.00")),
        (2, Decimal("999.00")),
    ]
    # ann gifts serial 2 to bob, then the whole order is refunded
    with store.tenant_tx(tid) as tx:
        tokens.transfer(tx, "BLACK", 2, caller="ann", from_="ann", to="bob")
    svc.refund(tid, code, ref, refund_id="r1", amount=None)
    again = Ledger(db_engine).members(tid)
    with db_engine.connect() as conn:
        assert tokens.tokens_of(conn, tid, "ann") == []  # serial 1 burned
        assert [t.serial for t in tokens.tokens_of(conn, tid, "bob")] == [2]  # bob keeps it
        prov = tokens.provenance(conn, tid, "BLACK", 1)
    assert [p["kind"] for p in prov] == ["mint", "burn"]
    # ann holds no SP: the gifted token's price became her SP debt
    with db_engine.connect() as conn:
        debt = conn.execute(
            s.members.select().where(s.members.c.tenant_id == tid, s.members.c.code == "ann")
        ).first()
    assert debt is not None
    assert debt.sp_debt == 999 * 10_000
    assert again["ann"]["stable"] == "0"
    assert all(v == 0 for v in sums(db_engine, tid).values())
