"""Running several processes on one database, on SQLite and PostgreSQL: the scheduler's lease
(one holder; it expires when not renewed; released on a clean stop; a standby scheduler runs
no job) and the sandbox's intents shared by every process (started in one, paid in another;
two paying at once, one does), and a waiting payment whose intent was forgotten reopened."""

from __future__ import annotations

import logging
import threading
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from tokenmall.cli import app as cli_app
from tokenmall.payments import PaymentStateError
from tokenmall.service import catalog, members
from tokenmall.service.ledger import Ledger
from tokenmall.service.orders import OrderService, PaymentHub, SettleReport
from tokenmall.store.db import create_db_engine, migrate
from tokenmall.store.lease import Lease
from tokenmall.worker import Scheduler, lease_ttl

SECRET = "integration-secret-0123456789abcdef"
NOON = 1_780_000_000.0


class Clock:
    def __init__(self, now: float = NOON) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _name() -> str:
    # a lease of each test's own: the PostgreSQL database is shared by a session's tests
    return f"test-{uuid.uuid4().hex[:12]}"


# ----------------------------------------------------------------------------- the lease


def test_one_holder_until_its_lease_expires_or_is_released(db_engine: Engine) -> None:
    clock, name = Clock(), _name()
    a = Lease(db_engine, name, ttl=10, holder="a", clock=clock)
    b = Lease(db_engine, name, ttl=10, holder="b", clock=clock)
    assert a.acquire()
    assert not b.acquire()
    clock.now += 9
    assert a.acquire()  # renewed: ten more seconds from now
    clock.now += 9
    assert not b.acquire()
    state = b.state()
    assert state is not None
    assert (state.holder, state.acquired_at, state.expires_at) == ("a", NOON, NOON + 19)
    clock.now += 1.5  # a stopped renewing (it died): its lease expires
    assert b.acquire()
    assert not a.keep()
    assert not a.acquire()
    b.release()
    assert a.acquire()  # at once, not after b's ttl


def test_holders_racing_for_a_free_lease_get_one_winner(db_engine: Engine) -> None:
    name, racers = _name(), 8
    barrier = threading.Barrier(racers)
    won: list[str] = []

    def race(i: int) -> None:
        lease = Lease(db_engine, name, ttl=30, holder=f"h{i}")
        barrier.wait()
        if lease.acquire():
            won.append(lease.holder)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1


def test_a_standby_scheduler_runs_no_job_and_takes_over_when_the_lease_expires(
    db_engine: Engine,
) -> None:
    clock, name = Clock(), _name()
    ran: dict[str, int] = {"a": 0, "b": 0}

    def scheduler(who: str) -> Scheduler:
        def job(_engine: Engine, _now: float) -> int:
            ran[who] += 1
            return 0

        lease = Lease(db_engine, name, ttl=lease_ttl(1.0), holder=who, clock=clock)
        return Scheduler(db_engine, jobs=[("job", job)], lease=lease)

    a, b = scheduler("a"), scheduler("b")
    assert not a.tick(NOON).standby
    assert b.tick(NOON).standby
    assert ran == {"a": 1, "b": 0}
    clock.now += lease_ttl(1.0) + 1  # a is gone
    assert not b.tick(NOON).standby
    assert a.tick(NOON).standby
    assert ran == {"a": 1, "b": 1}
    b.stop()  # a clean stop releases it: a takes over on its next tick
    assert not a.tick(NOON).standby
    assert ran == {"a": 2, "b": 1}


def test_the_scheduler_logs_what_it_did_at_info(
    db_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    jobs: list[tuple[str, Any]] = [
        ("expire_orders", lambda _e, _n: 2),
        ("settle_due", lambda _e, _n: SettleReport(3, [])),
    ]
    scheduler = Scheduler(db_engine, jobs=jobs, refunds=lambda _n: 1, payments=lambda _n: 0)
    with caplog.at_level(logging.INFO, logger="tokenmall.worker"):
        scheduler.tick(NOON)
    lines = [r.getMessage() for r in caplog.records if r.name == "tokenmall.worker"]
    assert "expired 2 unpaid orders past their deadline" in lines
    assert "settled 3 orders past their return window" in lines
    assert "sent 1 provider refunds again" in lines
    assert not any("reconciled" in line for line in lines)  # nothing done, nothing said


# ----------------------------------------------------------------------------- sandbox intents


def _mall(engine: Engine) -> tuple[int, str, int]:
    code = f"t-{uuid.uuid4().hex[:12]}"
    tid = Ledger(engine).create_tenant(code)
    with engine.begin() as conn:
        merchant = catalog.create_merchant(conn, tid, code="m", name="M")
        product = catalog.create_product(conn, tid, merchant_id=merchant.id, name="Tea")
        sku = catalog.create_sku(
            conn, tid, product_id=product.id, name="250g", price=Decimal(100), stock=10
        )
        members.create_member(conn, tid, "bob")
    return tid, code, sku.id


def test_an_intent_opened_by_one_process_is_paid_through_another(db_engine: Engine) -> None:
    # two workers: each its own service and payment hub, on one database
    one = OrderService(db_engine, PaymentHub(SECRET, engine=db_engine))
    two = OrderService(db_engine, PaymentHub(SECRET, engine=db_engine))
    tid, code, sku = _mall(db_engine)
    order = one.create_order(tid, member="bob", lines=[(sku, 1)])
    pay = one.start_payment(tid, code, order.ref)
    assert pay.intent_id is not None
    # asked again through the other worker: the same attempt and intent
    again = two.start_payment(tid, code, order.ref)
    assert (again.attempt, again.intent_id) == (pay.attempt, pay.intent_id)
    done = two.complete_sandbox(tid, code, pay.intent_id)
    assert done.status == "succeeded"
    assert one.get_order(tid, order.ref).status == "paid"
    # the first worker's gateway sees it paid: paying it again there is refused
    box = one.hub.sandbox(code)
    with pytest.raises(PaymentStateError):
        box.gateway.pay(pay.intent_id)
    # a refund through one worker counts against the intent in the other
    box.gateway.refund(pay.intent_id, "r1", Decimal(60))
    with pytest.raises(PaymentStateError, match="exceeds"):
        two.hub.sandbox(code).gateway.refund(pay.intent_id, "r2", Decimal(41))
    assert two.hub.sandbox(code).gateway.refund(pay.intent_id, "r1", Decimal(60)).amount == 60


def test_two_processes_paying_one_intent_at_once_pay_it_once(db_engine: Engine) -> None:
    hubs = [PaymentHub(SECRET, engine=db_engine) for _ in range(4)]
    tid, code, sku = _mall(db_engine)
    svc = OrderService(db_engine, hubs[0])
    order = svc.create_order(tid, member="bob", lines=[(sku, 1)])
    intent = svc.start_payment(tid, code, order.ref).intent_id
    assert intent is not None
    barrier = threading.Barrier(len(hubs))
    outcomes: list[str] = []

    def pay(hub: PaymentHub) -> None:
        gateway = hub.sandbox(code).gateway
        barrier.wait()
        try:
            gateway.pay(intent)
            outcomes.append("paid")
        except PaymentStateError:
            outcomes.append("refused")

    threads = [threading.Thread(target=pay, args=(hub,)) for hub in hubs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["paid", "refused", "refused", "refused"]


def test_a_waiting_payment_whose_intent_was_forgotten_is_reopened(db_engine: Engine) -> None:
    """A sandbox kept in memory (no database given) forgets its intents on a restart; the
    waiting attempt is handed back with a live intent, never the dead one."""
    tid, code, sku = _mall(db_engine)
    before = OrderService(db_engine, PaymentHub(SECRET))
    order = before.create_order(tid, member="bob", lines=[(sku, 1)])
    dead = before.start_payment(tid, code, order.ref)
    after = OrderService(db_engine, PaymentHub(SECRET))  # the restarted process
    pay = after.start_payment(tid, code, order.ref)
    assert pay.attempt == dead.attempt
    assert pay.intent_id is not None
    assert pay.intent_id != dead.intent_id
    assert after.start_payment(tid, code, order.ref).intent_id == pay.intent_id
    after.complete_sandbox(tid, code, pay.intent_id)
    assert after.get_order(tid, order.ref).status == "paid"


def test_worker_once_stands_by_while_another_process_holds_the_lease(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mall.db'}"
    engine = create_db_engine(url)
    try:
        migrate(engine)
        Ledger(engine).create_tenant("t1")
        other = Lease(engine, ttl=60, holder="elsewhere:1:abc")
        assert other.acquire()
        result = CliRunner().invoke(cli_app, ["worker", "--once", "--db", url])
        assert result.exit_code == 0, result.output
        assert "another process runs the scheduler on this database" in result.stderr
        assert other.state() is not None
        assert other.keep()  # still the holder
        other.release()
        result = CliRunner().invoke(cli_app, ["worker", "--once", "--db", url])
        assert result.exit_code == 0, result.output
        assert "another process" not in result.stderr
        state = other.state()
        assert state is not None
        assert state.holder != other.holder
        assert state.expires_at == 0.0  # --once gives the lease back when done
    finally:
        engine.dispose()
