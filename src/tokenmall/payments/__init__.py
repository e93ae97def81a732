"""Payment providers: one typed interface, a sandbox that behaves like a real provider, and
WeChat Pay v3: notification verification and the signed outbound calls (prepay, refund,
transfer).

The service depends on :class:`PaymentProvider` and :class:`Notification` only; which provider
a tenant uses is configuration.  See :mod:`tokenmall.payments.base` for the rules every
provider follows (Decimal amounts, asynchronous confirmation, stable event ids).
"""

from __future__ import annotations

from tokenmall.payments.base import (
    CURRENCY,
    Clock,
    IntentStatus,
    ManualClock,
    Notification,
    NotificationKind,
    NotificationVerifier,
    PaymentIntent,
    PaymentProvider,
    PayoutAnswer,
    PayoutRequest,
    PayoutStatus,
    RefundResult,
    RefundStatus,
    SignedDelivery,
    from_fen,
    system_clock,
    to_fen,
)
from tokenmall.payments.errors import (
    DecryptionFailed,
    ForeignNotification,
    InvalidAmount,
    InvalidPaymentRequest,
    InvalidSignature,
    MalformedNotification,
    NotificationRejected,
    PaymentConflict,
    PaymentError,
    PaymentStateError,
    ProviderConfigError,
    ProviderRefused,
    ProviderUnavailable,
    StaleNotification,
    UnknownKey,
    UnknownPayment,
    UnsupportedNotification,
)
from tokenmall.payments.sandbox import (
    DeliveryChaos,
    DeliveryReport,
    SandboxGateway,
    SandboxProvider,
)
from tokenmall.payments.wechat import WeChatPayNotifications
from tokenmall.payments.wechat_api import WeChatPayApi

__all__ = [
    "CURRENCY",
    "Clock",
    "DecryptionFailed",
    "DeliveryChaos",
    "DeliveryReport",
    "ForeignNotification",
    "IntentStatus",
    "InvalidAmount",
    "InvalidPaymentRequest",
    "InvalidSignature",
    "MalformedNotification",
    "ManualClock",
    "Notification",
    "NotificationKind",
    "NotificationRejected",
    "NotificationVerifier",
    "PaymentConflict",
    "PaymentError",
    "PaymentIntent",
    "PaymentProvider",
    "PaymentStateError",
    "PayoutAnswer",
    "PayoutRequest",
    "PayoutStatus",
    "ProviderConfigError",
    "ProviderRefused",
    "ProviderUnavailable",
    "RefundResult",
    "RefundStatus",
    "SandboxGateway",
    "SandboxProvider",
    "SignedDelivery",
    "StaleNotification",
    "UnknownKey",
    "UnknownPayment",
    "UnsupportedNotification",
    "WeChatPayApi",
    "WeChatPayNotifications",
    "from_fen",
    "system_clock",
    "to_fen",
]
