"""WeChat Pay v3 notifications built with real RSA keys and AES-GCM, then verified."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tokenmall.payments import (
    ManualClock,
    Notification,
    NotificationKind,
    NotificationVerifier,
    SignedDelivery,
)
from tokenmall.payments.errors import (
    DecryptionFailed,
    ForeignNotification,
    InvalidAmount,
    InvalidSignature,
    MalformedNotification,
    ProviderConfigError,
    StaleNotification,
    UnknownKey,
    UnsupportedNotification,
)
from tokenmall.payments.wechat import (
    WECHATPAY_NONCE,
    WECHATPAY_SERIAL,
    WECHATPAY_SIGNATURE,
    WECHATPAY_SIGNATURE_TYPE,
    WECHATPAY_TIMESTAMP,
    WeChatPayNotifications,
    build_notification,
    decrypt_resource,
    encrypt_resource,
    load_platform_key,
    refund_resource,
    sign_message,
    transaction_resource,
)

from .conftest import START

SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
API_V3_KEY = "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6"
MCH_ID = "1900000109"
PAID_AT = START - timedelta(seconds=3)


@pytest.fixture
def verifier(clock: ManualClock, platform_private_key: rsa.RSAPrivateKey) -> WeChatPayNotifications:
    return WeChatPayNotifications(
        platform_keys={SERIAL: platform_private_key.public_key()},
        api_v3_key=API_V3_KEY,
        mch_id=MCH_ID,
        clock=clock,
    )


def payment(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "order_id": "TM20240520000001",
        "amount": Decimal("88.88"),
        "transaction_id": "4200001234202405201234567890",
        "success_time": PAID_AT,
        "mch_id": MCH_ID,
    }
    fields.update(overrides)
    return transaction_resource(**fields)


def deliver(
    key: rsa.RSAPrivateKey,
    resource: dict[str, Any],
    *,
    sent_at: datetime = START,
    serial: str = SERIAL,
    api_v3_key: str = API_V3_KEY,
    event_type: str = "TRANSACTION.SUCCESS",
) -> SignedDelivery:
    return build_notification(
        private_key=key,
        serial=serial,
        api_v3_key=api_v3_key,
        resource=resource,
        sent_at=sent_at,
        event_type=event_type,
    )


def resign(key: rsa.RSAPrivateKey, body: bytes, sent_at: datetime = START) -> dict[str, str]:
    """Headers for an arbitrary body, validly signed: to test what lies past the signature."""
    timestamp, nonce = str(int(sent_at.timestamp())), "n" * 32
    return {
        WECHATPAY_TIMESTAMP: timestamp,
        WECHATPAY_NONCE: nonce,
        WECHATPAY_SERIAL: SERIAL,
        WECHATPAY_SIGNATURE: sign_message(key, timestamp, nonce, body),
    }


def _flip(text: str, index: int) -> str:
    return text[:index] + chr(ord(text[index]) ^ 0x01) + text[index + 1 :]


# -- the happy path --------------------------------------------------------------------------


def test_valid_payment_notification_parses(
    verifier: WeChatPayNotifications, platform_private_key: rsa.RSAPrivateKey
) -> None:
    request = deliver(platform_private_key, payment())
    typed: NotificationVerifier = verifier
    notification = typed.parse_notification(request.headers, request.body)
    assert notification == Notification(
        provider="wechat",
        kind=NotificationKind.PAYMENT_SUCCEEDED,
        event_id="wechat:payment_succeeded:4200001234202405201234567890",
        amount=Decimal("88.88"),
        occurred_at=PAID_AT,
        provider_transaction_id="4200001234202405201234567890",
        intent_id="TM20240520000001",
        order_id="TM20240520000001",
    )
    assert notification.occurred_at.tzinfo is UTC
    envelope = json.loads(request.body)
    assert envelope["resource"]["algorithm"] == "AEAD_AES_256_GCM"
    assert "TM20240520000001" not in request.body.decode()  # the details travel encrypted
    assert envelope["create_time"].endswith("+08:00")


def test_platform_key_from_certificate_or_public_key_pem(
    clock: ManualClock, platform_private_key: rsa.RSAPrivateKey
) -> None:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(platform_private_key.public_key())
        .serial_number(int(SERIAL, 16))
        .not_valid_before(START - timedelta(days=1))
        .not_valid_after(START + timedelta(days=365))
        .sign(platform_private_key, hashes.SHA256())
    )
    spki = platform_private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    request = deliver(platform_private_key, payment())
    for pem in (cert.public_bytes(serialization.Encoding.PEM), spki):
        verifier = WeChatPayNotifications(
            platform_keys={SERIAL: load_platform_key(pem)}, api_v3_key=API_V3_KEY, clock=clock
        )
        assert verifier.parse_notification(request.headers, request.body).amount == Decimal("88.88")
    with pytest.raises(ProviderConfigError):
        load_platform_key(b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")


def test_duplicate_deliveries_give_identical_notifications(
    verifier: WeChatPayNotifications, clock: ManualClock, platform_private_key: rsa.RSAPrivateKey
) -> None:
    # WeChat retries with a new timestamp, nonce, signature and GCM nonce; the event is the same.
    first = deliver(platform_private_key, payment())
    clock.advance(timedelta(minutes=15))
    second = deliver(platform_private_key, payment(), sent_at=clock())
    assert first.body != second.body
    assert first.headers[WECHATPAY_NONCE] != second.headers[WECHATPAY_NONCE]
    late = verifier.parse_notification(second.headers, second.body)
    with pytest.raises(StaleNotification):
        verifier.parse_notification(first.headers, first.body)
    clock_then = WeChatPayNotifications(
        platform_keys={SERIAL: platform_private_key.public_key()},
        api_v3_key=API_V3_KEY,
        clock=ManualClock(START),
    )
    assert clock_then.parse_notification(first.headers, first.body) == late


def test_header_names_are_case_insensitive(
    verifier: WeChatPayNotifications, platform_private_key: rsa.RSAPrivateKey
) -> None:
    request = deliver(platform_private_key, payment())
    lowered = {k.lower(): v for k, v in request.headers.items()}
    assert verifier.parse_notification(lowered, request.body).order_id == "TM20240520000001"


# -- authenticity ------------------------------------------------------------------------------


@pytest.mark.parametrize("position", [0, 1, 40, 200, -3, -1])
def test_flipped_body_byte_is_refused(
    verifier: WeChatPayNotifications, platform_private_key: rsa.RSAPrivateKey, position: int
) -> None:
    request = deliver(platform_private_key, payment())
    body = bytearray(request.body)
    body[position] ^= 0x01
    with pytest.raises(InvalidSignature):
        verifier.parse_notification(request.headers, bytes(body))


@pytest.mark.parametrize("header", [WECHATPAY_NONCE, WECHATPAY_TIMESTAMP])
@pytest.mark.parametrize("position", [0, -1])
def test_flipped_nonce_or_timestamp_is_refused(
    verifier: WeChatPayNotifications,
    platform_private_key: rsa.RSAPrivateKey,
    header: str,
    position: int,
) -> None:
    request = deliver(platform_private_key, payment())
    headers = {**request.headers, header: _flip(request.headers[header], position)}
    with pytest.raises(InvalidSignature):
        verifier.parse_notification(headers, request.body)


@pytest.mark.parametrize("byte", [0, 100, 255])
def test_flipped_signature_byte_is_refused(
    verifier: WeChatPayNotifications, platform_private_key: rsa.RSAPrivateKey, byte: int
) -> None:
    request = deliver(platform_private_key, payment())
    raw = bytearray(base64.b64decode(request.headers[WECHATPAY_SIGNATURE]))
    raw[byte] ^= 0x01
    headers = {**request.headers, WECHATPAY_SIGNATURE: base64.b64encode(raw).decode()}
    with pytest.raises(InvalidSignature):
        verifier.parse_notification(headers, request.body)


@pytest.mark.parametrize(
    "signature", ["WECHATPAY/SIGNTEST/" + "A" * 40, "not base64!", base64.b64encode(b"x").decode()]
)
def test_probe_and_garbage_signatures_are_refused(
    verifier: WeChatPayNotifications, platform_private_key: rsa.RSAPrivateKey, signature: str
) -> None:
    request = deliver(platform_private_key, payment())
    headers = {**request.headers, WECHATPAY_SIGNATURE: signature}
    with pytest.raises(InvalidSignature):
        verifier.parse_notification(headers, request.body)


def test_wrong_serial_is_refused(
    verifier: WeChatPayNotifications, platform_private_key: rsa.RSAPrivateKey
) -> None:
    request = deliver(platform_private_key, payment(), serial="PUB_KEY_ID_0000000000000001")
    with pytest.raises(UnknownKey, match="PUB_KEY_ID_0000000000000001"):
        verifier.parse_notification(request.headers, request.body)


def test_right_serial_wrong_key_is_refused(
    verifier: WeChatPayNotifications, other_private_key: rsa.RSAPrivateKey
) -> None:
    request = deliver(other_private_key, payment())
    with pytest.raises(InvalidSignature) as caught:
        verifier.parse_notification(request.headers, request.body)
    assert not isinstance(caught.value, UnknownKey)


def test_rotation_keeps_both_keys(
    clock: ManualClock,
    platform_private_key: rsa.RSAPrivateKey,
    other_private_key: rsa.RSAPrivateKey,
) -> None:
    verifier = WeChatPayNotifications(
        platform_keys={
            SERIAL: platform_private_key.public_key(),
            "NEW": other_private_key.public_key(),
        },
        api_v3_key=API_V3_KEY,
        clock=clock,
    )
    for key, serial in ((platform_private_key, SERIAL), (other_private_key, "NEW")):
        request = deliver(key, payment(), serial=serial)
        assert verifier.parse_notification(request.headers, request.body).amount == Decimal("88.88")


def test_unexpected_signature_type_is_refused(
    verifier: WeChatPayNotifications, platform_private_key: rsa.RSAPrivateKey
) -> None:
    request = deliver(platform_private_key, payment())
    headers = {**request.headers, WECHATPAY_SIGNATURE_TYPE: "WECHATPAY2-SM2-WITH-SM3"}
    with pytest.raises(InvalidSignature):
        verifier.parse_notification(headers, request.body)


@pytest.mark.parametrize(
    "missing", [WECHATPAY_TIMESTAMP, WECHATPAY_NONCE, WECHATPAY_SERIAL, WECHATPAY_SIGNATURE]
)
def test_missing_header_is_malformed(
    verifier: WeChatPayNotifications, platform_private_key: rsa.RSAPrivateKey, missing: str
) -> None:
    request = deliver(platform_private_key, payment())
    headers = {k: v for k, v in request.headers.items() if k != missing}
    with pytest.raises(MalformedNotification, match=missing):
        verifier.parse_notification(headers, request.body)


# -- freshness -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "fresh"),
    [
        (timedelta(minutes=-5), True),
        (timedelta(minutes=5), True),
        (timedelta(minutes=-5, seconds=-1), False),
        (timedelta(minutes=5, seconds=1), False),
        (timedelta(days=-1), False),
    ],
)
def test_timestamp_tolerance(
    verifier: WeChatPayNotifications,
    platform_private_key: rsa.RSAPrivateKey,
    offset: timedelta,
    fresh: bool,
) -> None:
    request = deliver(platform_private_key, payment(), sent_at=START + offset)
    if fresh:
        verifier.parse_notification(request.headers, request.body)
    else:
        with pytest.raises(StaleNotification):
            verifier.parse_notification(request.headers, request.body)


# -- decryption ------------------------------------------------------------------------------


def test_wrong_api_v3_key_is_refused(
    verifier: WeChatPayNotifications, platform_private_key: rsa.RSAPrivateKey
) -> None:
    request = deliver(platform_private_key, payment(), api_v3_key="Z" * 32)
    with pytest.raises(DecryptionFailed):
        verifier.parse_notification(request.headers, request.body)


@pytest.mark.parametrize("field", ["ciphertext", "nonce", "associated_data"])
def test_tampered_resource_is_refused_even_when_signed(
    verifier: WeChatPayNotifications, platform_private_key: rsa.RSAPrivateKey, field: str
) -> None:
    envelope = json.loads(deliver(platform_private_key, payment()).body)
    resource = envelope["resource"]
    if field == "ciphertext":
        raw = bytearray(base64.b64decode(resource["ciphertext"]))
        raw[5] ^= 0x01
        resource["ciphertext"] = base64.b64encode(raw).decode()
    else:
        resource[field] = _flip(resource[field], 0)
    body = json.dumps(envelope).encode()
    with pytest.raises(DecryptionFailed):
        verifier.parse_notification(resign(platform_private_key, body), body)


def test_encrypt_and_decrypt_round_trip() -> None:
    sealed = encrypt_resource(API_V3_KEY, b'{"a":1}', nonce="abcdefghijkl", associated_data="x")
    assert (
        decrypt_resource(API_V3_KEY, ciphertext=sealed, nonce="abcdefghijkl", associated_data="x")
        == b'{"a":1}'
    )
    assert len(base64.b64decode(sealed)) == len(b'{"a":1}') + 16  # ciphertext then the tag


# -- content ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "kind"),
    [
        ("SUCCESS", NotificationKind.PAYMENT_SUCCEEDED),
        ("REFUND", NotificationKind.PAYMENT_SUCCEEDED),
        ("CLOSED", NotificationKind.PAYMENT_FAILED),
        ("REVOKED", NotificationKind.PAYMENT_FAILED),
        ("PAYERROR", NotificationKind.PAYMENT_FAILED),
    ],
)
def test_trade_states_map_to_kinds(
    verifier: WeChatPayNotifications,
    platform_private_key: rsa.RSAPrivateKey,
    state: str,
    kind: NotificationKind,
) -> None:
    request = deliver(platform_private_key, payment(trade_state=state))
    notification = verifier.parse_notification(request.headers, request.body)
    assert notification.kind is kind
    if kind is NotificationKind.PAYMENT_SUCCEEDED:
        # A REFUND-state copy of the payment is the same payment event, deduplicated as such.
        assert notification.event_id == "wechat:payment_succeeded:4200001234202405201234567890"
        assert notification.occurred_at == PAID_AT
    else:
        assert notification.event_id == "wechat:payment_failed:TM20240520000001"
        assert notification.occurred_at == START  # no success_time: the envelope's time


@pytest.mark.parametrize("state", ["NOTPAY", "USERPAYING"])
def test_unfinished_trade_states_are_unsupported(
    verifier: WeChatPayNotifications, platform_private_key: rsa.RSAPrivateKey, state: str
) -> None:
    request = deliver(platform_private_key, payment(trade_state=state))
    with pytest.raises(UnsupportedNotification, match="not final"):
        verifier.parse_notification(request.headers, request.body)


def test_unknown_trade_state_is_malformed(
    verifier: WeChatPayNotifications, platform_private_key: rsa.RSAPrivateKey
) -> None:
    request = deliver(platform_private_key, payment(trade_state="TELEPORTED"))
    with pytest.raises(MalformedNotification, match="TELEPORTED"):
        verifier.parse_notification(request.headers, request.body)


def test_refund_notifications(
    verifier: WeChatPayNotifications, platform_private_key: rsa.RSAPrivateKey
) -> None:
    common: dict[str, Any] = {
        "order_id": "TM20240520000001",
        "refund_id": "RF-1",
        "wechat_refund_id": "50000000382019052709732678859",
        "transaction_id": "4200001234202405201234567890",
        "amount": Decimal("10.01"),
        "total": Decimal("88.88"),
        "success_time": PAID_AT,
        "mch_id": MCH_ID,
    }
    request = deliver(platform_private_key, refund_resource(**common), event_type="REFUND.SUCCESS")
    refunded = verifier.parse_notification(request.headers, request.body)
    assert (refunded.kind, refunded.refund_id, refunded.amount, refunded.order_id) == (
        NotificationKind.REFUND_SUCCEEDED,
        "RF-1",
        Decimal("10.01"),
        "TM20240520000001",
    )
    assert refunded.event_id == "wechat:refund_succeeded:50000000382019052709732678859"

    request = deliver(
        platform_private_key,
        refund_resource(**common, refund_status="ABNORMAL"),
        event_type="REFUND.ABNORMAL",
    )
    assert (
        verifier.parse_notification(request.headers, request.body).kind
        is NotificationKind.REFUND_FAILED
    )
    request = deliver(
        platform_private_key,
        refund_resource(**common, refund_status="PROCESSING"),
        event_type="REFUND.SUCCESS",
    )
    with pytest.raises(UnsupportedNotification):
        verifier.parse_notification(request.headers, request.body)


def test_other_merchant_is_foreign(
    verifier: WeChatPayNotifications, platform_private_key: rsa.RSAPrivateKey
) -> None:
    request = deliver(platform_private_key, payment(mch_id="1900000999"))
    with pytest.raises(ForeignNotification):
        verifier.parse_notification(request.headers, request.body)


def test_foreign_currency_is_unsupported(
    verifier: WeChatPayNotifications, platform_private_key: rsa.RSAPrivateKey
) -> None:
    request = deliver(platform_private_key, payment(currency="USD"))
    with pytest.raises(UnsupportedNotification, match="USD"):
        verifier.parse_notification(request.headers, request.body)


def test_unhandled_event_type_is_unsupported(
    verifier: WeChatPayNotifications, platform_private_key: rsa.RSAPrivateKey
) -> None:
    # (MCHTRANSFER.BILL.FINISHED used to be the example here; transfers are handled now)
    request = deliver(platform_private_key, payment(), event_type="PROFITSHARING.SUCCESS")
    with pytest.raises(UnsupportedNotification):
        verifier.parse_notification(request.headers, request.body)


def _sealed_body(plaintext: bytes, **envelope_overrides: Any) -> bytes:
    envelope: dict[str, Any] = {
        "id": "EV-1",
        "create_time": "2024-05-20T12:00:00+08:00",
        "resource_type": "encrypt-resource",
        "event_type": "TRANSACTION.SUCCESS",
        "resource": {
            "original_type": "transaction",
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": encrypt_resource(
                API_V3_KEY, plaintext, nonce="0123456789ab", associated_data="transaction"
            ),
            "nonce": "0123456789ab",
            "associated_data": "transaction",
        },
    }
    envelope.update(envelope_overrides)
    return json.dumps(envelope).encode()


def _transaction_with(**changes: Any) -> bytes:
    data = payment()
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    "body",
    [
        b"not json at all",
        b"[]",
        _sealed_body(b"{not json"),
        _sealed_body(b'"a string"'),
        _sealed_body(_transaction_with(out_trade_no=None)),
        _sealed_body(_transaction_with(transaction_id=None)),
        _sealed_body(_transaction_with(success_time="yesterday")),
        _sealed_body(_transaction_with(success_time="2024-05-20T12:00:00")),
        _sealed_body(_transaction_with(amount={"total": "8888", "currency": "CNY"})),
        _sealed_body(_transaction_with(amount={"total": 0, "currency": "CNY"})),
        _sealed_body(_transaction_with(amount={"total": -1, "currency": "CNY"})),
        _sealed_body(_transaction_with(amount={"total": True, "currency": "CNY"})),
        _sealed_body(_transaction_with(amount={"total": 88.88, "currency": "CNY"})),
        _sealed_body(_transaction_with(amount={"total": 8888})),
        _sealed_body(_transaction_with(amount=None)),
        _sealed_body(_transaction_with(trade_state=None)),
        _sealed_body(_transaction_with(), resource_type="plain"),
        _sealed_body(_transaction_with(), resource="x"),
        _sealed_body(_transaction_with(), create_time="soon"),
        _sealed_body(
            _transaction_with(),
            resource={"algorithm": "AEAD_SM4_GCM", "ciphertext": "AA==", "nonce": "0123456789ab"},
        ),
        _sealed_body(_transaction_with(), event_type="REFUND.SUCCESS"),
    ],
)
def test_signed_but_malformed_content_is_refused(
    verifier: WeChatPayNotifications, platform_private_key: rsa.RSAPrivateKey, body: bytes
) -> None:
    with pytest.raises(MalformedNotification):
        verifier.parse_notification(resign(platform_private_key, body), body)


def test_sub_fen_amounts_cannot_be_put_in_a_notification() -> None:
    with pytest.raises(InvalidAmount):
        payment(amount=Decimal("88.885"))


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["too short", "x" * 33, b"y" * 31])
def test_api_v3_key_must_be_32_bytes(
    platform_private_key: rsa.RSAPrivateKey, key: str | bytes
) -> None:
    with pytest.raises(ProviderConfigError):
        WeChatPayNotifications(
            platform_keys={SERIAL: platform_private_key.public_key()}, api_v3_key=key
        )


def test_weak_or_missing_platform_keys_are_refused() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ProviderConfigError):
        WeChatPayNotifications(platform_keys={SERIAL: weak.public_key()}, api_v3_key=API_V3_KEY)
    with pytest.raises(ProviderConfigError):
        WeChatPayNotifications(platform_keys={}, api_v3_key=API_V3_KEY)
