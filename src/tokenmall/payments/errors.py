"""Every error the payment layer raises on purpose.

TokenmallError                      (tokenmall.errors)
└── PaymentError                    anything the payment layer refuses or cannot do
    ├── InvalidPaymentRequest       our own request is wrong; nothing reached the provider
    │   │                           (also an InvalidCommand: a 4xx, not a provider outage)
    │   └── InvalidAmount           not a positive Decimal of whole fen
    ├── PaymentConflict             an id was replayed with different content
    │                               (also an IdempotencyConflict)
    ├── PaymentStateError           not allowed in the payment's state: pay twice, refund an
    │                               unpaid intent, refund more than was paid
    ├── UnknownPayment              an intent id the provider does not know (also a NotFound)
    ├── ProviderConfigError         the provider is misconfigured (key length, no keys)
    ├── ProviderUnavailable         no trustworthy answer: network error, timeout, HTTP 5xx,
    │                               or a response whose signature does not verify; the same
    │                               request (same merchant id) is safe to send again
    ├── ProviderRefused             the provider answered 4xx: it will refuse the same
    │                               request again (``provider_code`` says why)
    └── NotificationRejected        an inbound notification the service must not act on;
        │                           answer non-2xx so a genuine sender retries
        ├── InvalidSignature        signature missing, undecodable or wrong: the headers or
        │   │                       body were not produced by the key holder
        │   └── UnknownKey          the key serial names no key we trust
        ├── StaleNotification       authentic, but its timestamp is outside the tolerance
        │                           (a replay, or a badly skewed clock)
        ├── DecryptionFailed        the encrypted resource does not open: wrong API v3 key or
        │                           tampered ciphertext, nonce or associated data
        ├── MalformedNotification   headers, JSON or fields missing or of the wrong type
        ├── ForeignNotification     authentic, but addressed to another merchant or tenant
        └── UnsupportedNotification authentic and well formed, but an event or state that
                                    does not become a Notification (log it for an operator)

The split matters to the caller: ``InvalidSignature`` and ``StaleNotification`` are attacks or
clock trouble, ``DecryptionFailed`` is usually a rotated key, ``UnknownKey`` a certificate to
refresh, and ``UnsupportedNotification`` needs a human, not a retry.
"""

from __future__ import annotations

from tokenmall.errors import IdempotencyConflict, InvalidCommand, NotFound, TokenmallError

__all__ = [
    "DecryptionFailed",
    "ForeignNotification",
    "InvalidAmount",
    "InvalidPaymentRequest",
    "InvalidSignature",
    "MalformedNotification",
    "NotificationRejected",
    "PaymentConflict",
    "PaymentError",
    "PaymentStateError",
    "ProviderConfigError",
    "ProviderRefused",
    "ProviderUnavailable",
    "StaleNotification",
    "UnknownKey",
    "UnknownPayment",
    "UnsupportedNotification",
]


class PaymentError(TokenmallError):
    """Base of the payment layer, so a service can map all of it in one ``except``."""

    code = "payment_error"


class InvalidPaymentRequest(PaymentError, InvalidCommand):
    """The caller asked for something no provider could accept (empty id, bad amount)."""

    code = "invalid_payment_request"


class InvalidAmount(InvalidPaymentRequest):
    """An amount that is not a positive Decimal of whole fen.

    Refused rather than rounded: rounding a payment amount silently charges or pays a
    different sum than the one the ledger recorded.
    """

    code = "invalid_amount"


class PaymentConflict(PaymentError, IdempotencyConflict):
    """An order, refund or payout id was reused with a different amount or target."""

    code = "payment_conflict"


class PaymentStateError(PaymentError):
    """The action is not allowed in the payment's current state."""

    code = "payment_state"


class UnknownPayment(PaymentError, NotFound):
    """The provider has no intent with this id."""

    code = "unknown_payment"


class ProviderConfigError(PaymentError):
    """The provider was configured with a key or setting it cannot work with."""

    code = "provider_config"


class ProviderUnavailable(PaymentError):
    """No answer we can act on: the call may or may not have taken effect at the provider.

    Raised for network errors, timeouts, HTTP 5xx and responses whose signature or timestamp
    does not verify (a forged or tampered answer is treated as no answer).  Every outbound call
    is idempotent on the id the merchant chose, so the caller retries with the *same* id and
    gets the provider's existing object back if the first attempt did take effect.
    """

    code = "provider_unavailable"


class ProviderRefused(PaymentError):
    """The provider answered, authentically, with a 4xx: this request will not succeed as is.

    ``provider_code`` is the provider's own error code (WeChat Pay's JSON ``code``, such as
    ``INVALID_REQUEST`` or ``SIGN_ERROR``) so callers and operators can tell a business refusal
    from a configuration problem; ``message`` is the provider's explanation.
    """

    code = "provider_refused"

    def __init__(self, message: str, *, provider_code: str) -> None:
        super().__init__(f"{provider_code}: {message}")
        self.provider_code = provider_code
        self.message = message


class NotificationRejected(PaymentError):
    """An inbound notification that must not change anything."""

    code = "notification_rejected"


class InvalidSignature(NotificationRejected):
    """The signature does not prove the message came, unmodified, from the key holder."""

    code = "invalid_signature"


class UnknownKey(InvalidSignature):
    """The message names a signing key (serial) we do not trust, so it cannot be verified."""

    code = "unknown_key"


class StaleNotification(NotificationRejected):
    """The signed timestamp is too far from our clock; refusing it bounds replays."""

    code = "stale_notification"


class DecryptionFailed(NotificationRejected):
    """The encrypted resource failed authenticated decryption."""

    code = "decryption_failed"


class MalformedNotification(NotificationRejected):
    """A header, the JSON or a field is missing or has the wrong type or value."""

    code = "malformed_notification"


class ForeignNotification(NotificationRejected):
    """A genuine notification for another merchant or tenant (misrouted or replayed)."""

    code = "foreign_notification"


class UnsupportedNotification(NotificationRejected):
    """A genuine, well-formed notification that tokenmall does not turn into an event."""

    code = "unsupported_notification"
