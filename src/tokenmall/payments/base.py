"""The provider-neutral payment vocabulary and the interface every provider implements.

The service talks to a provider only through :class:`PaymentProvider`; a provider talks back
only through signed notifications that :meth:`NotificationVerifier.parse_notification` turns
into a :class:`Notification`.  A notification, never a synchronous return value, is what moves
money in the ledger: providers confirm payments, refunds and payouts asynchronously, may
deliver the same confirmation several times, late, or out of order, and the service must
behave the same in every case.  So every :class:`Notification` carries an ``event_id`` that is
the same for every delivery of the same business event (the service keys a unique constraint on
it), and a notification's content never depends on when or how often it was delivered.

Amounts are :class:`~decimal.Decimal` CNY everywhere; :func:`to_fen` and :func:`from_fen` are the
only conversions to and from the integer fen that providers put on the wire, and they refuse,
rather than round, anything that is not a positive whole number of fen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Final, Protocol

from tokenmall.payments.errors import InvalidAmount, InvalidPaymentRequest

__all__ = [
    "CURRENCY",
    "MAX_FEN",
    "Clock",
    "IntentStatus",
    "ManualClock",
    "Notification",
    "NotificationKind",
    "NotificationVerifier",
    "PaymentIntent",
    "PaymentProvider",
    "PayoutAnswer",
    "PayoutRequest",
    "PayoutStatus",
    "RefundResult",
    "RefundStatus",
    "SignedDelivery",
    "check_reference",
    "from_fen",
    "system_clock",
    "to_fen",
]

CURRENCY: Final = "CNY"
"""The only currency tokenmall settles in (docs/RULES.md section 1)."""

MAX_FEN: Final = 2**63 - 1
"""Largest amount in fen: what a signed 64-bit column holds; anything above is an error."""

_MAX_REFERENCE_LEN: Final = 64

Clock = Callable[[], datetime]
"""Returns the current time as an aware datetime; injected so tests control time."""


def system_clock() -> datetime:
    """The real clock, in UTC."""
    return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to: deterministic tests and scenario runs."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start

    def __call__(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move forward (never back: real clocks used for freshness do not run backwards)."""
        if delta < timedelta(0):
            raise ValueError("a ManualClock only moves forward")
        self._now += delta
        return self._now


def to_fen(amount: Decimal) -> int:
    """The integer fen a provider puts on the wire for ``amount`` CNY.

    This is the one place an amount leaves Decimal.  It is exact for any size of Decimal and
    refuses, rather than rounds, sub-fen amounts (``Decimal("1.005")``), zero, negatives,
    non-finite values, anything that is not a Decimal (a float has already lost the amount),
    and amounts above :data:`MAX_FEN`.  Trailing zeros are fine: ``Decimal("1.100")`` is 110.
    """
    if not isinstance(amount, Decimal):
        raise InvalidAmount(f"amount must be a Decimal, not {type(amount).__name__}")
    if not amount.is_finite():
        raise InvalidAmount(f"amount must be finite, not {amount}")
    if amount <= 0:
        raise InvalidAmount(f"amount must be positive, not {amount}")
    if amount > Decimal(MAX_FEN).scaleb(-2):
        raise InvalidAmount(f"amount {amount} is larger than any provider accepts")
    _, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)  # finite Decimals have an int exponent
    coefficient = int("".join(map(str, digits)))
    shift = exponent + 2
    if shift >= 0:
        return coefficient * int(10**shift)
    fen, rest = divmod(coefficient, int(10**-shift))
    if rest:
        raise InvalidAmount(f"amount {amount} CNY is not a whole number of fen")
    return fen


def from_fen(fen: int) -> Decimal:
    """The Decimal CNY for an integer fen from the wire, always with two places (``1.10``).

    Refuses bool (JSON ``true`` is an int in Python), zero, negatives and amounts above
    :data:`MAX_FEN`, so a decoded amount obeys the same rules as one we send.
    """
    if isinstance(fen, bool) or not isinstance(fen, int):
        raise InvalidAmount(f"fen must be an int, not {type(fen).__name__}")
    if fen <= 0 or fen > MAX_FEN:
        raise InvalidAmount(f"fen must be in 1..{MAX_FEN}, not {fen}")
    return Decimal(fen).scaleb(-2)


def check_reference(value: str, *, what: str) -> str:
    """Validate an id the merchant chooses (order, refund or payout id).

    Providers reject long ids or ids with spaces or control characters only after a network
    round trip, or worse, truncate them; refusing them here keeps the id we store identical to
    the id the provider echoes back.
    """
    if not isinstance(value, str) or not value:
        raise InvalidPaymentRequest(f"{what} must be a non-empty string")
    if len(value) > _MAX_REFERENCE_LEN:
        raise InvalidPaymentRequest(f"{what} is longer than {_MAX_REFERENCE_LEN} characters")
    if not value.isascii() or not value.isprintable() or " " in value:
        raise InvalidPaymentRequest(f"{what} must be printable ASCII without spaces: {value!r}")
    return value


def _check_aware(moment: datetime, what: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be an aware datetime")


class IntentStatus(StrEnum):
    """Where a payment intent is, as far as the provider has told us."""

    REQUIRES_PAYMENT = "requires_payment"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class RefundStatus(StrEnum):
    """A refund is accepted first (PENDING) and confirmed later by a notification."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class PayoutStatus(StrEnum):
    """A payout is accepted first (PENDING) and confirmed later by a notification."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class NotificationKind(StrEnum):
    """What a verified notification says happened; the service has one handler per kind."""

    PAYMENT_SUCCEEDED = "payment_succeeded"
    PAYMENT_FAILED = "payment_failed"
    REFUND_SUCCEEDED = "refund_succeeded"
    REFUND_FAILED = "refund_failed"
    PAYOUT_SUCCEEDED = "payout_succeeded"
    PAYOUT_FAILED = "payout_failed"

    @property
    def is_payment(self) -> bool:
        return self in (NotificationKind.PAYMENT_SUCCEEDED, NotificationKind.PAYMENT_FAILED)

    @property
    def is_refund(self) -> bool:
        return self in (NotificationKind.REFUND_SUCCEEDED, NotificationKind.REFUND_FAILED)

    @property
    def is_payout(self) -> bool:
        return self in (NotificationKind.PAYOUT_SUCCEEDED, NotificationKind.PAYOUT_FAILED)


@dataclass(frozen=True, slots=True)
class PaymentIntent:
    """A request to collect ``amount`` for one merchant order (out_trade_no) at one provider.

    Immutable: a status change is a new value, so a stale copy can never be mistaken for the
    current state.  ``order_id`` is unique per provider account; asking again for the same
    order returns the same intent, which makes "create" safe to retry.
    """

    provider: str
    intent_id: str
    order_id: str
    amount: Decimal
    description: str
    status: IntentStatus
    created_at: datetime
    currency: str = CURRENCY

    def __post_init__(self) -> None:
        check_reference(self.order_id, what="order_id")
        to_fen(self.amount)
        if self.currency != CURRENCY:
            raise InvalidPaymentRequest(f"currency must be {CURRENCY}, not {self.currency!r}")
        _check_aware(self.created_at, "created_at")


@dataclass(frozen=True, slots=True)
class RefundResult:
    """What a provider answered to a refund request; the notification confirms it later."""

    provider: str
    refund_id: str
    intent_id: str
    order_id: str
    amount: Decimal
    status: RefundStatus
    provider_refund_id: str

    def __post_init__(self) -> None:
        check_reference(self.refund_id, what="refund_id")
        to_fen(self.amount)


@dataclass(frozen=True, slots=True)
class PayoutRequest:
    """Money to send from the tenant's provider account to a person (a withdrawal).

    ``payout_id`` is chosen by tokenmall (e.g. the withdrawal's id) so that a retried request
    after a timeout cannot pay twice: the provider treats the second one as the same payout.
    ``account`` is the provider's payee handle (an openid for WeChat).
    """

    payout_id: str
    account: str
    amount: Decimal
    description: str = ""

    def __post_init__(self) -> None:
        check_reference(self.payout_id, what="payout_id")
        if not self.account or not self.account.strip():
            raise InvalidPaymentRequest("account must not be empty")
        to_fen(self.amount)


@dataclass(frozen=True, slots=True)
class PayoutAnswer:
    """What a provider answered to a payout request; the notification confirms it later.

    Not :class:`tokenmall.domain.economy.PayoutResult`, the ledger command that records the
    outcome once it is known.

    ``confirm_package`` is set when the payee must still accept the money themselves: WeChat
    Pay's current transfer flow (商家转账, user-confirmation mode) answers ``WAIT_USER_CONFIRM``
    with a ``package_info`` that the mini-program passes to ``wx.requestMerchantTransfer``.
    It is None for providers and states that need no such step.
    """

    provider: str
    payout_id: str
    account: str
    amount: Decimal
    status: PayoutStatus
    provider_payout_id: str
    confirm_package: str | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    """A verified, provider-neutral event: the only input that moves money in the ledger.

    Two deliveries of the same business event compare equal (timestamps, nonces and
    signatures of the delivery are deliberately not part of it), so ``event_id`` is a safe
    idempotency key.  ``provider_transaction_id`` is the provider's id of this movement of
    money (transaction, refund or transfer); it is None only for a failed payment the provider
    never gave one.  ``intent_id``/``order_id`` are set for payments and refunds,
    ``refund_id`` for refunds and ``payout_id`` for payouts.  The service must still compare
    ``amount`` with what it expects: a known event with a different amount is an error.
    """

    provider: str
    kind: NotificationKind
    event_id: str
    amount: Decimal
    occurred_at: datetime
    provider_transaction_id: str | None = None
    intent_id: str | None = None
    order_id: str | None = None
    refund_id: str | None = None
    payout_id: str | None = None
    currency: str = CURRENCY

    def __post_init__(self) -> None:
        if not self.event_id:
            raise ValueError("a notification needs an event_id")
        to_fen(self.amount)
        _check_aware(self.occurred_at, "occurred_at")
        if self.currency != CURRENCY:
            raise ValueError(f"currency must be {CURRENCY}, not {self.currency!r}")
        if (self.kind.is_payment or self.kind.is_refund) and not (self.order_id and self.intent_id):
            raise ValueError(f"a {self.kind} notification needs order_id and intent_id")
        if self.kind.is_refund and not self.refund_id:
            raise ValueError(f"a {self.kind} notification needs refund_id")
        if self.kind.is_payout and not self.payout_id:
            raise ValueError(f"a {self.kind} notification needs payout_id")


@dataclass(frozen=True, slots=True)
class SignedDelivery:
    """One HTTP request a provider would send: the headers and the exact body bytes.

    The body is kept as bytes because signatures cover the bytes as sent; re-serialising
    parsed JSON would break them.
    """

    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


class NotificationVerifier(Protocol):
    """Turns an inbound provider request into a verified :class:`Notification`.

    Implementations check authenticity (signature, key), freshness (timestamp) and content
    before returning, and raise a subclass of
    :class:`~tokenmall.payments.errors.NotificationRejected` otherwise.  They keep no state
    about what they have seen: deduplication belongs to the service's database, where it can
    be a unique constraint inside the transaction that applies the event.
    """

    @property
    def provider(self) -> str:
        """Stable provider name stored with every intent and notification."""
        ...

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> Notification:
        """Verify and decode one delivery; header names are matched case-insensitively."""
        ...


class PaymentProvider(NotificationVerifier, Protocol):
    """Everything the service asks of a payment provider for one tenant's account.

    Every call is idempotent on the id the service chooses (order, refund or payout id), so a
    call that timed out can be repeated.  Results are acknowledgements; the money has moved
    only when the matching notification arrives.
    """

    def create_intent(self, order_id: str, amount: Decimal, description: str) -> PaymentIntent:
        """Ask the provider to collect ``amount`` for ``order_id``."""
        ...

    def refund(self, intent: PaymentIntent, refund_id: str, amount: Decimal) -> RefundResult:
        """Return part or all of a succeeded payment."""
        ...

    def payout(self, payout_id: str, account: str, amount: Decimal) -> PayoutAnswer:
        """Send money from the tenant's account to ``account``."""
        ...
