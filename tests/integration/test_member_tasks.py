"""Members' tasks under real concurrency, on SQLite and PostgreSQL: the same task key, and
different keys, reported by several threads at once.  What must hold: one record per key,
chain21's held money released exactly once, the books balanced."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal

from sqlalchemy import Engine, func, select

from tokenmall import bootstrap
from tokenmall.domain.params import TenantParams
from tokenmall.errors import TokenmallError
from tokenmall.money import CNY_PLACES, from_atoms
from tokenmall.service import accounting, catalog, marketing, members, tasks
from tokenmall.service.ledger import Ledger
from tokenmall.service.messagebus import EventBus
from tokenmall.service.orders import OrderService, PaymentHub
from tokenmall.service.uow import Store
from tokenmall.store import schema as s
from tokenmall.store.db import create_db_engine

SECRET = "integration-secret-0123456789abcdef"
THREADS = 4


def _mall(engine: Engine) -> tuple[int, Store]:
    """chain21 on; root buys 100.00, then r1 (root's recruit): root holds 2.00 of 10.00."""
    code = f"t-{uuid.uuid4().hex[:12]}"
    tid = Ledger(engine).create_tenant(code, TenantParams(settle_days=Decimal(0)))
    store = Store(engine, bus=EventBus(bootstrap.event_handlers()))
    with engine.begin() as conn:
        merchant = catalog.create_merchant(conn, tid, code="m", name="M")
        product = catalog.create_product(conn, tid, merchant_id=merchant.id, name="Tea")
        sku = catalog.create_sku(
            conn, tid, product_id=product.id, name="250g", price=Decimal(100), stock=100
        )
    with store.tenant_tx(tid, lock=False) as tx:
        members.register(tx, "root")
        invite = members.get_profile(tx.conn, tid, "root").invite_code
        members.register(tx, "r1", invite_code=invite)
    with store.tenant_tx(tid) as tx:
        marketing.set_models(tx, {"chain21": {}}, actor="test", compliance_override="race test")
    svc = OrderService(engine, PaymentHub(SECRET), store=store)
    for member in ("root", "r1"):
        order = svc.create_order(tid, member=member, lines=[(sku.id, 1)])
        pay = svc.start_payment(tid, code, order.ref)
        assert pay.intent_id is not None
        svc.complete_sandbox(tid, code, pay.intent_id)
    return tid, store


def _race(calls: list[Callable[[], object]]) -> list[object]:
    barrier = threading.Barrier(len(calls))

    def run(fn: Callable[[], object]) -> object:
        barrier.wait()
        try:
            return fn()
        except TokenmallError as exc:
            return exc

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def _chain21_net(engine: Engine, tid: int, member: str) -> Decimal:
    r = s.marketing_rewards.c
    with engine.connect() as conn:
        total = conn.execute(
            select(func.coalesce(func.sum(r.amount), 0)).where(
                r.tenant_id == tid, r.model == "chain21", r.beneficiary == member
            )
        ).scalar_one()
    return from_atoms(int(total), CNY_PLACES)


def _books_ok(engine: Engine, tid: int) -> None:
    with engine.connect() as conn:
        sheet = accounting.balance_sheet(conn, tid)
    assert sheet.ok, sheet.broken


def _report(store: Store, tid: int, key: str) -> Callable[[], object]:
    return lambda: tasks.report(
        store, tid, member="root", task="sign_in", key=key, now=time.time(), day=date(2027, 1, 1)
    )


def test_the_same_task_key_from_several_threads_releases_once(db_url: str) -> None:
    engine = create_db_engine(db_url, pool_size=THREADS + 4, max_overflow=0)
    try:
        tid, store = _mall(engine)
        assert _chain21_net(engine, tid, "root") == Decimal("8.00")
        outcomes = _race([_report(store, tid, "d1")] * THREADS)
        records = [o for o in outcomes if isinstance(o, tasks.TaskRecord)]
        assert len(records) == THREADS, outcomes
        assert sum(not r.replayed for r in records) == 1
        assert {tuple(r.released) for r in records} == {
            (tasks.Release("chain21", records[0].released[0].order, Decimal("2.00")),)
        }
        assert _chain21_net(engine, tid, "root") == Decimal("10.00")
        with engine.connect() as conn:
            t = s.member_tasks.c
            keys = conn.execute(
                select(t.key).where(t.tenant_id == tid, t.member == "root").order_by(t.id)
            ).scalars()
            assert list(keys) == ["invite:r1", "d1"]
        _books_ok(engine, tid)
    finally:
        engine.dispose()


def test_different_task_keys_at_once_release_the_held_money_once(db_url: str) -> None:
    engine = create_db_engine(db_url, pool_size=THREADS + 4, max_overflow=0)
    try:
        tid, store = _mall(engine)
        outcomes = _race([_report(store, tid, f"k{i}") for i in range(THREADS)])
        records = [o for o in outcomes if isinstance(o, tasks.TaskRecord)]
        assert len(records) == THREADS, outcomes
        assert [len(r.released) for r in records].count(1) == 1
        assert sum(len(r.released) for r in records) == 1
        assert _chain21_net(engine, tid, "root") == Decimal("10.00")
        _books_ok(engine, tid)
    finally:
        engine.dispose()
