"""A built-in payment provider that behaves like a real one, without a network.

Two halves, as in real life:

* :class:`SandboxGateway` is the provider's side: it keeps intents, refunds and payouts, lets a
  test or a demo "pay" an intent the way a customer would, and puts a signed notification in an
  outbox for every outcome.  The outbox delivers through a callable you pass in (a test calls
  the handler directly; the service can POST to itself), and on request misbehaves like real
  providers do: the same notification several times, late, out of order, and again after a
  failed delivery.  All of that is driven by a seeded :class:`random.Random`, so a failing run
  can be replayed exactly.
* :class:`SandboxProvider` is the merchant's side, the :class:`PaymentProvider` the service
  uses: it forwards requests to the gateway and verifies inbound notifications exactly as it
  would verify a real provider's (HMAC-SHA256, constant-time comparison, timestamp tolerance).

Wire format of a notification: the body is canonical JSON
``{"id", "tenant", "type", "created", "data": {...}}`` with amounts in integer fen; headers
``Sandbox-Timestamp`` (unix seconds), ``Sandbox-Nonce``, ``Sandbox-Signature`` (hex
HMAC-SHA256 with the tenant's secret over ``timestamp + "\\n" + nonce + "\\n" + body``) and
``Sandbox-Tenant`` (unauthenticated, only for routing to the right tenant's secret).  Every
delivery is signed afresh when it is sent, as real providers do; the body, and therefore the
parsed :class:`Notification`, is the same for every delivery of one event.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from tokenmall.payments import _wire
from tokenmall.payments.base import (
    CURRENCY,
    Clock,
    IntentStatus,
    Notification,
    NotificationKind,
    PaymentIntent,
    PaymentProvider,
    PayoutAnswer,
    PayoutRequest,
    PayoutStatus,
    RefundResult,
    RefundStatus,
    SignedDelivery,
    check_reference,
    system_clock,
    to_fen,
)
from tokenmall.payments.errors import (
    ForeignNotification,
    InvalidPaymentRequest,
    InvalidSignature,
    MalformedNotification,
    PaymentConflict,
    PaymentError,
    PaymentStateError,
    ProviderConfigError,
    UnknownPayment,
)
from tokenmall.payments.sandbox_store import IntentRecord, IntentStore, MemoryIntents

__all__ = [
    "DEFAULT_TOLERANCE",
    "PROVIDER",
    "SANDBOX_NONCE",
    "SANDBOX_SIGNATURE",
    "SANDBOX_TENANT",
    "SANDBOX_TIMESTAMP",
    "Deliver",
    "Delivery",
    "DeliveryChaos",
    "DeliveryReport",
    "SandboxGateway",
    "SandboxProvider",
    "sign_sandbox",
]

PROVIDER: Final = "sandbox"
SANDBOX_TIMESTAMP: Final = "Sandbox-Timestamp"
SANDBOX_NONCE: Final = "Sandbox-Nonce"
SANDBOX_SIGNATURE: Final = "Sandbox-Signature"
SANDBOX_TENANT: Final = "Sandbox-Tenant"
DEFAULT_TOLERANCE: Final = timedelta(minutes=5)
_MIN_SECRET_BYTES: Final = 16
_MAX_NONCE_LEN: Final = 64

Deliver = Callable[[Mapping[str, str], bytes], object]
"""Receives one notification (headers, body); what it returns is ignored.  Raising means "not
acknowledged": the outbox keeps the notification and tries again on a later round, like a
provider after a non-2xx answer."""


def sign_sandbox(secret: bytes, timestamp: str, nonce: str, body: bytes) -> str:
    """Hex HMAC-SHA256 over ``timestamp \\n nonce \\n body``.

    The timestamp and nonce are inside the MAC so neither can be changed to refresh or vary a
    captured request; the body is used as raw bytes because that is what was sent.
    """
    message = timestamp.encode("utf-8") + b"\n" + nonce.encode("utf-8") + b"\n" + body
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def _check_secret(secret: bytes) -> bytes:
    if not isinstance(secret, bytes) or len(secret) < _MIN_SECRET_BYTES:
        raise ProviderConfigError(f"a sandbox secret must be at least {_MIN_SECRET_BYTES} bytes")
    return secret


@dataclass(frozen=True, slots=True)
class DeliveryChaos:
    """How badly the outbox behaves.  Probabilities are per notification and per round.

    * ``duplicate_probability``: a notification is sent 1 to ``max_extra_copies`` extra times.
    * ``delay_probability``: on its first round a notification is held back for 1 to
      ``max_delay_rounds`` rounds, so later events overtake it; if the caller advances the
      clock between rounds it is also late in time.
    * ``shuffle``: each round's deliveries (duplicates included) are sent in random order.
    """

    duplicate_probability: float = 0.0
    max_extra_copies: int = 2
    delay_probability: float = 0.0
    max_delay_rounds: int = 3
    shuffle: bool = False

    def __post_init__(self) -> None:
        for name in ("duplicate_probability", "delay_probability"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], not {p}")
        if self.max_extra_copies < 1 or self.max_delay_rounds < 1:
            raise ValueError("max_extra_copies and max_delay_rounds must be at least 1")


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt to deliver one notification, as the outbox saw it."""

    event_id: str
    request: SignedDelivery
    attempt: int
    acknowledged: bool
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What one outbox round did, in the order it did it."""

    round: int
    deliveries: tuple[Delivery, ...]
    held: tuple[str, ...]
    dead: tuple[str, ...]

    @property
    def delivered_event_ids(self) -> tuple[str, ...]:
        """Event ids in delivery order, duplicates included."""
        return tuple(d.event_id for d in self.deliveries)


@dataclass(slots=True)
class _Message:
    event_id: str
    body: bytes
    attempts: int = 0
    hold_rounds: int = 0
    delay_decided: bool = False
    acknowledged: bool = False
    pinned: bool = False  # a payout's event: kept for redelivery however old


_CAS_TRIES = 8  # a compare-and-set lost this often in a row means something else is wrong


class SandboxGateway:
    """The provider's side of the sandbox for one tenant's merchant account.

    ``seed`` makes every id, nonce and chaos decision reproducible; without it the gateway
    draws from system entropy like a real provider (ids must not collide across restarts).
    ``intents``: where the intents are kept (:mod:`tokenmall.payments.sandbox_store`; default
    this process's memory).  The outbox, refunds' and payouts' idempotency records stay in
    memory: the service delivers a notification in the call that queued it.
    """

    def __init__(
        self,
        tenant_id: str,
        secret: bytes,
        *,
        clock: Clock = system_clock,
        seed: int | str | None = None,
        chaos: DeliveryChaos | None = None,
        max_attempts: int = 8,
        history: int = 10_000,
        intents: IntentStore | None = None,
    ) -> None:
        check_reference(tenant_id, what="tenant_id")
        if max_attempts < 1:
            raise ProviderConfigError("max_attempts must be at least 1")
        if history < 1:
            raise ProviderConfigError("history must be at least 1")
        self.tenant_id: Final = tenant_id
        self.secret: Final = _check_secret(secret)
        self.clock: Final = clock
        self.chaos = chaos or DeliveryChaos()
        self.max_attempts: Final = max_attempts
        # Reproducibility is the point of the sandbox, so ids, nonces and chaos come from
        # seedable generators (S311): an HMAC's strength rests on the secret, not the nonce.
        # Separate streams: changing the chaos settings (and so the number of deliveries, each
        # with a nonce) must not change the ids of a run.
        self._ids = random.Random(None if seed is None else f"{seed}/ids")  # noqa: S311
        self._nonces = random.Random(None if seed is None else f"{seed}/nonces")  # noqa: S311
        self._chaos_rng = random.Random(None if seed is None else f"{seed}/chaos")  # noqa: S311
        self._intents: IntentStore = MemoryIntents() if intents is None else intents
        self._refunds: dict[str, RefundResult] = {}
        self._payouts: dict[str, tuple[PayoutRequest, PayoutAnswer]] = {}
        self._blocked_accounts: set[str] = set()
        # Bounded, so a long-running server's sandbox does not grow without end: pending
        # messages and payouts' events are always kept; acknowledged payment events beyond the
        # newest ``history`` are forgotten (a redelivery of one is then UnknownPayment).
        self._history = history
        self._messages: dict[str, _Message] = {}
        self._payout_events: dict[str, list[str]] = {}
        self._pending: list[_Message] = []
        self._dead: list[str] = []
        self._round = 0
        self.deliveries: deque[Delivery] = deque(maxlen=history)
        """The newest ``history`` delivery attempts, for inspection and for replaying them."""

    # -- ids -------------------------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{self._ids.getrandbits(80):020x}"

    # -- the provider's API ----------------------------------------------------------------

    def create_intent(self, order_id: str, amount: Decimal, description: str) -> PaymentIntent:
        """Create, or return the existing, intent for ``order_id`` (one per order)."""
        check_reference(order_id, what="order_id")
        to_fen(amount)
        record = self._intents.of_order(order_id)
        if record is None:
            intent = PaymentIntent(
                provider=PROVIDER,
                intent_id=self._new_id("pi"),
                order_id=order_id,
                amount=amount,
                description=description,
                status=IntentStatus.REQUIRES_PAYMENT,
                created_at=self.clock(),
            )
            record = self._intents.add(IntentRecord(intent))
        if record.intent.amount != amount:
            raise PaymentConflict(
                f"order {order_id} already has an intent for {record.intent.amount}, not {amount}"
            )
        return record.intent

    def get_intent(self, intent_id: str) -> PaymentIntent:
        return self._record(intent_id).intent

    def knows_intent(self, intent_id: str) -> bool:
        return self._intents.get(intent_id) is not None

    def _record(self, intent_id: str) -> IntentRecord:
        record = self._intents.get(intent_id)
        if record is None:
            raise UnknownPayment(f"no sandbox intent {intent_id!r} for tenant {self.tenant_id}")
        return record

    def _settle(self, intent_id: str, status: IntentStatus) -> IntentRecord:
        """Move a waiting intent to ``status`` (a compare-and-set: of two processes paying
        it at once, one does; the other finds it paid)."""
        for _ in range(_CAS_TRIES):
            record = self._record(intent_id)
            if record.intent.status is not IntentStatus.REQUIRES_PAYMENT:
                verb = "pay" if status is IntentStatus.SUCCEEDED else "fail"
                raise PaymentStateError(
                    f"intent {intent_id} is {record.intent.status}, cannot {verb}"
                )
            paid = status is IntentStatus.SUCCEEDED
            new = replace(
                record,
                intent=replace(record.intent, status=status),
                transaction_id=self._new_id("tx") if paid else None,
                version=record.version + 1,
            )
            if self._intents.replace(record, new):
                return new
        raise PaymentError(f"intent {intent_id} kept changing: try again")

    def pay(self, intent_id: str) -> PaymentIntent:
        """The customer pays: the intent succeeds and a payment_succeeded event is queued."""
        record = self._settle(intent_id, IntentStatus.SUCCEEDED)
        self._emit(
            NotificationKind.PAYMENT_SUCCEEDED,
            self.clock(),
            intent_id=intent_id,
            order_id=record.intent.order_id,
            amount_fen=to_fen(record.intent.amount),
            transaction_id=record.transaction_id,
        )
        return record.intent

    def fail(self, intent_id: str) -> PaymentIntent:
        """The payment fails for good (card declined, closed): a payment_failed event."""
        record = self._settle(intent_id, IntentStatus.FAILED)
        self._emit(
            NotificationKind.PAYMENT_FAILED,
            self.clock(),
            intent_id=intent_id,
            order_id=record.intent.order_id,
            amount_fen=to_fen(record.intent.amount),
        )
        return record.intent

    def refund(self, intent_id: str, refund_id: str, amount: Decimal) -> RefundResult:
        """Refund part of a succeeded intent; idempotent per ``refund_id``.

        Refunds are accepted as PENDING and confirmed by a refund_succeeded notification, as
        with WeChat Pay, so the service is built for the asynchronous case from the start.
        """
        check_reference(refund_id, what="refund_id")
        to_fen(amount)
        for _ in range(_CAS_TRIES):
            record = self._record(intent_id)
            previous = record.refund(refund_id) or self._refunds.get(refund_id)
            if previous is not None:
                if previous.intent_id != intent_id or previous.amount != amount:
                    raise PaymentConflict(
                        f"refund {refund_id} was for {previous.amount} of {previous.intent_id}, "
                        f"not {amount} of {intent_id}"
                    )
                return previous
            if record.intent.status is not IntentStatus.SUCCEEDED:
                raise PaymentStateError(f"intent {intent_id} is {record.intent.status}, not paid")
            if record.refunded + amount > record.intent.amount:
                raise PaymentStateError(
                    f"refund of {amount} exceeds what is left of {intent_id}: "
                    f"{record.intent.amount - record.refunded}"
                )
            result = RefundResult(
                provider=PROVIDER,
                refund_id=refund_id,
                intent_id=intent_id,
                order_id=record.intent.order_id,
                amount=amount,
                status=RefundStatus.PENDING,
                provider_refund_id=self._new_id("rf"),
            )
            new = replace(record, refunds=(*record.refunds, result), version=record.version + 1)
            if self._intents.replace(record, new):
                break
        else:
            raise PaymentError(f"intent {intent_id} kept changing: try again")
        self._refunds[refund_id] = result
        self._emit(
            NotificationKind.REFUND_SUCCEEDED,
            self.clock(),
            intent_id=intent_id,
            order_id=record.intent.order_id,
            refund_id=refund_id,
            amount_fen=to_fen(amount),
            transaction_id=result.provider_refund_id,
        )
        return result

    def block_account(self, account: str) -> None:
        """Make payouts to ``account`` fail (a closed or unverified wallet)."""
        self._blocked_accounts.add(account)

    def payout(self, request: PayoutRequest) -> PayoutAnswer:
        """Accept a payout; idempotent per ``payout_id``.  The outcome arrives by notification."""
        previous = self._payouts.get(request.payout_id)
        if previous is not None:
            if previous[0] != request:
                raise PaymentConflict(
                    f"payout {request.payout_id} was {previous[0]}, not {request}"
                )
            return previous[1]
        result = PayoutAnswer(
            provider=PROVIDER,
            payout_id=request.payout_id,
            account=request.account,
            amount=request.amount,
            status=PayoutStatus.PENDING,
            provider_payout_id=self._new_id("po"),
        )
        self._payouts[request.payout_id] = (request, result)
        failed = request.account in self._blocked_accounts
        event_id = self._emit(
            NotificationKind.PAYOUT_FAILED if failed else NotificationKind.PAYOUT_SUCCEEDED,
            self.clock(),
            payout_id=request.payout_id,
            amount_fen=to_fen(request.amount),
            transaction_id=result.provider_payout_id,
        )
        self._messages[event_id].pinned = True
        self._payout_events.setdefault(request.payout_id, []).append(event_id)
        return result

    def payout_event_ids(self, payout_id: str) -> tuple[str, ...]:
        """The notifications a payout caused (to send them again on a resend)."""
        return tuple(self._payout_events.get(payout_id, ()))

    # -- the outbox ------------------------------------------------------------------------

    def _emit(self, kind: NotificationKind, occurred_at: datetime, **data: Any) -> str:
        event_id = self._new_id("evt")
        payload = {
            "id": event_id,
            "tenant": self.tenant_id,
            "type": kind.value,
            "created": occurred_at.isoformat(),
            "data": {"currency": CURRENCY, **data},
        }
        body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")
        message = _Message(event_id, body)
        self._messages[event_id] = message
        self._pending.append(message)
        if len(self._messages) > self._history + self._history // 4:
            self._forget_old()
        return event_id

    def _forget_old(self) -> None:
        """Drop the oldest acknowledged payment events until ``history`` remain (amortised:
        runs once per quarter of ``history`` new events)."""
        excess = len(self._messages) - self._history
        for event_id in [e for e, m in self._messages.items() if m.acknowledged and not m.pinned][
            :excess
        ]:
            del self._messages[event_id]

    @property
    def pending_event_ids(self) -> tuple[str, ...]:
        """Events not yet acknowledged (and not given up on), oldest first."""
        return tuple(m.event_id for m in self._pending)

    @property
    def dead_event_ids(self) -> tuple[str, ...]:
        """Events given up on after ``max_attempts`` failed deliveries."""
        return tuple(self._dead)

    def sign(self, body: bytes) -> SignedDelivery:
        """Sign ``body`` now, with a fresh nonce, as the provider does for every delivery."""
        timestamp = str(int(self.clock().timestamp()))
        nonce = f"{self._nonces.getrandbits(128):032x}"
        return SignedDelivery(
            headers={
                SANDBOX_TIMESTAMP: timestamp,
                SANDBOX_NONCE: nonce,
                SANDBOX_SIGNATURE: sign_sandbox(self.secret, timestamp, nonce, body),
                SANDBOX_TENANT: self.tenant_id,
                "Content-Type": "application/json",
            },
            body=body,
        )

    def _send(self, message: _Message, deliver: Deliver) -> Delivery:
        request = self.sign(message.body)
        message.attempts += 1
        try:
            deliver(request.headers, request.body)
        # Any failure of the receiver is what a non-2xx answer is to a real provider: keep the
        # notification and retry.  The error is recorded in the Delivery, not swallowed.
        except Exception as exc:  # noqa: BLE001
            delivery = Delivery(message.event_id, request, message.attempts, False, repr(exc))
        else:
            message.acknowledged = True
            delivery = Delivery(message.event_id, request, message.attempts, True)
        self.deliveries.append(delivery)
        return delivery

    def flush(self, deliver: Deliver) -> DeliveryReport:
        """One delivery round over every pending notification, applying :attr:`chaos`."""
        self._round += 1
        chaos, rng = self.chaos, self._chaos_rng
        due: list[_Message] = []
        held: list[str] = []
        for message in self._pending:
            if message.hold_rounds > 0:
                message.hold_rounds -= 1
                held.append(message.event_id)
                continue
            if not message.delay_decided:
                message.delay_decided = True
                if chaos.delay_probability and rng.random() < chaos.delay_probability:
                    message.hold_rounds = rng.randint(1, chaos.max_delay_rounds) - 1
                    held.append(message.event_id)
                    continue
            copies = 1
            if chaos.duplicate_probability and rng.random() < chaos.duplicate_probability:
                copies += rng.randint(1, chaos.max_extra_copies)
            due.extend([message] * copies)
        if chaos.shuffle:
            rng.shuffle(due)
        deliveries = tuple(self._send(message, deliver) for message in due)
        dead: list[str] = []
        still_pending: list[_Message] = []
        for message in self._pending:
            if message.acknowledged:
                continue
            if message.attempts >= self.max_attempts:
                dead.append(message.event_id)
            else:
                still_pending.append(message)
        self._pending = still_pending
        self._dead.extend(dead)
        return DeliveryReport(self._round, deliveries, tuple(held), tuple(dead))

    def drain(self, deliver: Deliver, *, max_rounds: int = 100) -> list[DeliveryReport]:
        """Flush until nothing is pending; refuses to loop forever on a receiver that fails."""
        reports: list[DeliveryReport] = []
        while self._pending:
            if len(reports) >= max_rounds:
                raise PaymentError(
                    f"outbox still has {len(self._pending)} notifications after {max_rounds} rounds"
                )
            reports.append(self.flush(deliver))
        return reports

    def redeliver(self, event_id: str, deliver: Deliver) -> Delivery:
        """Send an event again, even one already acknowledged: providers do that."""
        message = self._messages.get(event_id)
        if message is None:
            raise UnknownPayment(f"no sandbox event {event_id!r}")
        return self._send(message, deliver)


class SandboxProvider(PaymentProvider):
    """The merchant's side: a :class:`PaymentProvider` backed by a :class:`SandboxGateway`.

    ``secret`` defaults to the gateway's (both sides of a real integration know the shared
    secret); pass another to see what a misconfigured tenant sees.  ``clock`` defaults to the
    gateway's so a test moves both with one :class:`ManualClock`.
    """

    def __init__(
        self,
        gateway: SandboxGateway,
        *,
        secret: bytes | None = None,
        clock: Clock | None = None,
        tolerance: timedelta = DEFAULT_TOLERANCE,
    ) -> None:
        if tolerance <= timedelta(0):
            raise ProviderConfigError("tolerance must be positive")
        self._gateway = gateway
        self._secret = _check_secret(gateway.secret if secret is None else secret)
        self._clock = gateway.clock if clock is None else clock
        self._tolerance = tolerance

    @property
    def provider(self) -> str:
        return PROVIDER

    @property
    def tenant_id(self) -> str:
        return self._gateway.tenant_id

    def create_intent(self, order_id: str, amount: Decimal, description: str) -> PaymentIntent:
        return self._gateway.create_intent(order_id, amount, description)

    def refund(self, intent: PaymentIntent, refund_id: str, amount: Decimal) -> RefundResult:
        if intent.provider != PROVIDER:
            raise InvalidPaymentRequest(f"intent {intent.intent_id} belongs to {intent.provider}")
        return self._gateway.refund(intent.intent_id, refund_id, amount)

    def payout(self, payout_id: str, account: str, amount: Decimal) -> PayoutAnswer:
        return self._gateway.payout(PayoutRequest(payout_id, account, amount))

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> Notification:
        """Verify signature, then freshness, then content; see the module docstring.

        The signature is checked first so that a tampered timestamp is reported as what it
        is (InvalidSignature) and StaleNotification always means an authentic but old request.
        """
        timestamp = _wire.get_header(headers, SANDBOX_TIMESTAMP)
        nonce = _wire.get_header(headers, SANDBOX_NONCE)
        signature = _wire.get_header(headers, SANDBOX_SIGNATURE)
        expected = sign_sandbox(self._secret, timestamp, nonce, body)
        if not hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8")):
            raise InvalidSignature("sandbox signature does not match")
        if len(nonce) > _MAX_NONCE_LEN:
            raise MalformedNotification(f"{SANDBOX_NONCE} is longer than {_MAX_NONCE_LEN}")
        sent_at = _wire.parse_unix_timestamp(timestamp, what=SANDBOX_TIMESTAMP)
        _wire.check_fresh(sent_at, self._clock(), self._tolerance)
        return self._decode(body)

    def _decode(self, body: bytes) -> Notification:
        envelope = _wire.json_object(body, what="body")
        tenant = _wire.str_field(envelope, "tenant", what="body")
        if tenant != self.tenant_id:
            raise ForeignNotification(f"notification for tenant {tenant}, not {self.tenant_id}")
        raw_kind = _wire.str_field(envelope, "type", what="body")
        try:
            kind = NotificationKind(raw_kind)
        except ValueError:
            raise MalformedNotification(f"unknown sandbox event type {raw_kind!r}") from None
        data = _wire.object_field(envelope, "data", what="body")
        currency = _wire.str_field(data, "currency", what="data")
        if currency != CURRENCY:
            raise MalformedNotification(f"data.currency must be {CURRENCY}, not {currency!r}")
        try:
            return Notification(
                provider=PROVIDER,
                kind=kind,
                event_id=_wire.str_field(envelope, "id", what="body"),
                amount=_wire.fen_field(data, "amount_fen", what="data"),
                occurred_at=_wire.time_field(envelope, "created", what="body"),
                provider_transaction_id=_wire.optional_str_field(
                    data, "transaction_id", what="data"
                ),
                intent_id=_wire.optional_str_field(data, "intent_id", what="data"),
                order_id=_wire.optional_str_field(data, "order_id", what="data"),
                refund_id=_wire.optional_str_field(data, "refund_id", what="data"),
                payout_id=_wire.optional_str_field(data, "payout_id", what="data"),
            )
        except ValueError as exc:
            raise MalformedNotification(f"inconsistent sandbox notification: {exc}") from None
