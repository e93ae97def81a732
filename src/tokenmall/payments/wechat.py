"""WeChat Pay API v3 notifications (微信支付 APIv3 回调通知): verify, decrypt, decode.

A notification is an HTTP POST whose body is a JSON envelope ::

    {"id": "...", "create_time": "...", "event_type": "TRANSACTION.SUCCESS",
     "resource_type": "encrypt-resource", "summary": "...",
     "resource": {"algorithm": "AEAD_AES_256_GCM", "original_type": "transaction",
                  "ciphertext": "<base64>", "nonce": "<12 chars>", "associated_data": "..."}}

and whose headers are ``Wechatpay-Timestamp``, ``Wechatpay-Nonce``, ``Wechatpay-Serial`` and
``Wechatpay-Signature``.  It is trusted in three steps, in this order:

1. Authenticity: the platform's RSA-SHA256 (PKCS#1 v1.5) signature over
   ``"{timestamp}\\n{nonce}\\n{body}\\n"``, checked with the platform certificate or platform
   public key that ``Wechatpay-Serial`` names.  WeChat also sends probe requests with a
   deliberately wrong signature (``WECHATPAY/SIGNTEST/...``); they fail here, as they must.
2. Freshness: the signed timestamp within a tolerance of our clock, which bounds replays.
3. Content: ``resource.ciphertext`` opened with AES-256-GCM under the merchant's APIv3 key
   (32 bytes) with ``resource.nonce`` and ``resource.associated_data``, and the transaction,
   refund or transfer JSON inside decoded strictly.

Three families of events become a :class:`~tokenmall.payments.base.Notification`:
``TRANSACTION.*`` (resource ``original_type`` "transaction"), ``REFUND.*`` ("refund") and
``MCHTRANSFER.BILL.FINISHED`` ("mch_payment"; the final state of a 商家转账 transfer bill).

This module is the inbound half.  The outbound half (JSAPI prepay, refunds, transfers: signed
HTTPS calls to WeChat whose signed answers are checked with :func:`verify_signature`) is
:class:`tokenmall.payments.wechat_api.WeChatPayApi`.

:func:`build_notification` does the platform's side (sign and encrypt) so tests and harnesses
can produce real notifications without WeChat.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature as _BadRsaSignature
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tokenmall.payments import _wire
from tokenmall.payments.base import (
    CURRENCY,
    Clock,
    Notification,
    NotificationKind,
    NotificationVerifier,
    SignedDelivery,
    system_clock,
    to_fen,
)
from tokenmall.payments.errors import (
    DecryptionFailed,
    ForeignNotification,
    InvalidSignature,
    MalformedNotification,
    ProviderConfigError,
    UnknownKey,
    UnsupportedNotification,
)

__all__ = [
    "ALGORITHM",
    "DEFAULT_TOLERANCE",
    "PROVIDER",
    "PUBLIC_KEY_ID_PREFIX",
    "SIGNATURE_TYPE",
    "WECHATPAY_NONCE",
    "WECHATPAY_SERIAL",
    "WECHATPAY_SIGNATURE",
    "WECHATPAY_SIGNATURE_TYPE",
    "WECHATPAY_TIMESTAMP",
    "WeChatPayNotifications",
    "build_notification",
    "decrypt_resource",
    "encrypt_resource",
    "load_merchant_key",
    "load_platform_key",
    "refund_resource",
    "sign_message",
    "signed_message",
    "transaction_resource",
    "transfer_resource",
    "verify_signature",
    "wechat_time",
]

PROVIDER: Final = "wechat"
WECHATPAY_TIMESTAMP: Final = "Wechatpay-Timestamp"
WECHATPAY_NONCE: Final = "Wechatpay-Nonce"
WECHATPAY_SIGNATURE: Final = "Wechatpay-Signature"
WECHATPAY_SERIAL: Final = "Wechatpay-Serial"
# the serial of a WeChat Pay public key (public-key mode); platform certificates have hex ones
PUBLIC_KEY_ID_PREFIX: Final = "PUB_KEY_ID_"
WECHATPAY_SIGNATURE_TYPE: Final = "Wechatpay-Signature-Type"
SIGNATURE_TYPE: Final = "WECHATPAY2-SHA256-RSA2048"
ALGORITHM: Final = "AEAD_AES_256_GCM"
DEFAULT_TOLERANCE: Final = timedelta(minutes=5)

_API_V3_KEY_BYTES: Final = 32
_MIN_RSA_BITS: Final = 2048
_GCM_NONCE_CHARS: Final = 12
# WeChat writes times in Beijing time; only the builder uses this, parsing normalises to UTC.
_BEIJING: Final = timezone(timedelta(hours=8))

# trade_state -> what it means for the order.  REFUND ("转入退款") is a transaction that was
# paid and later (partly) refunded: the payment did happen, and the refund has its own
# notification, so it maps to a payment that succeeded (same event id as the SUCCESS one).
_TRADE_STATES: Final[Mapping[str, NotificationKind]] = {
    "SUCCESS": NotificationKind.PAYMENT_SUCCEEDED,
    "REFUND": NotificationKind.PAYMENT_SUCCEEDED,
    "CLOSED": NotificationKind.PAYMENT_FAILED,
    "REVOKED": NotificationKind.PAYMENT_FAILED,
    "PAYERROR": NotificationKind.PAYMENT_FAILED,
}
# Not final: nothing happened yet, so there is nothing to record.
_PENDING_TRADE_STATES: Final = frozenset({"NOTPAY", "USERPAYING"})

_REFUND_STATES: Final[Mapping[str, NotificationKind]] = {
    "SUCCESS": NotificationKind.REFUND_SUCCEEDED,
    "CLOSED": NotificationKind.REFUND_FAILED,
    "ABNORMAL": NotificationKind.REFUND_FAILED,
}
_PENDING_REFUND_STATES: Final = frozenset({"PROCESSING"})

# 商家转账 bill states.  The notification is sent for final states only; CANCELLED is a bill
# the merchant revoked (or the payee never confirmed), so no money reached the payee.
_TRANSFER_STATES: Final[Mapping[str, NotificationKind]] = {
    "SUCCESS": NotificationKind.PAYOUT_SUCCEEDED,
    "FAIL": NotificationKind.PAYOUT_FAILED,
    "CANCELLED": NotificationKind.PAYOUT_FAILED,
}
_PENDING_TRANSFER_STATES: Final = frozenset(
    {"ACCEPTED", "PROCESSING", "WAIT_USER_CONFIRM", "TRANSFERING", "CANCELING"}
)
TRANSFER_EVENT: Final = "MCHTRANSFER.BILL.FINISHED"
# original_type (and associated_data) of a transfer-bill notification's resource, as seen in
# captured real deliveries; WeChat's page for this event was not available to confirm it.
_TRANSFER_ORIGINAL_TYPE: Final = "mch_payment"

_SUMMARIES: Final[Mapping[str, str]] = {
    "TRANSACTION.SUCCESS": "支付成功",
    "REFUND.SUCCESS": "退款成功",
    "REFUND.ABNORMAL": "退款异常",
    "REFUND.CLOSED": "退款关闭",
    TRANSFER_EVENT: "商家转账单据终态通知",
}


def _api_v3_key(key: bytes | str) -> bytes:
    """The APIv3 key as bytes; merchants set it as a 32-character string in the portal."""
    raw = key.encode("utf-8") if isinstance(key, str) else key
    if not isinstance(raw, bytes) or len(raw) != _API_V3_KEY_BYTES:
        raise ProviderConfigError(f"the WeChat Pay APIv3 key must be {_API_V3_KEY_BYTES} bytes")
    return raw


def _check_rsa(key: object, what: str) -> None:
    if not isinstance(key, RSAPublicKey | RSAPrivateKey):
        raise ProviderConfigError(f"{what} must be an RSA key, not {type(key).__name__}")
    if key.key_size < _MIN_RSA_BITS:
        raise ProviderConfigError(f"{what} has {key.key_size} bits; WeChat Pay uses 2048")


def load_platform_key(pem: bytes) -> RSAPublicKey:
    """The RSA public key in a platform certificate (平台证书) or platform public key (公钥) PEM.

    WeChat Pay moved merchants from downloadable platform certificates to a fixed platform
    public key (serial ``PUB_KEY_ID_...``); both verify the same way, so both are accepted.
    """
    try:
        if b"BEGIN CERTIFICATE" in pem:
            key: object = x509.load_pem_x509_certificate(pem).public_key()
        else:
            key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise ProviderConfigError(f"not a PEM certificate or public key: {exc}") from None
    _check_rsa(key, "the platform key")
    assert isinstance(key, RSAPublicKey)
    return key


def load_merchant_key(pem: bytes) -> RSAPrivateKey:
    """The merchant's API private key (apiclient_key.pem), unencrypted PEM: RSA, 2048 bits up."""
    try:
        key: object = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise ProviderConfigError(
            "the merchant API key is not an unencrypted PEM private key"
        ) from None
    _check_rsa(key, "the merchant API key")
    if not isinstance(key, RSAPrivateKey):
        raise ProviderConfigError("the merchant API key must be an RSA private key")
    return key


def signed_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """What the platform signs in a notification or an API response.

    Built from the raw body bytes: decoding and re-encoding could change them.
    """
    return timestamp.encode("utf-8") + b"\n" + nonce.encode("utf-8") + b"\n" + body + b"\n"


_signed_message = signed_message  # the name this module used before it was public


def sign_message(private_key: RSAPrivateKey, timestamp: str, nonce: str, body: bytes) -> str:
    """Base64 SHA256-with-RSA signature, as the platform computes it for a notification."""
    signature = private_key.sign(
        signed_message(timestamp, nonce, body), padding.PKCS1v15(), hashes.SHA256()
    )
    return base64.b64encode(signature).decode("ascii")


def verify_signature(
    headers: Mapping[str, str],
    body: bytes,
    *,
    platform_keys: Mapping[str, RSAPublicKey],
    now: datetime,
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> None:
    """Check the platform's ``Wechatpay-*`` signature on a notification or an API response.

    WeChat signs its API responses exactly as it signs notifications, so one check serves the
    inbound verifier and the outbound client.  Signature first, timestamp second: a bad
    timestamp on a message we cannot authenticate tells us nothing.  Raises
    :class:`InvalidSignature`, :class:`UnknownKey`, :class:`StaleNotification` or
    :class:`MalformedNotification`.
    """
    timestamp = _wire.get_header(headers, WECHATPAY_TIMESTAMP)
    nonce = _wire.get_header(headers, WECHATPAY_NONCE)
    serial = _wire.get_header(headers, WECHATPAY_SERIAL)
    encoded = _wire.get_header(headers, WECHATPAY_SIGNATURE)
    kind = _wire.find_header(headers, WECHATPAY_SIGNATURE_TYPE)
    if kind is not None and kind != SIGNATURE_TYPE:
        raise InvalidSignature(f"unsupported {WECHATPAY_SIGNATURE_TYPE} {kind!r}")
    key = platform_keys.get(serial)
    if key is None:
        raise UnknownKey(
            f"no WeChat Pay platform key with serial {serial!r}; refresh the platform "
            "certificates if WeChat rotated them"
        )
    try:
        signature = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise InvalidSignature(f"{WECHATPAY_SIGNATURE} is not base64") from None
    try:
        key.verify(
            signature, signed_message(timestamp, nonce, body), padding.PKCS1v15(), hashes.SHA256()
        )
    except _BadRsaSignature:
        raise InvalidSignature("WeChat Pay signature does not match") from None
    sent_at = _wire.parse_unix_timestamp(timestamp, what=WECHATPAY_TIMESTAMP)
    _wire.check_fresh(sent_at, now, tolerance)


def encrypt_resource(
    api_v3_key: bytes | str, plaintext: bytes, *, nonce: str, associated_data: str
) -> str:
    """Base64 of AES-256-GCM ciphertext followed by the 16-byte tag (WeChat's layout)."""
    sealed = AESGCM(_api_v3_key(api_v3_key)).encrypt(
        nonce.encode("utf-8"), plaintext, associated_data.encode("utf-8")
    )
    return base64.b64encode(sealed).decode("ascii")


def decrypt_resource(
    api_v3_key: bytes | str, *, ciphertext: str, nonce: str, associated_data: str
) -> bytes:
    """Open an encrypted resource; any tampering or a wrong key is a :class:`DecryptionFailed`.

    GCM authenticates ciphertext, nonce and associated data together, so a wrong key and a
    modified field are indistinguishable by design; the message says both.
    """
    key = _api_v3_key(api_v3_key)
    try:
        sealed = base64.b64decode(ciphertext, validate=True)
    except binascii.Error:
        raise MalformedNotification("resource.ciphertext is not base64") from None
    if len(nonce) != _GCM_NONCE_CHARS:
        raise MalformedNotification(f"resource.nonce must be {_GCM_NONCE_CHARS} characters")
    try:
        return AESGCM(key).decrypt(nonce.encode("utf-8"), sealed, associated_data.encode("utf-8"))
    except InvalidTag:
        raise DecryptionFailed(
            "resource does not decrypt: wrong APIv3 key, or ciphertext, nonce or "
            "associated_data were modified"
        ) from None


def wechat_time(moment: datetime) -> str:
    """RFC 3339 in Beijing time to the second (``2024-05-20T12:00:00+08:00``), as WeChat writes."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("wechat_time needs an aware datetime")
    return moment.astimezone(_BEIJING).isoformat(timespec="seconds")


_wechat_time = wechat_time


def transaction_resource(
    *,
    order_id: str,
    amount: Decimal,
    transaction_id: str,
    success_time: datetime,
    trade_state: str = "SUCCESS",
    mch_id: str = "1900000109",
    app_id: str = "wx0000000000000000",
    openid: str = "o-sandbox-payer",
    currency: str = CURRENCY,
) -> dict[str, Any]:
    """The decrypted transaction object of a payment notification (fields WeChat sends)."""
    resource: dict[str, Any] = {
        "appid": app_id,
        "mchid": mch_id,
        "out_trade_no": order_id,
        "transaction_id": transaction_id,
        "trade_type": "JSAPI",
        "trade_state": trade_state,
        "trade_state_desc": "支付成功" if trade_state == "SUCCESS" else trade_state,
        "bank_type": "OTHERS",
        "attach": "",
        "payer": {"openid": openid},
        "amount": {
            "total": to_fen(amount),
            "payer_total": to_fen(amount),
            "currency": currency,
            "payer_currency": currency,
        },
    }
    if trade_state in ("SUCCESS", "REFUND"):
        resource["success_time"] = _wechat_time(success_time)
    return resource


def refund_resource(
    *,
    order_id: str,
    refund_id: str,
    wechat_refund_id: str,
    transaction_id: str,
    amount: Decimal,
    total: Decimal,
    success_time: datetime,
    refund_status: str = "SUCCESS",
    mch_id: str = "1900000109",
) -> dict[str, Any]:
    """The decrypted refund object of a refund notification.

    ``refund_id`` is ours (out_refund_no), ``wechat_refund_id`` is WeChat's (refund_id).
    """
    resource: dict[str, Any] = {
        "mchid": mch_id,
        "out_trade_no": order_id,
        "transaction_id": transaction_id,
        "out_refund_no": refund_id,
        "refund_id": wechat_refund_id,
        "refund_status": refund_status,
        "user_received_account": "支付用户零钱",
        "amount": {
            "total": to_fen(total),
            "refund": to_fen(amount),
            "payer_total": to_fen(total),
            "payer_refund": to_fen(amount),
        },
    }
    if refund_status == "SUCCESS":
        resource["success_time"] = _wechat_time(success_time)
    return resource


def transfer_resource(
    *,
    out_bill_no: str,
    transfer_bill_no: str,
    amount: Decimal,
    openid: str,
    created_at: datetime,
    updated_at: datetime,
    state: str = "SUCCESS",
    mch_id: str = "1900000109",
    fail_reason: str | None = None,
) -> dict[str, Any]:
    """The decrypted object of a ``MCHTRANSFER.BILL.FINISHED`` notification.

    Field names follow WeChat's example for this event, where the merchant id is ``mch_id``
    (not ``mchid`` as in payments and refunds).  ``out_bill_no`` is ours (the payout id),
    ``transfer_bill_no`` is WeChat's.
    """
    resource: dict[str, Any] = {
        "out_bill_no": out_bill_no,
        "transfer_bill_no": transfer_bill_no,
        "state": state,
        "mch_id": mch_id,
        "transfer_amount": to_fen(amount),
        "openid": openid,
        "create_time": wechat_time(created_at),
        "update_time": wechat_time(updated_at),
    }
    if fail_reason is not None:
        resource["fail_reason"] = fail_reason
    return resource


def _original_type(event_type: str) -> str | None:
    """The resource ``original_type`` WeChat uses for an event type, or None if unhandled."""
    if event_type.startswith("TRANSACTION."):
        return "transaction"
    if event_type.startswith("REFUND."):
        return "refund"
    if event_type.startswith("MCHTRANSFER."):
        return _TRANSFER_ORIGINAL_TYPE
    return None


def build_notification(
    *,
    private_key: RSAPrivateKey,
    serial: str,
    api_v3_key: bytes | str,
    resource: Mapping[str, Any],
    sent_at: datetime,
    event_type: str = "TRANSACTION.SUCCESS",
    nonce: str | None = None,
    notification_id: str | None = None,
    resource_nonce: str | None = None,
    associated_data: str | None = None,
    summary: str | None = None,
) -> SignedDelivery:
    """A notification exactly as the WeChat Pay platform would send it at ``sent_at``.

    ``resource`` is the plaintext object (see :func:`transaction_resource`,
    :func:`refund_resource` and :func:`transfer_resource`).  Random nonces and the envelope id
    are drawn from :mod:`secrets` unless given, so two calls model two deliveries of the same
    event.
    """
    _check_rsa(private_key, "private_key")
    original_type = _original_type(event_type) or "transaction"
    aad = original_type if associated_data is None else associated_data
    gcm_nonce = secrets.token_hex(6) if resource_nonce is None else resource_nonce
    plaintext = json.dumps(resource, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    envelope = {
        "id": notification_id or f"EV-{secrets.token_hex(16)}",
        "create_time": _wechat_time(sent_at),
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": summary or _SUMMARIES.get(event_type, event_type),
        "resource": {
            "original_type": original_type,
            "algorithm": ALGORITHM,
            "ciphertext": encrypt_resource(
                api_v3_key, plaintext, nonce=gcm_nonce, associated_data=aad
            ),
            "associated_data": aad,
            "nonce": gcm_nonce,
        },
    }
    body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    timestamp = str(int(sent_at.timestamp()))
    header_nonce = secrets.token_hex(16) if nonce is None else nonce
    return SignedDelivery(
        headers={
            WECHATPAY_TIMESTAMP: timestamp,
            WECHATPAY_NONCE: header_nonce,
            WECHATPAY_SERIAL: serial,
            WECHATPAY_SIGNATURE: sign_message(private_key, timestamp, header_nonce, body),
            WECHATPAY_SIGNATURE_TYPE: SIGNATURE_TYPE,
            "Content-Type": "application/json",
        },
        body=body,
    )


class WeChatPayNotifications(NotificationVerifier):
    """Verifies and decodes one merchant's WeChat Pay v3 notifications.

    ``platform_keys`` maps ``Wechatpay-Serial`` values to the platform keys we trust (keep the
    old one during a rotation).  ``mch_id``, if given, must match the resource's merchant id
    (``mchid``, or ``mch_id`` in transfer notifications): in a multi-tenant deployment it
    catches a notification routed to the wrong tenant.  ``event_id`` is derived from WeChat's
    own transaction, refund or transfer bill id, not from the envelope id, so every delivery
    of one payment, refund or transfer yields an equal :class:`Notification`.
    WeChat knows a payment by the merchant's ``out_trade_no`` (a prepay_id expires and can be
    re-issued), so ``intent_id`` and ``order_id`` are both the out_trade_no.
    """

    def __init__(
        self,
        *,
        platform_keys: Mapping[str, RSAPublicKey],
        api_v3_key: bytes | str,
        mch_id: str | None = None,
        clock: Clock = system_clock,
        tolerance: timedelta = DEFAULT_TOLERANCE,
    ) -> None:
        if not platform_keys:
            raise ProviderConfigError("at least one WeChat Pay platform key is needed")
        for serial, key in platform_keys.items():
            _check_rsa(key, f"platform key {serial}")
        if tolerance <= timedelta(0):
            raise ProviderConfigError("tolerance must be positive")
        self._keys: Final = dict(platform_keys)
        self._api_v3_key: Final = _api_v3_key(api_v3_key)
        self._mch_id: Final = mch_id
        self._clock: Final = clock
        self._tolerance: Final = tolerance

    @property
    def provider(self) -> str:
        return PROVIDER

    def parse_notification(self, headers: Mapping[str, str], body: bytes) -> Notification:
        """Verify (signature, then timestamp), decrypt and decode one notification."""
        self._verify(headers, body)
        envelope = _wire.json_object(body, what="body")
        event_type = _wire.str_field(envelope, "event_type", what="body")
        original_type = _original_type(event_type)
        if original_type is None or (
            original_type == _TRANSFER_ORIGINAL_TYPE and event_type != TRANSFER_EVENT
        ):
            # MCHTRANSFER.BATCH.* belong to the retired batch-transfer API: not ours.
            raise UnsupportedNotification(f"WeChat Pay event_type {event_type} is not handled")
        resource_type = envelope.get("resource_type")
        if resource_type != "encrypt-resource":
            raise MalformedNotification(f"unexpected resource_type {resource_type!r}")
        resource = _wire.object_field(envelope, "resource", what="body")
        declared_type = resource.get("original_type", original_type)
        if declared_type != original_type:
            raise MalformedNotification(
                f"event_type {event_type} carries a {declared_type!r} resource"
            )
        plain = self._decrypt(resource)
        data = _wire.json_object(plain, what="resource")
        # Payments and refunds spell the merchant id "mchid"; WeChat's example of a transfer
        # notification spells it "mch_id".  Either one is checked the same way.
        mch_field = "mch_id" if original_type == _TRANSFER_ORIGINAL_TYPE else "mchid"
        mch_id = _wire.optional_str_field(data, mch_field, what="resource")
        if mch_id is None and original_type == _TRANSFER_ORIGINAL_TYPE:
            mch_id = _wire.optional_str_field(data, "mchid", what="resource")
        if self._mch_id is not None and mch_id != self._mch_id:
            raise ForeignNotification(f"notification for merchant {mch_id}, not {self._mch_id}")
        created = _wire.time_field(envelope, "create_time", what="body")
        if original_type == "transaction":
            return _transaction_notification(data, created)
        if original_type == "refund":
            return _refund_notification(data, created)
        return _transfer_notification(data, created)

    def _verify(self, headers: Mapping[str, str], body: bytes) -> None:
        verify_signature(
            headers,
            body,
            platform_keys=self._keys,
            now=self._clock(),
            tolerance=self._tolerance,
        )

    def _decrypt(self, resource: Mapping[str, Any]) -> bytes:
        algorithm = resource.get("algorithm")
        if algorithm != ALGORITHM:
            raise MalformedNotification(f"unsupported resource.algorithm {algorithm!r}")
        associated = resource.get("associated_data", "")
        if associated is None:
            associated = ""
        if not isinstance(associated, str):
            raise MalformedNotification("resource.associated_data must be a string")
        return decrypt_resource(
            self._api_v3_key,
            ciphertext=_wire.str_field(resource, "ciphertext", what="resource"),
            nonce=_wire.str_field(resource, "nonce", what="resource"),
            associated_data=associated,
        )


def _currency(amount: Mapping[str, Any], *, required: bool) -> None:
    currency = amount.get("currency")
    if currency is None and not required:
        return
    if not isinstance(currency, str):
        raise MalformedNotification("amount.currency must be a string")
    if currency != CURRENCY:
        # Authentic money in another currency: an operator must look, a retry will not help.
        raise UnsupportedNotification(f"amount.currency {currency} is not {CURRENCY}")


def _transaction_notification(data: Mapping[str, Any], created: datetime) -> Notification:
    state = _wire.str_field(data, "trade_state", what="transaction")
    if state in _PENDING_TRADE_STATES:
        raise UnsupportedNotification(f"trade_state {state} is not final")
    kind = _TRADE_STATES.get(state)
    if kind is None:
        raise MalformedNotification(f"unknown trade_state {state!r}")
    order_id = _wire.str_field(data, "out_trade_no", what="transaction")
    amount = _wire.object_field(data, "amount", what="transaction")
    _currency(amount, required=True)
    if kind is NotificationKind.PAYMENT_SUCCEEDED:
        transaction_id: str | None = _wire.str_field(data, "transaction_id", what="transaction")
        occurred_at = _wire.time_field(data, "success_time", what="transaction")
        key = transaction_id
    else:
        transaction_id = _wire.optional_str_field(data, "transaction_id", what="transaction")
        occurred_at = created
        key = order_id
    return Notification(
        provider=PROVIDER,
        kind=kind,
        event_id=f"{PROVIDER}:{kind.value}:{key}",
        # total is the order amount we asked for; payer_total can be lower when a coupon paid
        # part of it, and the order is paid in full either way.
        amount=_wire.fen_field(amount, "total", what="amount"),
        occurred_at=occurred_at,
        provider_transaction_id=transaction_id,
        intent_id=order_id,
        order_id=order_id,
    )


def _refund_notification(data: Mapping[str, Any], created: datetime) -> Notification:
    state = _wire.str_field(data, "refund_status", what="refund")
    if state in _PENDING_REFUND_STATES:
        raise UnsupportedNotification(f"refund_status {state} is not final")
    kind = _REFUND_STATES.get(state)
    if kind is None:
        raise MalformedNotification(f"unknown refund_status {state!r}")
    order_id = _wire.str_field(data, "out_trade_no", what="refund")
    wechat_refund_id = _wire.str_field(data, "refund_id", what="refund")
    amount = _wire.object_field(data, "amount", what="refund")
    _currency(amount, required=False)
    occurred_at = (
        _wire.time_field(data, "success_time", what="refund")
        if kind is NotificationKind.REFUND_SUCCEEDED
        else created
    )
    return Notification(
        provider=PROVIDER,
        kind=kind,
        event_id=f"{PROVIDER}:{kind.value}:{wechat_refund_id}",
        amount=_wire.fen_field(amount, "refund", what="amount"),
        occurred_at=occurred_at,
        provider_transaction_id=wechat_refund_id,
        intent_id=order_id,
        order_id=order_id,
        refund_id=_wire.str_field(data, "out_refund_no", what="refund"),
    )


def _transfer_notification(data: Mapping[str, Any], created: datetime) -> Notification:
    state = _wire.str_field(data, "state", what="transfer")
    if state in _PENDING_TRANSFER_STATES:
        raise UnsupportedNotification(f"transfer state {state} is not final")
    kind = _TRANSFER_STATES.get(state)
    if kind is None:
        raise MalformedNotification(f"unknown transfer state {state!r}")
    transfer_bill_no = _wire.str_field(data, "transfer_bill_no", what="transfer")
    # update_time is when the bill reached this final state; the envelope's create_time (when
    # the notification was made) is the fallback.  Both are the same on every redelivery.
    occurred_at = (
        _wire.time_field(data, "update_time", what="transfer")
        if data.get("update_time") is not None
        else created
    )
    return Notification(
        provider=PROVIDER,
        kind=kind,
        event_id=f"{PROVIDER}:{kind.value}:{transfer_bill_no}",
        amount=_wire.fen_field(data, "transfer_amount", what="transfer"),
        occurred_at=occurred_at,
        provider_transaction_id=transfer_bill_no,
        payout_id=_wire.str_field(data, "out_bill_no", what="transfer"),
    )
