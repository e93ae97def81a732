"""Domain events run their handlers inside the unit of work that emits them, on both stores.

What must hold: a handler's ledger command commits with the order or not at all; a handler
that raises rolls the whole fact back (order status, EP, pool, the handler's own command) and
the provider's notification, delivered again, then applies exactly once; handlers run in the
order they were registered; after-commit calls run only after a commit.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import Engine, func, select

from tokenmall.domain.economy import Join
from tokenmall.domain.events import OrderClosed, OrderPaid, OrderRefunded, OrderSettled
from tokenmall.domain.params import TenantParams
from tokenmall.service import catalog, members
from tokenmall.service.ledger import Ledger
from tokenmall.service.messagebus import EventBus
from tokenmall.service.orders import OrderService, PaymentHub
from tokenmall.service.uow import Store, TenantTx
from tokenmall.store import schema as s

SECRET = "events-secret-0123456789abcdef0123"


class Boom(Exception):
    pass


def _mall(engine: Engine) -> tuple[int, str, int]:
    code = f"t-{uuid.uuid4().hex[:12]}"
    tid = Ledger(engine).create_tenant(code, TenantParams(settle_days=Decimal(0)))
    with engine.begin() as conn:
        merchant = catalog.create_merchant(conn, tid, code="m", name="M")
        product = catalog.create_product(conn, tid, merchant_id=merchant.id, name="Tea")
        sku = catalog.create_sku(
            conn, tid, product_id=product.id, name="250g", price=Decimal(100), stock=10
        )
        members.create_member(conn, tid, "bob")
    return tid, code, sku.id


def _ledger_members(engine: Engine, tid: int) -> set[str]:
    m = s.members.c
    with engine.connect() as conn:
        return set(conn.execute(select(m.code).where(m.tenant_id == tid)).scalars())


def _events(engine: Engine, tid: int) -> int:
    pe = s.provider_events.c
    with engine.connect() as conn:
        q = select(func.count()).select_from(s.provider_events).where(pe.tenant_id == tid)
        return int(conn.execute(q).scalar_one())


def _paid_notification(svc: OrderService, tid: int, code: str, sku: int) -> tuple[str, list]:
    order = svc.create_order(tid, member="bob", lines=[(sku, 1)])
    pay = svc.start_payment(tid, code, order.ref)
    assert pay.intent_id is not None
    done = svc.complete_sandbox(tid, code, pay.intent_id, deliver=False)
    assert done.deliveries
    return order.ref, done.deliveries


def test_a_failing_settled_handler_rolls_the_settlement_back_whole_and_a_retry_applies_once(
    db_engine: Engine,
) -> None:
    tid, code, sku = _mall(db_engine)
    bus = EventBus()
    svc = OrderService(db_engine, PaymentHub(SECRET), store=Store(db_engine, bus=bus))
    ledger = svc.ledger
    ref, deliveries = _paid_notification(svc, tid, code, sku)
    before = ledger.balances(tid)

    def failing(tx: TenantTx, event: OrderSettled) -> None:
        # a reaction that moves something through the ledger, then fails
        tx.apply_one(f"join:handler:{event.order}", Join("handler-member"))
        raise Boom(event.order)

    bus.register(OrderSettled, failing)
    headers, body = deliveries[0]
    with pytest.raises(Boom):
        svc.handle_notification(tid, code, "sandbox", headers, body, pump=False)

    # nothing of the fact is left: status, EP, pool, the handler's command, the event record
    assert svc.get_order(tid, ref).status == "pending_payment"
    assert ledger.balances(tid) == before
    assert ledger.balances(tid)[("pool", "CNY")] == 0
    assert "handler-member" not in _ledger_members(db_engine, tid)
    assert "bob" not in _ledger_members(db_engine, tid)  # Pay never committed
    assert _events(db_engine, tid) == 0
    assert ledger.verify_chain(tid) is None

    # the handler fixed, the provider delivers again: applied once, handlers run once
    bus.unregister(OrderSettled, failing)
    seen: list[object] = []
    bus.register(OrderPaid, lambda tx, e: seen.append(e))
    bus.register(OrderSettled, lambda tx, e: seen.append(e))
    first = svc.handle_notification(tid, code, "sandbox", headers, body, pump=False)
    again = svc.handle_notification(tid, code, "sandbox", headers, body, pump=False)
    assert (first.outcome, first.duplicate) == ("applied", False)
    assert again.duplicate
    assert [type(e) for e in seen] == [OrderPaid, OrderSettled]
    settled = seen[1]
    assert isinstance(settled, OrderSettled)
    assert (settled.order, settled.member, settled.amount) == (ref, "bob", Decimal("100.00"))
    order = svc.get_order(tid, ref)
    assert order.status == "settled"
    balances = ledger.balances(tid)
    assert balances[("pool", "CNY")] == Decimal(30)  # R1 once: 30% of 100
    assert _events(db_engine, tid) == 1
    assert ledger.verify_chain(tid) is None


def test_a_handlers_ledger_command_commits_with_the_order_and_handlers_run_in_order(
    db_engine: Engine,
) -> None:
    tid, code, sku = _mall(db_engine)
    bus = EventBus()
    svc = OrderService(db_engine, PaymentHub(SECRET), store=Store(db_engine, bus=bus))
    order_of_calls: list[str] = []

    def first(tx: TenantTx, event: OrderSettled) -> None:
        order_of_calls.append("first")
        tx.apply_one(f"join:handler:{event.order}", Join(f"h-{event.order}"))

    def second(tx: TenantTx, event: OrderSettled) -> None:
        order_of_calls.append("second")

    bus.register(OrderSettled, first)
    bus.register(OrderSettled, second)
    ref, deliveries = _paid_notification(svc, tid, code, sku)
    headers, body = deliveries[0]
    assert svc.handle_notification(tid, code, "sandbox", headers, body).outcome == "applied"
    assert order_of_calls == ["first", "second"]
    assert f"h-{ref}" in _ledger_members(db_engine, tid)

    # a refund after settlement announces the cumulative ratio
    refunded: list[OrderRefunded] = []
    bus.register(OrderRefunded, lambda tx, e: refunded.append(e))
    svc.refund(tid, code, ref, refund_id="r1", amount=Decimal(25))
    svc.refund(tid, code, ref, refund_id="r2", amount=Decimal(75))
    assert [(e.refund_id, e.ratio, e.settled) for e in refunded] == [
        ("r1", Decimal("0.25"), True),
        ("r2", Decimal(1), True),
    ]


def test_a_cancelled_order_is_announced_once(db_engine: Engine) -> None:
    tid, _code, sku = _mall(db_engine)
    bus = EventBus()
    svc = OrderService(db_engine, PaymentHub(SECRET), store=Store(db_engine, bus=bus))
    closed: list[OrderClosed] = []
    bus.register(OrderClosed, lambda tx, e: closed.append(e))
    order = svc.create_order(tid, member="bob", lines=[(sku, 2)])
    svc.cancel_order(tid, order.ref, reason="changed my mind")
    svc.cancel_order(tid, order.ref)  # already cancelled: nothing new
    assert [(e.order, e.status, e.reason) for e in closed] == [
        (order.ref, "cancelled", "changed my mind")
    ]


def test_after_commit_runs_only_after_a_commit(db_engine: Engine) -> None:
    tid, _code, _sku = _mall(db_engine)
    store = Store(db_engine)
    calls: list[str] = []
    with store.tenant_tx(tid) as tx:
        tx.after_commit(lambda: calls.append("committed"))
        assert calls == []
    assert calls == ["committed"]

    def fails() -> None:
        with store.tenant_tx(tid) as tx:
            tx.apply_one("join:x", Join("x"))
            tx.after_commit(lambda: calls.append("never"))
            raise Boom

    with pytest.raises(Boom):
        fails()
    assert calls == ["committed"]
    assert "x" not in _ledger_members(db_engine, tid)
