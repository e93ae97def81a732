"""The provider-neutral layer: the fen boundary, value objects, errors and public surface."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tokenmall.payments as payments
from tokenmall.errors import IdempotencyConflict, InvalidCommand, NotFound, TokenmallError
from tokenmall.payments.base import (
    MAX_FEN,
    IntentStatus,
    ManualClock,
    Notification,
    NotificationKind,
    PaymentIntent,
    PayoutRequest,
    check_reference,
    from_fen,
    to_fen,
)
from tokenmall.payments.errors import (
    DecryptionFailed,
    InvalidAmount,
    InvalidPaymentRequest,
    InvalidSignature,
    NotificationRejected,
    PaymentConflict,
    PaymentError,
    StaleNotification,
    UnknownKey,
    UnknownPayment,
)

NOW = datetime(2024, 1, 1, tzinfo=UTC)
NAIVE = datetime(2024, 1, 1)  # noqa: DTZ001  # the mistake these tests expect to be refused


@pytest.mark.parametrize(
    ("amount", "fen"),
    [
        ("0.01", 1),
        ("1", 100),
        ("1.1", 110),
        ("1.10", 110),
        ("1.100", 110),
        ("88.88", 8888),
        ("1E+2", 10000),
        ("92233720368547758.07", MAX_FEN),
    ],
)
def test_to_fen_is_exact(amount: str, fen: int) -> None:
    assert to_fen(Decimal(amount)) == fen


@pytest.mark.parametrize(
    "amount",
    [
        Decimal("0.001"),
        Decimal("1.005"),
        Decimal("0.009"),
        Decimal("100.0000001"),
        Decimal(0),
        Decimal("-1"),
        Decimal("NaN"),
        Decimal("Infinity"),
        Decimal("92233720368547758.08"),
        Decimal("1E+100000"),
        1.5,
        100,
        "1.00",
    ],
)
def test_to_fen_refuses_what_it_cannot_send_exactly(amount: object) -> None:
    with pytest.raises(InvalidAmount):
        to_fen(amount)  # type: ignore[arg-type]


@pytest.mark.parametrize("fen", [0, -1, True, 1.0, "100", MAX_FEN + 1])
def test_from_fen_refuses_what_no_provider_sends(fen: object) -> None:
    with pytest.raises(InvalidAmount):
        from_fen(fen)  # type: ignore[arg-type]


def test_from_fen_always_has_two_places() -> None:
    assert str(from_fen(110)) == "1.10"
    assert str(from_fen(1)) == "0.01"


@given(st.integers(min_value=1, max_value=MAX_FEN))
def test_fen_round_trip(fen: int) -> None:
    assert to_fen(from_fen(fen)) == fen


@given(st.decimals(min_value=Decimal("0.001"), max_value=Decimal("1000000"), places=3))
def test_sub_fen_is_refused_never_rounded(amount: Decimal) -> None:
    if amount == amount.quantize(Decimal("0.01")):
        assert from_fen(to_fen(amount)) == amount
    else:
        with pytest.raises(InvalidAmount):
            to_fen(amount)


def test_invalid_amount_is_a_4xx_payment_error() -> None:
    assert issubclass(InvalidAmount, InvalidPaymentRequest)
    assert issubclass(InvalidAmount, InvalidCommand)
    assert issubclass(InvalidAmount, PaymentError)
    assert issubclass(PaymentError, TokenmallError)


def test_exception_tree() -> None:
    assert issubclass(UnknownKey, InvalidSignature)
    for exc in (InvalidSignature, StaleNotification, DecryptionFailed):
        assert issubclass(exc, NotificationRejected)
    assert issubclass(PaymentConflict, IdempotencyConflict)
    assert issubclass(UnknownPayment, NotFound)


@pytest.mark.parametrize("ref", ["", " ", "a b", "x" * 65, "订单1", "a\nb", "a\x00"])
def test_bad_references_are_refused(ref: str) -> None:
    with pytest.raises(InvalidPaymentRequest):
        check_reference(ref, what="order_id")


def test_payment_intent_validates_amount_and_time() -> None:
    with pytest.raises(InvalidAmount):
        PaymentIntent("sandbox", "pi", "o1", Decimal("1.001"), "d", IntentStatus.SUCCEEDED, NOW)
    with pytest.raises(ValueError, match="aware"):
        PaymentIntent("sandbox", "pi", "o1", Decimal(1), "d", IntentStatus.SUCCEEDED, NAIVE)
    with pytest.raises(InvalidPaymentRequest):
        PaymentIntent(
            "sandbox", "pi", "o1", Decimal(1), "d", IntentStatus.SUCCEEDED, NOW, currency="USD"
        )


def test_payout_request_validates() -> None:
    with pytest.raises(InvalidAmount):
        PayoutRequest("po1", "acct", Decimal("0.001"))
    with pytest.raises(InvalidPaymentRequest):
        PayoutRequest("po1", " ", Decimal("1"))


def test_notification_requires_the_ids_its_kind_needs() -> None:
    with pytest.raises(ValueError, match="refund_id"):
        Notification(
            "x",
            NotificationKind.REFUND_SUCCEEDED,
            "e",
            Decimal(1),
            NOW,
            intent_id="i",
            order_id="o",
        )
    with pytest.raises(ValueError, match="payout_id"):
        Notification("x", NotificationKind.PAYOUT_SUCCEEDED, "e", Decimal(1), NOW)
    with pytest.raises(ValueError, match="order_id"):
        Notification("x", NotificationKind.PAYMENT_SUCCEEDED, "e", Decimal(1), NOW)
    with pytest.raises(InvalidAmount):
        Notification(
            "x", NotificationKind.PAYOUT_SUCCEEDED, "e", Decimal("0.001"), NOW, payout_id="p"
        )


def test_manual_clock_only_moves_forward() -> None:
    clock = ManualClock(NOW)
    assert clock.advance(timedelta(seconds=5)) == NOW + timedelta(seconds=5)
    assert clock() == NOW + timedelta(seconds=5)
    with pytest.raises(ValueError, match="forward"):
        clock.advance(timedelta(seconds=-1))
    with pytest.raises(ValueError, match="aware"):
        ManualClock(NAIVE)


def test_public_api_is_what_it_should_be() -> None:
    exported = set(payments.__all__)
    assert exported == {name for name in dir(payments) if not name.startswith("_")} - {
        "annotations",
        "base",
        "errors",
        "sandbox",
        "sandbox_store",
        "wechat",
        "wechat_api",
    }
    assert {
        "PaymentProvider",
        "NotificationVerifier",
        "Notification",
        "SandboxProvider",
        "WeChatPayNotifications",
        "to_fen",
        "from_fen",
        "PaymentError",
        "ProviderRefused",
        "ProviderUnavailable",
        "WeChatPayApi",
    } <= exported
