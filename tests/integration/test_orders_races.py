"""The order flow under real concurrency, on SQLite and PostgreSQL: buyers in separate
processes, the same notification delivered by many threads at once, settlement jobs running
side by side, and expiry racing a late payment.  What must hold: never oversold, paid once,
settled once, stock released once."""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, func, select

from tokenmall.payments import ManualClock
from tokenmall.service import catalog, members
from tokenmall.service.errors import OutOfStock
from tokenmall.service.ledger import Ledger
from tokenmall.service.orders import (
    OrderService,
    OrderStateError,
    PaymentHub,
    expire_orders,
    settle_due,
)
from tokenmall.store import schema as s
from tokenmall.store.db import create_db_engine

SECRET = "integration-secret-0123456789abcdef"
BUYERS = 50
UNITS = 10
PROCESSES = 5


def _mall(engine: Engine, *, stock: int, buyers: int) -> tuple[int, str, int]:
    code = f"t-{uuid.uuid4().hex[:12]}"
    tid = Ledger(engine).create_tenant(code)
    with engine.begin() as conn:
        merchant = catalog.create_merchant(conn, tid, code="m", name="M")
        product = catalog.create_product(conn, tid, merchant_id=merchant.id, name="Tea")
        sku = catalog.create_sku(
            conn, tid, product_id=product.id, name="250g", price=Decimal(100), stock=stock
        )
        for i in range(buyers):
            members.create_member(conn, tid, f"b{i:02d}")
    return tid, code, sku.id


def _count(engine: Engine, table: str, tid: int, **where: object) -> int:
    t = s.metadata.tables[table]
    q = select(func.count()).select_from(t).where(t.c.tenant_id == tid)
    for col, value in where.items():
        q = q.where(t.c[col] == value)
    with engine.connect() as conn:
        return int(conn.execute(q).scalar_one())


def _balance(engine: Engine, tid: int, account: str, asset: str = "CNY") -> Decimal:
    return Ledger(engine).balances(tid)[(account, asset)]


def buyers_in_process(
    db_url: str, tid: int, code: str, sku_id: int, buyers: list[str]
) -> list[str]:
    """One process of buyers, each in its own thread: order one unit, pay it at the sandbox.
    (Module level, so a spawned process can import it.)"""
    engine = create_db_engine(db_url, pool_size=len(buyers), max_overflow=0)
    svc = OrderService(engine, PaymentHub(SECRET))

    def buy(member: str) -> str:
        try:
            order = svc.create_order(tid, member=member, lines=[(sku_id, 1)])
        except OutOfStock:
            return "out_of_stock"
        pay = svc.start_payment(tid, code, order.ref)
        assert pay.intent_id is not None
        svc.complete_sandbox(tid, code, pay.intent_id)
        return svc.get_order(tid, order.ref).status

    try:
        with ThreadPoolExecutor(len(buyers)) as pool:
            return list(pool.map(buy, buyers))
    finally:
        engine.dispose()


def settle_in_process(db_url: str, tid: int, at: float) -> int:
    engine = create_db_engine(db_url)
    try:
        return settle_due(engine, at, tenant_id=tid).settled
    finally:
        engine.dispose()


def test_50_buyers_in_5_processes_of_the_last_10_units_give_10_paid_orders(db_url: str) -> None:
    engine = create_db_engine(db_url)
    try:
        tid, code, sku_id = _mall(engine, stock=UNITS, buyers=BUYERS)
    finally:
        engine.dispose()
    names = [f"b{i:02d}" for i in range(BUYERS)]
    each = BUYERS // PROCESSES
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(PROCESSES, mp_context=spawn) as pool:
        futures = [
            pool.submit(
                buyers_in_process, db_url, tid, code, sku_id, names[i * each : (i + 1) * each]
            )
            for i in range(PROCESSES)
        ]
        results = [r for f in futures for r in f.result()]
    assert results.count("paid") == UNITS
    assert results.count("out_of_stock") == BUYERS - UNITS
    engine = create_db_engine(db_url)
    try:
        with engine.connect() as conn:
            assert catalog.get_sku(conn, tid, sku_id).stock == 0
        assert _count(engine, "orders", tid, status="paid") == UNITS
        assert _count(engine, "escrows", tid) == UNITS
        assert _count(engine, "provider_events", tid) == UNITS
        assert _balance(engine, tid, "escrow") == Decimal(100) * UNITS
    finally:
        engine.dispose()


def test_one_notification_delivered_by_20_threads_at_once_pays_once(db_url: str) -> None:
    engine = create_db_engine(db_url, pool_size=25, max_overflow=0)
    try:
        tid, code, sku_id = _mall(engine, stock=5, buyers=1)
        svc = OrderService(engine, PaymentHub(SECRET))
        order = svc.create_order(tid, member="b00", lines=[(sku_id, 2)])
        pay = svc.start_payment(tid, code, order.ref)
        assert pay.intent_id is not None
        [(headers, body)] = svc.complete_sandbox(tid, code, pay.intent_id, deliver=False).deliveries
        start = threading.Barrier(20)

        def deliver(_: int) -> tuple[str, bool]:
            start.wait()
            r = svc.handle_notification(tid, code, "sandbox", headers, body, pump=False)
            return r.outcome, r.duplicate

        with ThreadPoolExecutor(20) as pool:
            results = list(pool.map(deliver, range(20)))
        assert results.count(("applied", False)) == 1
        assert results.count(("applied", True)) == 19
        assert svc.get_order(tid, order.ref).status == "paid"
        assert _balance(engine, tid, "escrow") == Decimal(200)
        assert _count(engine, "ledger_tx", tid, kind="pay") == 1
    finally:
        engine.dispose()


def test_settlement_jobs_side_by_side_settle_each_order_once(db_url: str) -> None:
    orders = 12
    engine = create_db_engine(db_url)
    try:
        tid, code, sku_id = _mall(engine, stock=orders, buyers=orders)
        svc = OrderService(engine, PaymentHub(SECRET))
        for i in range(orders):
            order = svc.create_order(tid, member=f"b{i:02d}", lines=[(sku_id, 1)])
            pay = svc.start_payment(tid, code, order.ref)
            assert pay.intent_id is not None
            svc.complete_sandbox(tid, code, pay.intent_id)
            svc.confirm_delivery(tid, order.ref)
    finally:
        engine.dispose()
    later = time.time() + 8 * 86_400
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(4, mp_context=spawn) as pool:
        settled = sum(pool.map(settle_in_process, [db_url] * 4, [tid] * 4, [later] * 4))
    assert settled == orders
    engine = create_db_engine(db_url)
    try:
        assert _count(engine, "grants", tid) == orders
        assert _count(engine, "orders", tid, status="settled") == orders
        assert _count(engine, "ledger_tx", tid, kind="settle") == orders
        assert _balance(engine, tid, "escrow") == 0
        # each buyer got the EP of one purchase, once: 30 x 0.7 at the price when it settled
        assert Ledger(engine).verify_chain(tid) is None
        assert settle_due(engine, later, tenant_id=tid).settled == 0
    finally:
        engine.dispose()


def test_expiry_racing_late_payments_releases_stock_once(db_url: str) -> None:
    orders = 8
    engine = create_db_engine(db_url, pool_size=2 * orders + 4, max_overflow=0)
    try:
        tid, code, sku_id = _mall(engine, stock=orders * 2, buyers=orders)
        clock = ManualClock(datetime.now(UTC))
        svc = OrderService(engine, PaymentHub(SECRET, clock=clock))
        deliveries = []
        for i in range(orders):
            order = svc.create_order(tid, member=f"b{i:02d}", lines=[(sku_id, 2)])
            pay = svc.start_payment(tid, code, order.ref)
            assert pay.intent_id is not None
            deliveries.append((order.ref, pay.intent_id))
        with engine.connect() as conn:
            assert catalog.get_sku(conn, tid, sku_id).stock == 0
        # the customers pay 20 minutes later, after the 15-minute expiry
        clock.advance(timedelta(minutes=20))
        signed = [
            svc.complete_sandbox(tid, code, intent, deliver=False).deliveries[0]
            for _, intent in deliveries
        ]
        at = clock().timestamp()
        start = threading.Barrier(orders + 2)

        def job(_: int) -> int:
            start.wait()
            return expire_orders(engine, at, tenant_id=tid)

        def deliver(d: tuple[dict[str, str], bytes]) -> str:
            start.wait()
            return svc.handle_notification(tid, code, "sandbox", d[0], d[1], pump=False).outcome

        with ThreadPoolExecutor(orders + 2) as pool:
            jobs = [pool.submit(job, i) for i in range(2)]
            outcomes = list(pool.map(deliver, signed))
            expired_by_jobs = sum(j.result() for j in jobs)
        assert outcomes == ["voided"] * orders
        assert expired_by_jobs <= orders
        with engine.connect() as conn:
            assert catalog.get_sku(conn, tid, sku_id).stock == orders * 2  # all back, once
        assert _count(engine, "orders", tid, status="expired") == orders
        assert _count(engine, "payments", tid, status="voided") == orders
        assert _balance(engine, tid, "escrow") == 0
        with pytest.raises(OrderStateError):
            svc.refund(tid, code, deliveries[0][0], refund_id="nope")
    finally:
        engine.dispose()


def test_the_same_payment_started_by_10_threads_at_once_is_one_attempt(db_url: str) -> None:
    engine = create_db_engine(db_url, pool_size=12, max_overflow=0)
    try:
        tid, code, sku_id = _mall(engine, stock=1, buyers=1)
        svc = OrderService(engine, PaymentHub(SECRET))
        order = svc.create_order(tid, member="b00", lines=[(sku_id, 1)])
        start = threading.Barrier(10)

        def begin(_: int) -> tuple[int, str | None]:
            start.wait()
            pay = svc.start_payment(tid, code, order.ref)
            return pay.attempt, pay.intent_id

        with ThreadPoolExecutor(10) as pool:
            answers = set(pool.map(begin, range(10)))
        assert len(answers) == 1
        assert _count(engine, "payments", tid) == 1
    finally:
        engine.dispose()
