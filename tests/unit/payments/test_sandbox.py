"""The sandbox provider: signed notifications, and an outbox that misbehaves reproducibly."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tokenmall.payments import (
    IntentStatus,
    ManualClock,
    Notification,
    NotificationKind,
    PaymentProvider,
    PayoutStatus,
    RefundStatus,
    SignedDelivery,
)
from tokenmall.payments.errors import (
    ForeignNotification,
    InvalidAmount,
    InvalidPaymentRequest,
    InvalidSignature,
    MalformedNotification,
    PaymentConflict,
    PaymentError,
    PaymentStateError,
    ProviderConfigError,
    StaleNotification,
    UnknownPayment,
)
from tokenmall.payments.sandbox import (
    SANDBOX_NONCE,
    SANDBOX_SIGNATURE,
    SANDBOX_TIMESTAMP,
    Delivery,
    DeliveryChaos,
    SandboxGateway,
    SandboxProvider,
    sign_sandbox,
)

from .conftest import START

SECRET = b"tenant-one-secret-0123456789abcdef"


def make(
    clock: ManualClock, *, seed: int = 7, chaos: DeliveryChaos | None = None, tenant: str = "t1"
) -> tuple[SandboxGateway, SandboxProvider]:
    gateway = SandboxGateway(tenant, SECRET, clock=clock, seed=seed, chaos=chaos)
    return gateway, SandboxProvider(gateway)


class Inbox:
    """A stand-in for the service's handler: verify, then dedupe on event_id."""

    def __init__(self, provider: SandboxProvider) -> None:
        self.provider = provider
        self.received: list[Notification] = []
        self.requests: list[SignedDelivery] = []
        self.applied: dict[str, Notification] = {}

    def __call__(self, headers: Mapping[str, str], body: bytes) -> None:
        self.requests.append(SignedDelivery(dict(headers), body))
        notification = self.provider.parse_notification(headers, body)
        self.received.append(notification)
        previous = self.applied.setdefault(notification.event_id, notification)
        assert previous == notification  # same event id, same content


def paid_order(gateway: SandboxGateway, provider: SandboxProvider, order_id: str = "o1") -> str:
    intent = provider.create_intent(order_id, Decimal("100.00"), "a mug")
    gateway.pay(intent.intent_id)
    return intent.intent_id


def capture_one(gateway: SandboxGateway, provider: SandboxProvider) -> SignedDelivery:
    inbox = Inbox(provider)
    gateway.drain(inbox)
    return inbox.requests[-1]


# -- the provider interface ------------------------------------------------------------------


def test_sandbox_provider_is_a_payment_provider(clock: ManualClock) -> None:
    _, provider = make(clock)
    typed: PaymentProvider = provider
    assert typed.provider == "sandbox"


def test_payment_refund_and_payout_each_produce_a_verified_notification(
    clock: ManualClock,
) -> None:
    gateway, provider = make(clock)
    intent = provider.create_intent("order-1", Decimal("100.00"), "a mug")
    assert intent.status is IntentStatus.REQUIRES_PAYMENT
    assert gateway.pending_event_ids == ()

    clock.advance(timedelta(seconds=30))
    paid = gateway.pay(intent.intent_id)
    assert paid.status is IntentStatus.SUCCEEDED
    refund = provider.refund(paid, "refund-1", Decimal("40.5"))
    assert refund.status is RefundStatus.PENDING
    payout = provider.payout("payout-1", "wallet-9", Decimal("12.34"))
    assert payout.status is PayoutStatus.PENDING

    inbox = Inbox(provider)
    gateway.drain(inbox)
    payment, refunded, paid_out = inbox.received
    assert payment.kind is NotificationKind.PAYMENT_SUCCEEDED
    assert (payment.intent_id, payment.order_id, payment.amount) == (
        intent.intent_id,
        "order-1",
        Decimal("100.00"),
    )
    assert payment.occurred_at == START + timedelta(seconds=30)
    assert payment.provider_transaction_id
    assert refunded.kind is NotificationKind.REFUND_SUCCEEDED
    assert (refunded.refund_id, refunded.amount) == ("refund-1", Decimal("40.50"))
    assert refunded.provider_transaction_id == refund.provider_refund_id
    assert paid_out.kind is NotificationKind.PAYOUT_SUCCEEDED
    assert (paid_out.payout_id, paid_out.amount) == ("payout-1", Decimal("12.34"))
    assert len({n.event_id for n in inbox.received}) == 3


def test_failed_payment_and_blocked_payout(clock: ManualClock) -> None:
    gateway, provider = make(clock)
    intent = provider.create_intent("o1", Decimal("5"), "x")
    gateway.fail(intent.intent_id)
    gateway.block_account("closed-wallet")
    provider.payout("p1", "closed-wallet", Decimal("1"))
    inbox = Inbox(provider)
    gateway.drain(inbox)
    assert [n.kind for n in inbox.received] == [
        NotificationKind.PAYMENT_FAILED,
        NotificationKind.PAYOUT_FAILED,
    ]
    assert inbox.received[0].provider_transaction_id is None


def test_provider_requests_are_idempotent_per_id(clock: ManualClock) -> None:
    gateway, provider = make(clock)
    intent = provider.create_intent("o1", Decimal("10"), "x")
    assert provider.create_intent("o1", Decimal("10.00"), "x") == intent
    with pytest.raises(PaymentConflict):
        provider.create_intent("o1", Decimal("11"), "x")

    paid = gateway.pay(intent.intent_id)
    first = provider.refund(paid, "r1", Decimal("3"))
    assert provider.refund(paid, "r1", Decimal("3")) == first
    with pytest.raises(PaymentConflict):
        provider.refund(paid, "r1", Decimal("4"))

    payout = provider.payout("p1", "acct", Decimal("2"))
    assert provider.payout("p1", "acct", Decimal("2")) == payout
    with pytest.raises(PaymentConflict):
        provider.payout("p1", "other", Decimal("2"))
    # One notification per business event, however often the request was repeated.
    assert len(gateway.pending_event_ids) == 3


def test_state_rules(clock: ManualClock) -> None:
    gateway, provider = make(clock)
    intent = provider.create_intent("o1", Decimal("10"), "x")
    with pytest.raises(PaymentStateError):
        provider.refund(intent, "r0", Decimal("1"))  # not paid yet
    paid = gateway.pay(intent.intent_id)
    with pytest.raises(PaymentStateError):
        gateway.pay(intent.intent_id)
    with pytest.raises(PaymentStateError):
        gateway.fail(intent.intent_id)
    provider.refund(paid, "r1", Decimal("6"))
    with pytest.raises(PaymentStateError):
        provider.refund(paid, "r2", Decimal("4.01"))
    provider.refund(paid, "r2", Decimal("4"))
    with pytest.raises(UnknownPayment):
        gateway.pay("pi_nope")


@pytest.mark.parametrize("amount", [Decimal("0.001"), Decimal("10.005"), Decimal(0)])
def test_sub_fen_and_non_positive_amounts_are_refused(clock: ManualClock, amount: Decimal) -> None:
    gateway, provider = make(clock)
    with pytest.raises(InvalidAmount):
        provider.create_intent("o1", amount, "x")
    paid = gateway.pay(provider.create_intent("o2", Decimal("100"), "x").intent_id)
    with pytest.raises(InvalidAmount):
        provider.refund(paid, "r1", amount)
    with pytest.raises(InvalidAmount):
        provider.payout("p1", "acct", amount)
    assert len(gateway.pending_event_ids) == 1  # only the payment


def test_float_amounts_are_refused(clock: ManualClock) -> None:
    _, provider = make(clock)
    with pytest.raises(InvalidAmount):
        provider.create_intent("o1", 1.5, "x")  # type: ignore[arg-type]


def test_refund_of_another_providers_intent_is_refused(clock: ManualClock) -> None:
    gateway, provider = make(clock)
    intent = gateway.pay(provider.create_intent("o1", Decimal("1"), "x").intent_id)
    with pytest.raises(InvalidPaymentRequest):
        provider.refund(replace(intent, provider="wechat"), "r1", Decimal("1"))


def test_short_secret_is_refused(clock: ManualClock) -> None:
    with pytest.raises(ProviderConfigError):
        SandboxGateway("t1", b"short", clock=clock)


# -- verification ------------------------------------------------------------------------------


def _flip(text: str, index: int) -> str:
    return text[:index] + chr(ord(text[index]) ^ 0x01) + text[index + 1 :]


def test_signature_is_hmac_over_timestamp_nonce_body(clock: ManualClock) -> None:
    gateway, provider = make(clock)
    paid_order(gateway, provider)
    request = capture_one(gateway, provider)
    h = request.headers
    assert h[SANDBOX_SIGNATURE] == sign_sandbox(
        SECRET, h[SANDBOX_TIMESTAMP], h[SANDBOX_NONCE], request.body
    )


@pytest.mark.parametrize("position", [0, 10, -2, -1])
def test_flipped_body_byte_is_refused(clock: ManualClock, position: int) -> None:
    gateway, provider = make(clock)
    paid_order(gateway, provider)
    request = capture_one(gateway, provider)
    body = bytearray(request.body)
    body[position] ^= 0x01
    with pytest.raises(InvalidSignature):
        provider.parse_notification(request.headers, bytes(body))


@pytest.mark.parametrize("header", [SANDBOX_SIGNATURE, SANDBOX_NONCE, SANDBOX_TIMESTAMP])
@pytest.mark.parametrize("position", [0, -1])
def test_flipped_header_byte_is_refused(clock: ManualClock, header: str, position: int) -> None:
    gateway, provider = make(clock)
    paid_order(gateway, provider)
    request = capture_one(gateway, provider)
    headers = dict(request.headers)
    headers[header] = _flip(headers[header], position)
    with pytest.raises(InvalidSignature):
        provider.parse_notification(headers, request.body)


def test_uppercased_signature_is_refused(clock: ManualClock) -> None:
    gateway, provider = make(clock)
    paid_order(gateway, provider)
    request = capture_one(gateway, provider)
    headers = {**request.headers, SANDBOX_SIGNATURE: request.headers[SANDBOX_SIGNATURE].upper()}
    with pytest.raises(InvalidSignature):
        provider.parse_notification(headers, request.body)


def test_wrong_secret_is_refused(clock: ManualClock) -> None:
    gateway, provider = make(clock)
    paid_order(gateway, provider)
    request = capture_one(gateway, provider)
    misconfigured = SandboxProvider(gateway, secret=b"another-tenant-secret-0123456789")
    with pytest.raises(InvalidSignature):
        misconfigured.parse_notification(request.headers, request.body)


@pytest.mark.parametrize("missing", [SANDBOX_SIGNATURE, SANDBOX_NONCE, SANDBOX_TIMESTAMP])
def test_missing_header_is_malformed(clock: ManualClock, missing: str) -> None:
    gateway, provider = make(clock)
    paid_order(gateway, provider)
    request = capture_one(gateway, provider)
    headers = {k: v for k, v in request.headers.items() if k != missing}
    with pytest.raises(MalformedNotification):
        provider.parse_notification(headers, request.body)


def test_header_names_are_case_insensitive(clock: ManualClock) -> None:
    gateway, provider = make(clock)
    paid_order(gateway, provider)
    request = capture_one(gateway, provider)
    lowered = {k.lower(): v for k, v in request.headers.items()}
    assert provider.parse_notification(lowered, request.body).order_id == "o1"


def test_stale_and_future_timestamps_are_refused(clock: ManualClock) -> None:
    gateway, provider = make(clock)
    paid_order(gateway, provider)
    request = capture_one(gateway, provider)

    clock.advance(timedelta(minutes=5))
    assert provider.parse_notification(request.headers, request.body).order_id == "o1"
    clock.advance(timedelta(seconds=1))
    with pytest.raises(StaleNotification):
        provider.parse_notification(request.headers, request.body)

    ahead = ManualClock(START + timedelta(minutes=10))
    sender = SandboxGateway("t1", SECRET, clock=ahead, seed=1)
    future = sender.sign(request.body)
    lagging = SandboxProvider(gateway, clock=ManualClock(START))
    with pytest.raises(StaleNotification):
        lagging.parse_notification(future.headers, future.body)


def test_authentic_notification_for_another_tenant_is_foreign(clock: ManualClock) -> None:
    # Two tenants that (wrongly) share a secret still cannot feed each other events.
    other_gateway, other_provider = make(clock, tenant="t2")
    paid_order(other_gateway, other_provider)
    request = capture_one(other_gateway, other_provider)
    _, provider = make(clock, tenant="t1")
    with pytest.raises(ForeignNotification):
        provider.parse_notification(request.headers, request.body)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: e.pop("id"),
        lambda e: e.update(type="payment_teleported"),
        lambda e: e["data"].update(amount_fen="100"),
        lambda e: e["data"].update(amount_fen=0),
        lambda e: e["data"].update(currency="USD"),
        lambda e: e["data"].pop("order_id"),
        lambda e: e.update(created="yesterday"),
        lambda e: e.update(created="2024-05-20T04:00:00"),
    ],
)
def test_signed_but_malformed_content_is_refused(clock: ManualClock, mutate: object) -> None:
    gateway, provider = make(clock)
    paid_order(gateway, provider)
    envelope = json.loads(capture_one(gateway, provider).body)
    mutate(envelope)  # type: ignore[operator]
    resigned = gateway.sign(json.dumps(envelope).encode())
    with pytest.raises(MalformedNotification):
        provider.parse_notification(resigned.headers, resigned.body)


def test_non_json_body_is_malformed(clock: ManualClock) -> None:
    gateway, provider = make(clock)
    for body in (b"not json", b"[1, 2]", b"\xff\xfe"):
        request = gateway.sign(body)
        with pytest.raises(MalformedNotification):
            provider.parse_notification(request.headers, request.body)


# -- the outbox ----------------------------------------------------------------------------------


def test_duplicate_delivery_gives_identical_notifications(clock: ManualClock) -> None:
    gateway, provider = make(clock)
    paid_order(gateway, provider)
    inbox = Inbox(provider)
    gateway.drain(inbox)
    event_id = inbox.received[0].event_id
    clock.advance(timedelta(hours=1))
    gateway.redeliver(event_id, inbox)
    first, again = inbox.received
    assert first == again
    assert inbox.requests[0].body == inbox.requests[1].body
    assert inbox.requests[0].headers != inbox.requests[1].headers  # signed afresh
    assert list(inbox.applied) == [event_id]


def _busy_day(clock: ManualClock, seed: int, chaos: DeliveryChaos) -> tuple[SandboxGateway, Inbox]:
    gateway, provider = make(clock, seed=seed, chaos=chaos)
    for n in range(6):
        intent_id = paid_order(gateway, provider, f"o{n}")
        clock.advance(timedelta(seconds=1))
        if n % 2:
            provider.refund(gateway.get_intent(intent_id), f"r{n}", Decimal("10"))
    provider.payout("p1", "acct", Decimal("3"))
    inbox = Inbox(provider)
    for _ in range(20):
        gateway.flush(inbox)
        clock.advance(timedelta(seconds=20))
    assert gateway.pending_event_ids == ()
    return gateway, inbox


CHAOS = DeliveryChaos(
    duplicate_probability=0.4, max_extra_copies=2, delay_probability=0.4, shuffle=True
)


def test_chaos_is_reproducible_with_a_seed() -> None:
    _, first = _busy_day(ManualClock(START), 42, CHAOS)
    _, second = _busy_day(ManualClock(START), 42, CHAOS)
    assert first.requests == second.requests  # same bodies, headers and order
    _, other = _busy_day(ManualClock(START), 43, CHAOS)
    assert [n.event_id for n in other.received] != [n.event_id for n in first.received]


def test_chaos_does_not_change_ids() -> None:
    calm, _ = _busy_day(ManualClock(START), 42, DeliveryChaos())
    wild, _ = _busy_day(ManualClock(START), 42, CHAOS)
    assert {d.event_id for d in calm.deliveries} == {d.event_id for d in wild.deliveries}


def test_chaos_delivers_every_event_at_least_once_and_dedupes(clock: ManualClock) -> None:
    gateway, inbox = _busy_day(clock, 42, CHAOS)
    created = [d.event_id for d in gateway.deliveries]
    assert len(inbox.applied) == 10  # 6 payments, 3 refunds, 1 payout
    assert set(created) == set(inbox.applied)
    assert len(inbox.received) > len(inbox.applied), "seed 42 duplicates some events"


def test_chaos_delivers_out_of_order_and_late() -> None:
    clock = ManualClock(START)
    gateway, inbox = _busy_day(clock, 42, CHAOS)
    first_seen = list(dict.fromkeys(n.event_id for n in inbox.received))
    by_time = sorted(inbox.applied.values(), key=lambda n: n.occurred_at)
    assert first_seen != [n.event_id for n in by_time], "seed 42 reorders events"
    # Some refund arrives before the payment it refunds: the service must cope.
    position = {event_id: i for i, event_id in enumerate(first_seen)}
    payments = {n.order_id: n for n in inbox.applied.values() if n.kind.is_payment}
    refunds = [n for n in inbox.applied.values() if n.kind.is_refund]
    assert any(position[r.event_id] < position[payments[r.order_id].event_id] for r in refunds)

    # Late: a held event is delivered rounds (and, with the clock moving, seconds) later,
    # freshly signed, accepted, and still carrying the time it happened.
    def lateness(delivery: Delivery) -> timedelta:
        sent = datetime.fromtimestamp(int(delivery.request.headers[SANDBOX_TIMESTAMP]), UTC)
        return sent - inbox.applied[delivery.event_id].occurred_at

    # Round 1 runs 6 s after the first event; anything 20 s or more late was held back.
    assert any(lateness(d) >= timedelta(seconds=20) for d in gateway.deliveries)
    assert all(d.acknowledged for d in gateway.deliveries)


def test_failed_deliveries_are_retried_then_given_up(clock: ManualClock) -> None:
    gateway = SandboxGateway("t1", SECRET, clock=clock, seed=1, max_attempts=3)
    provider = SandboxProvider(gateway)
    paid_order(gateway, provider)
    calls: list[bytes] = []

    def down(headers: Mapping[str, str], body: bytes) -> None:
        calls.append(body)
        raise ConnectionError("service is down")

    report = gateway.flush(down)
    assert not report.deliveries[0].acknowledged
    assert "service is down" in (report.deliveries[0].error or "")
    assert len(gateway.pending_event_ids) == 1
    gateway.flush(down)
    report = gateway.flush(down)
    assert report.dead == gateway.dead_event_ids
    assert not gateway.pending_event_ids
    assert len(calls) == 3

    paid_order(gateway, provider, "o2")
    with pytest.raises(PaymentError, match="after 2 rounds"):
        gateway.drain(down, max_rounds=2)


def test_rejecting_handler_leaves_the_event_pending(clock: ManualClock) -> None:
    gateway, provider = make(clock)
    paid_order(gateway, provider)
    clock.advance(timedelta(minutes=1))
    strict = SandboxProvider(gateway, tolerance=timedelta(seconds=1), clock=ManualClock(START))
    report = gateway.flush(strict.parse_notification)
    assert "StaleNotification" in (report.deliveries[0].error or "")
    assert gateway.pending_event_ids


def test_chaos_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="probability"):
        DeliveryChaos(duplicate_probability=1.5)
    with pytest.raises(ValueError, match="at least 1"):
        DeliveryChaos(max_delay_rounds=0)


def test_the_outbox_keeps_a_bounded_history(clock: ManualClock) -> None:
    """A long-running server's sandbox stays small: the newest ``history`` deliveries and
    acknowledged payment events are kept; pending events and payouts' events always are."""
    gateway = SandboxGateway("t1", SECRET, clock=clock, seed=7, history=10)
    provider = SandboxProvider(gateway)
    inbox = Inbox(provider)
    payout = provider.payout("po-early", "acct", Decimal("1"))
    payout_events = gateway.payout_event_ids("po-early")
    assert len(payout_events) == 1
    first_event = ""
    for i in range(60):
        intent = provider.create_intent(f"o{i}", Decimal("1.00"), "tea")
        gateway.pay(intent.intent_id)
        gateway.drain(inbox)
        if i == 0:
            first_event = inbox.received[-1].event_id
    held = provider.create_intent("o-held", Decimal("2.00"), "tea")
    gateway.pay(held.intent_id)  # pending: never dropped
    assert len(inbox.applied) == 61  # the payout's event and sixty payments
    assert len(gateway.deliveries) == 10
    assert len(gateway._messages) <= 10 + 10 // 4 + 2
    with pytest.raises(UnknownPayment):
        gateway.redeliver(first_event, inbox)  # forgotten
    recent = gateway.deliveries[-1].event_id
    assert gateway.redeliver(recent, inbox).acknowledged
    # the payout's event, older than all of them, can still be sent again
    assert gateway.redeliver(payout_events[0], inbox).acknowledged
    assert payout.payout_id == "po-early"
    assert len(gateway.pending_event_ids) == 1
    gateway.drain(inbox)
    assert gateway.pending_event_ids == ()


def test_history_must_be_positive(clock: ManualClock) -> None:
    with pytest.raises(ProviderConfigError):
        SandboxGateway("t1", SECRET, clock=clock, history=0)
