"""The marketing models under real concurrency, on SQLite and PostgreSQL: the same order's
settlement (and its handler) run by several threads at once, and refunds racing settlement.
What must hold: every reward paid exactly once, every take-back once, the books balanced."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select

from tokenmall import bootstrap
from tokenmall.domain.events import OrderSettled
from tokenmall.errors import TokenmallError
from tokenmall.money import CNY_PLACES, from_atoms
from tokenmall.service import accounting, catalog, marketing, members
from tokenmall.service.ledger import Ledger
from tokenmall.service.messagebus import EventBus
from tokenmall.service.orders import OrderService, PaymentHub
from tokenmall.service.uow import Store
from tokenmall.store import schema as s
from tokenmall.store.db import create_db_engine

SECRET = "integration-secret-0123456789abcdef"
MODELS: dict[str, Any] = {
    "distribution": {},
    "refer3": {},
    "chain21": {},
    "queue_free": {},
    "rebate": {},
}
THREADS = 4


def _mall(engine: Engine, buyers: int) -> tuple[int, str, int, OrderService]:
    """A tenant with every model on; root <- r1 <- b00..bNN; settlement 7 days after delivery."""
    code = f"t-{uuid.uuid4().hex[:12]}"
    tid = Ledger(engine).create_tenant(code)
    store = Store(engine, bus=EventBus(bootstrap.event_handlers()))
    with engine.begin() as conn:
        merchant = catalog.create_merchant(conn, tid, code="m", name="M")
        product = catalog.create_product(conn, tid, merchant_id=merchant.id, name="Tea")
        sku = catalog.create_sku(
            conn, tid, product_id=product.id, name="250g", price=Decimal(100), stock=1000
        )
    with store.tenant_tx(tid, lock=False) as tx:
        members.register(tx, "root")
        invite = members.get_profile(tx.conn, tid, "root").invite_code
        members.register(tx, "r1", invite_code=invite)
        invite = members.get_profile(tx.conn, tid, "r1").invite_code
        for i in range(buyers):
            members.register(tx, f"b{i:02d}", invite_code=invite)
    with store.tenant_tx(tid) as tx:
        marketing.set_models(tx, MODELS, actor="test", compliance_override="race test")
    return tid, code, sku.id, OrderService(engine, PaymentHub(SECRET), store=store)


def _paid(svc: OrderService, tid: int, code: str, sku: int, member: str) -> str:
    order = svc.create_order(tid, member=member, lines=[(sku, 1)])
    pay = svc.start_payment(tid, code, order.ref)
    assert pay.intent_id is not None
    svc.complete_sandbox(tid, code, pay.intent_id)
    svc.confirm_delivery(tid, order.ref)
    return order.ref


def _race(calls: list[Callable[[], object]]) -> list[object]:
    """Run ``calls`` at once (a barrier before each); their results or the errors raised."""
    barrier = threading.Barrier(len(calls))

    def run(fn: Callable[[], object]) -> object:
        barrier.wait()
        try:
            return fn()
        except TokenmallError as exc:
            return exc

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def _rewards(engine: Engine, tid: int) -> list[Any]:
    r = s.marketing_rewards.c
    with engine.connect() as conn:
        return list(conn.execute(select(s.marketing_rewards).where(r.tenant_id == tid)))


def _books_ok(engine: Engine, tid: int) -> None:
    with engine.connect() as conn:
        sheet = accounting.balance_sheet(conn, tid)
    assert sheet.ok, sheet.broken


def test_the_same_settlement_by_several_threads_pays_once(db_url: str) -> None:
    engine = create_db_engine(db_url, pool_size=THREADS + 4, max_overflow=0)
    try:
        tid, code, sku, svc = _mall(engine, buyers=3)
        refs = [_paid(svc, tid, code, sku, f"b{i:02d}") for i in range(3)]
        for ref in refs:
            outcomes = _race([lambda ref=ref: svc.settle_order(tid, ref)] * THREADS)
            assert sum(not isinstance(o, Exception) for o in outcomes) >= 1
        # and the handler itself, fed the same fact by several threads at once
        store = svc.ctx.store

        def again(ref: str) -> None:
            with store.tenant_tx(tid) as tx:
                tx.emit(OrderSettled(ref, "b00", Decimal(100), 0.0))

        for ref in refs:
            _race([lambda ref=ref: again(ref)] * THREADS)
        rows = _rewards(engine, tid)
        keys = Counter((r.order_ref, r.model, r.beneficiary, r.step) for r in rows)
        assert keys
        assert max(keys.values()) == 1
        # distribution paid r1 10.00 and root 5.00 per order, once each
        by = Counter()
        for r in rows:
            if r.model == "distribution":
                by[r.beneficiary] += from_atoms(r.amount, CNY_PLACES)
        assert by == {"r1": Decimal("30.00"), "root": Decimal("15.00")}
        _books_ok(engine, tid)
    finally:
        engine.dispose()


def test_refunds_racing_settlement_leave_every_model_at_zero(db_url: str) -> None:
    orders = 6
    engine = create_db_engine(db_url, pool_size=THREADS + 4, max_overflow=0)
    try:
        tid, code, sku, svc = _mall(engine, buyers=orders)
        refs = [_paid(svc, tid, code, sku, f"b{i:02d}") for i in range(orders)]
        phases = Counter()
        for n, ref in enumerate(refs):
            outcomes = _race(
                [
                    lambda ref=ref: svc.settle_order(tid, ref),
                    lambda ref=ref, n=n: svc.refund(tid, code, ref, refund_id=f"rf{n}"),
                ]
            )
            refund = outcomes[1]
            assert not isinstance(refund, Exception), refund
            phases[refund[0].phase] += 1  # type: ignore[index]
        rows = _rewards(engine, tid)
        keys = Counter((r.order_ref, r.model, r.beneficiary, r.step) for r in rows)
        assert not keys or max(keys.values()) == 1
        net: Counter[tuple[str, str]] = Counter()
        for r in rows:
            net[(r.model, r.beneficiary)] += from_atoms(r.amount, CNY_PLACES)
        assert all(v == 0 for v in net.values()), net
        assert sum(phases.values()) == orders
        _books_ok(engine, tid)
    finally:
        engine.dispose()
