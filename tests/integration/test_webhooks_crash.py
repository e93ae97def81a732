"""Webhooks survive a SIGKILL, on SQLite and PostgreSQL.

* Killed after the fact committed and before any delivery: the outbox row is there, and the
  next process's scheduler delivers it.
* Killed in the middle of a delivery (its row claimed, the POST under way): the claim lapses
  and the next scheduler delivers it; the receiver has it once after de-duplication.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
import uuid
from decimal import Decimal
from functools import partial

import httpx
from sqlalchemy import Engine, select
from webhook_receiver import Receiver

from tokenmall import bootstrap
from tokenmall.domain.params import TenantParams
from tokenmall.service import catalog, members, webhooks
from tokenmall.settings import Settings
from tokenmall.store import schema as s
from tokenmall.store.db import create_db_engine

SECRET_KEY = "webhooks-secret-key-0123456789abcdef-0123"


def _services(engine: Engine) -> bootstrap.Services:
    return bootstrap.build(Settings(db_url="sqlite://", secret_key=SECRET_KEY), engine)


def _mall(engine: Engine, url: str) -> tuple[int, str, int, str]:
    code = f"t-{uuid.uuid4().hex[:12]}"
    tid = _services(engine).store.ledger.create_tenant(code, TenantParams(settle_days=Decimal(0)))
    with engine.begin() as conn:
        merchant = catalog.create_merchant(conn, tid, code="m", name="M")
        product = catalog.create_product(conn, tid, merchant_id=merchant.id, name="Tea")
        sku = catalog.create_sku(
            conn, tid, product_id=product.id, name="250g", price=Decimal(100), stock=5
        )
        members.create_member(conn, tid, "bob")
        _, secret = webhooks.create_endpoint(
            conn, tid, url=url, events=["order.paid", "order.settled"], description=None, actor="op"
        )
    return tid, code, sku.id, secret


def _pay_then_die(url: str, tid: int, code: str, sku: int) -> None:
    """A server process: an order paid (its facts and outbox rows commit), then SIGKILL."""
    svc = _services(create_db_engine(url)).orders
    order = svc.create_order(tid, member="bob", lines=[(sku, 1)])
    pay = svc.start_payment(tid, code, order.ref)
    assert pay.intent_id is not None
    svc.complete_sandbox(tid, code, pay.intent_id)
    os.kill(os.getpid(), signal.SIGKILL)


def _die_while_sending(url: str, tid: int) -> None:
    """A scheduler process killed while its POST is under way (the row claimed)."""

    def die(_request: httpx.Request) -> httpx.Response:
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")

    sender = webhooks.WebhookSender(create_db_engine(url), transport=httpx.MockTransport(die))
    sender.deliver_due(tenants=[tid])


def _run(target: object, *args: object) -> None:
    proc = mp.get_context("spawn").Process(target=target, args=args)
    proc.start()
    proc.join(120)
    assert proc.exitcode == -signal.SIGKILL


def _states(engine: Engine, tid: int) -> list[tuple[str, str, str | None]]:
    d = s.webhook_deliveries.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(d.event_type, d.status, d.claim).where(d.tenant_id == tid).order_by(d.id)
        ).all()
    return [(r.event_type, r.status, r.claim) for r in rows]


def test_killed_between_the_fact_and_the_delivery_delivers_after_restart(
    db_engine: Engine, db_url: str
) -> None:
    receiver = Receiver()
    tid, code, sku, receiver.secret = _mall(db_engine, receiver.url)
    _run(_pay_then_die, db_url, tid, code, sku)
    assert _states(db_engine, tid) == [
        ("order.paid", "pending", None),
        ("order.settled", "pending", None),
    ]
    # the restarted process: its scheduler's round sends them (this tenant's only: the
    # PostgreSQL database is shared with other tests' tenants)
    services = _services(db_engine)
    scheduler = bootstrap.scheduler(services)
    assert scheduler.webhooks == services.webhooks.deliver_due  # the composition root wires it
    scheduler.webhooks = partial(services.webhooks.deliver_due, tenants=[tid])
    scheduler.jobs = []
    with receiver.serving():
        report = scheduler.tick()
    services.webhooks.close()
    assert report.webhooks == 2
    assert [t for t, status, _ in _states(db_engine, tid) if status == "delivered"] == [
        "order.paid",
        "order.settled",
    ]
    assert [e["type"] for e in receiver.unique()] == ["order.paid", "order.settled"]
    assert receiver.bad_signatures == 0


def test_killed_during_a_delivery_its_claim_lapses_and_it_is_delivered_once(
    db_engine: Engine, db_url: str
) -> None:
    receiver = Receiver()
    tid, code, sku, receiver.secret = _mall(db_engine, receiver.url)
    _run(_pay_then_die, db_url, tid, code, sku)
    _run(_die_while_sending, db_url, tid)
    states = _states(db_engine, tid)
    assert [(t, status) for t, status, _ in states] == [
        ("order.paid", "pending"),
        ("order.settled", "pending"),
    ]
    assert states[0][2] is not None  # claimed by the dead scheduler
    assert states[1][2] is None  # held back behind it: an order's events go in order
    sender = webhooks.WebhookSender(db_engine)
    with receiver.serving():
        assert sender.deliver_due(tenants=[tid]) == 0  # the claim still holds
        later = time.time() + sender.lease + 1
        assert sender.deliver_due(now=later, tenants=[tid]) == 2
    sender.close()
    assert [status for _, status, _ in _states(db_engine, tid)] == ["delivered", "delivered"]
    assert [e["type"] for e in receiver.unique()] == ["order.paid", "order.settled"]
