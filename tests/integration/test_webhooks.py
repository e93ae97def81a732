"""Webhooks end to end on SQLite and PostgreSQL: facts write their deliveries in their own
transaction, and the scheduler's job gets every one through a receiver on 127.0.0.1 that
refuses connections, answers 500 and answers too late before it accepts.

What must hold: after de-duplication by event id the receiver has every event exactly once,
each order's events in the order they happened; a fact that rolls back leaves no delivery;
every delivery carries a signature the receiver verifies; given up deliveries are replayed.
"""

from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, func, select, update
from webhook_receiver import Receiver

from tokenmall import bootstrap
from tokenmall.domain.economy import Purchase, Sell
from tokenmall.domain.events import OrderSettled
from tokenmall.domain.params import TenantParams
from tokenmall.service import catalog, dayclose, members, wallet, webhooks
from tokenmall.service.messagebus import EventBus
from tokenmall.service.uow import TenantTx
from tokenmall.settings import Settings
from tokenmall.store import schema as s

SECRET_KEY = "webhooks-secret-key-0123456789abcdef-0123"
# where rows no test sends point: refused at once if another test's scheduler round (they
# share the PostgreSQL database) tries them
UNREACHABLE = "http://127.0.0.1:9/hook"
FAST = webhooks.RetryPolicy(base=1, cap=4, max_attempts=10)


class Boom(Exception):
    pass


def _services(engine: Engine, bus: EventBus | None = None) -> bootstrap.Services:
    return bootstrap.build(Settings(db_url="sqlite://", secret_key=SECRET_KEY), engine, bus=bus)


def _mall(services: bootstrap.Services, **params: Any) -> tuple[int, str, int]:
    code = f"t-{uuid.uuid4().hex[:12]}"
    p = TenantParams(settle_days=Decimal(0), **params)
    tid = services.store.ledger.create_tenant(code, p)
    with services.engine.begin() as conn:
        merchant = catalog.create_merchant(conn, tid, code="m", name="M")
        product = catalog.create_product(conn, tid, merchant_id=merchant.id, name="Tea")
        sku = catalog.create_sku(
            conn, tid, product_id=product.id, name="250g", price=Decimal(100), stock=50
        )
        members.create_member(conn, tid, "bob")
    return tid, code, sku.id


def _endpoint(engine: Engine, tid: int, url: str, events: list[str] | None = None) -> str:
    with engine.begin() as conn:
        _, secret = webhooks.create_endpoint(
            conn,
            tid,
            url=url,
            events=list(webhooks.EVENT_TYPES) if events is None else events,
            description=None,
            actor="op",
        )
    return secret


def _pay(services: bootstrap.Services, tid: int, code: str, sku: int) -> str:
    svc = services.orders
    order = svc.create_order(tid, member="bob", lines=[(sku, 1)])
    pay = svc.start_payment(tid, code, order.ref)
    assert pay.intent_id is not None
    svc.complete_sandbox(tid, code, pay.intent_id)
    assert svc.get_order(tid, order.ref).status == "settled"
    return order.ref


def _rows(engine: Engine, tid: int) -> list[Any]:
    d = s.webhook_deliveries.c
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(s.webhook_deliveries).where(d.tenant_id == tid).order_by(d.id)
            ).all()
        )


def _drain(sender: webhooks.WebhookSender, tid: int, rounds: int, start: float) -> float:
    """Scheduler rounds, each past the longest back-off of the policy."""
    now = start
    for _ in range(rounds):
        sender.deliver_due(now=now, tenants=[tid])
        now += FAST.cap + 1
    return now


def test_every_event_arrives_once_after_dedup_in_order_per_order(db_engine: Engine) -> None:
    services = _services(db_engine)
    tid, code, sku = _mall(services)
    receiver = Receiver(["500", "slow", "500", "slow", "500"], slow=1.0)
    receiver.secret = _endpoint(db_engine, tid, receiver.url)
    first = _pay(services, tid, code, sku)
    services.orders.refund(tid, code, first, refund_id="r1", amount=Decimal("30.00"))
    second = _pay(services, tid, code, sku)
    written = _rows(db_engine, tid)
    assert [r.event_type for r in written] == [
        "order.paid",
        "order.settled",
        "order.refunded",
        "order.paid",
        "order.settled",
    ]
    assert {r.status for r in written} == {"pending"}

    sender = webhooks.WebhookSender(db_engine, policy=FAST, timeout=0.4)
    try:
        # nobody listening yet: both orders' first events are refused, nothing else is tried
        assert sender.deliver_due(now=time.time(), tenants=[tid]) == 2
        refused = _rows(db_engine, tid)
        assert [r.attempts for r in refused] == [1, 0, 0, 1, 0]
        assert all("ConnectError" in (r.last_error or "") for r in refused if r.attempts)
        with receiver.serving():
            _drain(sender, tid, 12, time.time() + FAST.cap + 1)
            time.sleep(receiver.slow + 0.2)  # the last late answer lands
    finally:
        sender.close()
        receiver.close()

    done = _rows(db_engine, tid)
    assert {r.status for r in done} == {"delivered"}
    assert receiver.bad_signatures == 0
    got = receiver.unique()
    assert sorted(e["id"] for e in got) == sorted(r.event_id for r in done)
    assert len(got) == 5
    # the timed-out requests were processed by the receiver too: only the id tells duplicates
    assert len(receiver.accepted) > len(got)
    assert [what for _, what in receiver.requests[:5]] == ["500", "slow", "500", "slow", "500"]
    for ref, kinds in [
        (first, ["order.paid", "order.settled", "order.refunded"]),
        (second, ["order.paid", "order.settled"]),
    ]:
        assert [e["type"] for e in got if e["data"]["order"] == ref] == kinds
    paid = next(e for e in got if e["type"] == "order.paid" and e["data"]["order"] == first)
    assert paid["tenant"] == code
    assert paid["data"]["total"] == "100.00"
    assert paid["created_at"].endswith("Z")
    refund = next(e for e in got if e["type"] == "order.refunded")
    assert (refund["data"]["amount"], refund["data"]["refund_id"]) == ("30.00", "r1")
    assert sum(r.attempts for r in done) > len(done)


def test_a_rolled_back_fact_writes_no_delivery_and_its_retry_writes_one(
    db_engine: Engine,
) -> None:
    bus = EventBus(bootstrap.event_handlers())
    services = _services(db_engine, bus)
    tid, code, sku = _mall(services)
    _endpoint(db_engine, tid, UNREACHABLE)

    def boom(_tx: TenantTx, event: OrderSettled) -> None:
        raise Boom(event.order)

    bus.register(OrderSettled, boom)  # after the outbox handler: its row rolls back too
    svc = services.orders
    order = svc.create_order(tid, member="bob", lines=[(sku, 1)])
    pay = svc.start_payment(tid, code, order.ref)
    assert pay.intent_id is not None
    done = svc.complete_sandbox(tid, code, pay.intent_id, deliver=False)
    headers, body = done.deliveries[0]
    with pytest.raises(Boom):
        svc.handle_notification(tid, code, "sandbox", headers, body, pump=False)
    assert svc.get_order(tid, order.ref).status == "pending_payment"
    assert _rows(db_engine, tid) == []

    bus.unregister(OrderSettled, boom)
    svc.handle_notification(tid, code, "sandbox", headers, body, pump=False)
    svc.handle_notification(tid, code, "sandbox", headers, body, pump=False)  # a duplicate
    assert [r.event_type for r in _rows(db_engine, tid)] == ["order.paid", "order.settled"]


def test_withdrawals_and_day_closes_are_delivered_with_their_figures(db_engine: Engine) -> None:
    services = _services(db_engine)
    tid, code, sku = _mall(services)
    got: list[dict[str, Any]] = []

    def receive(request: httpx.Request) -> httpx.Response:
        got.append(json_of(request))
        return httpx.Response(204)

    _endpoint(
        db_engine,
        tid,
        UNREACHABLE,
        ["withdrawal.paid", "withdrawal.failed", "day.closed"],
    )
    _pay(services, tid, code, sku)  # not subscribed: nothing written for it
    assert _rows(db_engine, tid) == []
    services.store.ledger.submit(tid, [("sell", Sell("bob", Decimal(5)))])
    services.orders.hub.sandbox(code).gateway.block_account("closed-wallet")
    refs = []
    for key, account in [("k1", "oid-bob"), ("k2", "closed-wallet")]:
        wd, _ = wallet.request_withdrawal(
            services.store.ledger, tid, "bob", amount=Decimal("1.00"), account=account, key=key
        )
        wallet.approve_withdrawal(services.store.ledger, tid, wd.id, reviewer="op")
        done = wallet.send_payout(services.store, services.payouts, tid, code, wd.id)
        refs.append((wd.id, done.status))
    assert [status for _, status in refs] == ["paid", "failed"]
    with db_engine.connect() as conn:
        clock = dayclose.tenant_clock(conn, tid)
    dayclose.close_day(services.store, clock, clock.today(time.time()))

    sender = webhooks.WebhookSender(db_engine, transport=httpx.MockTransport(receive))
    assert sender.deliver_due(tenants=[tid]) == 3
    assert [e["type"] for e in got] == ["withdrawal.paid", "withdrawal.failed", "day.closed"]
    assert got[0]["data"]["withdrawal"] == refs[0][0]
    assert got[0]["data"]["amount"] == "1.00"
    assert Decimal(got[0]["data"]["net"]) + Decimal(got[0]["data"]["fee"]) == Decimal(1)
    assert got[2]["data"]["day"] == clock.today(time.time()).isoformat()
    assert {r.status for r in _rows(db_engine, tid)} == {"delivered"}


def json_of(request: httpx.Request) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(request.content)
    return parsed


def test_given_up_deliveries_are_failed_and_a_replay_sends_them(db_engine: Engine) -> None:
    services = _services(db_engine)
    tid, code, sku = _mall(services)
    _endpoint(db_engine, tid, UNREACHABLE, ["order.paid", "order.settled"])
    answers = [500] * 3
    got: list[str] = []

    def receive(request: httpx.Request) -> httpx.Response:
        status = answers.pop(0) if answers else 200
        if status == 200:
            got.append(json_of(request)["type"])
        return httpx.Response(status)

    policy = webhooks.RetryPolicy(base=1, cap=1, max_attempts=3)
    sender = webhooks.WebhookSender(
        db_engine, policy=policy, transport=httpx.MockTransport(receive)
    )
    _pay(services, tid, code, sku)
    now = time.time()
    for i in range(3):
        sender.deliver_due(now=now + 2 * i, tenants=[tid])
    rows = _rows(db_engine, tid)
    # paid was given up at its 3rd attempt; settled, held back until then, went out next
    assert [(r.event_type, r.status, r.attempts) for r in rows] == [
        ("order.paid", "failed", 3),
        ("order.settled", "delivered", 1),
    ]
    assert rows[0].last_status == 500
    assert got == ["order.settled"]
    with db_engine.connect() as conn:
        failed = webhooks.list_deliveries(conn, tid, status="failed", limit=10, cursor=None)
    assert [d.id for d in failed.items] == [rows[0].id]
    with db_engine.begin() as conn:
        replayed = webhooks.replay_delivery(conn, tid, rows[0].id)
    assert (replayed.status, replayed.attempts) == ("pending", 0)
    sender.deliver_due(tenants=[tid])
    assert got == ["order.settled", "order.paid"]
    assert {r.status for r in _rows(db_engine, tid)} == {"delivered"}


def test_two_schedulers_never_send_the_same_row_at_once(db_engine: Engine) -> None:
    """A claimed row is skipped by the other scheduler until its claim lapses."""
    services = _services(db_engine)
    tid, code, sku = _mall(services)
    _endpoint(db_engine, tid, UNREACHABLE, ["order.paid"])
    _pay(services, tid, code, sku)
    calls: list[str] = []
    other = webhooks.WebhookSender(
        db_engine,
        transport=httpx.MockTransport(lambda r: calls.append("other") or httpx.Response(200)),
    )

    def slow_receive(request: httpx.Request) -> httpx.Response:
        # while the first scheduler is sending, the second one runs a whole round
        assert other.deliver_due(tenants=[tid]) == 0
        calls.append("first")
        return httpx.Response(200)

    first = webhooks.WebhookSender(db_engine, transport=httpx.MockTransport(slow_receive))
    assert first.deliver_due(tenants=[tid]) == 1
    assert calls == ["first"]
    assert other.deliver_due(tenants=[tid]) == 0  # delivered: nothing left
    # a claim that lapsed (its scheduler died mid-send) is taken over
    d = s.webhook_deliveries.c
    with db_engine.begin() as conn:
        conn.execute(
            update(s.webhook_deliveries)
            .where(d.tenant_id == tid)
            .values(status="pending", claim="dead", claimed_until=time.time() + 30)
        )
    assert other.deliver_due(tenants=[tid]) == 0
    assert other.deliver_due(now=time.time() + 31, tenants=[tid]) == 1
    assert calls == ["first", "other"]
    with db_engine.connect() as conn:
        n = conn.execute(
            select(func.count()).where(d.tenant_id == tid, d.status == "delivered")
        ).scalar_one()
    assert n == 1


def test_a_disabled_endpoint_gets_nothing_new_and_nothing_pending(db_engine: Engine) -> None:
    services = _services(db_engine)
    tid, code, sku = _mall(services)
    _endpoint(db_engine, tid, UNREACHABLE, ["order.paid"])
    _pay(services, tid, code, sku)
    with db_engine.begin() as conn:
        endpoint = webhooks.list_endpoints(conn, tid, limit=10, cursor=None).items[0]
        webhooks.disable_endpoint(conn, tid, endpoint.id)
        again = webhooks.disable_endpoint(conn, tid, endpoint.id)
    assert again.disabled_at is not None
    _pay(services, tid, code, sku)
    assert len(_rows(db_engine, tid)) == 1
    sender = webhooks.WebhookSender(
        db_engine, transport=httpx.MockTransport(lambda r: httpx.Response(200))
    )
    assert sender.deliver_due(tenants=[tid]) == 0
    assert _rows(db_engine, tid)[0].status == "pending"


def test_migration_0011_matches_the_metadata(db_engine: Engine) -> None:
    tables = {"webhook_endpoints", "webhook_deliveries"}
    with db_engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(ctx, s.metadata)
    assert [d for d in diffs if any(t in repr(d) for t in tables)] == []
    assert set(s.metadata.tables) >= tables


def test_forced_exits_are_delivered_once_each_from_the_close_and_from_any_command(
    db_engine: Engine,
) -> None:
    """R7 in docs/RULES.md: A's dividends use up its quota at the close, and A is force-sold
    there (the close's bulk path); a referral then gives the exited A points, sold at once by
    the purchase that paid them (the per-command path).  Two exits of one member: two events,
    two ids, each delivered once."""
    services = _services(db_engine)
    tid, _, _ = _mall(services)
    _endpoint(db_engine, tid, UNREACHABLE, ["member.exited"])
    store = services.store
    with store.tenant_tx(tid) as tx:
        tx.apply_one("p-A", Purchase("oA", "A", Decimal(100)))
    for i in range(1, 7):
        with store.tenant_tx(tid) as tx:
            tx.apply_one(f"p-B{i}", Purchase(f"oB{i}", f"B{i}", Decimal(100)))
        held = store.ledger.members(tid, [f"B{i}"])[f"B{i}"]["points"]
        with store.tenant_tx(tid) as tx:
            tx.apply_one(f"s-B{i}", Sell(f"B{i}", Decimal(held)))
    assert _rows(db_engine, tid) == []  # nobody due yet
    with db_engine.connect() as conn:
        clock = dayclose.tenant_clock(conn, tid)
    closed = dayclose.close_day(store, clock, clock.today(time.time()))
    assert closed.exits == "1"
    with store.tenant_tx(tid) as tx:
        bought = tx.apply_one("p-C", Purchase("oC", "C", Decimal(100), referrer="A"))
    assert [x.member for x in bought.exits] == ["A"]
    rows = _rows(db_engine, tid)
    assert [r.event_type for r in rows] == ["member.exited", "member.exited"]
    assert len({r.event_id for r in rows}) == 2
    bodies = [json.loads(r.payload)["data"] for r in rows]
    assert [b["member"] for b in bodies] == ["A", "A"]
    # the close sold A's 21 EP for 73.60 SP (docs/RULES.md's worked example of R7)
    assert (bodies[0]["points"], bodies[0]["payout"]) == ("21", "73.60")
    assert bodies[1]["ledger_seq"] == bought.seq
    # replaying the close or the purchase reports nothing again
    dayclose.close_day(store, clock, clock.today(time.time()))
    with store.tenant_tx(tid) as tx:
        tx.apply_one("p-C", Purchase("oC", "C", Decimal(100), referrer="A"))
    assert len(_rows(db_engine, tid)) == 2
