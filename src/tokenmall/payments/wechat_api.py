"""WeChat Pay API v3 outbound calls (微信支付 APIv3): JSAPI prepay, order query and close,
refunds, transfers.

The inbound half (notifications) is :mod:`tokenmall.payments.wechat`; this is the half that
asks WeChat to do something.  Every call is one signed HTTPS request and one signed answer:

* Request: ``Authorization: WECHATPAY2-SHA256-RSA2048 mchid="..",nonce_str="..",
  signature="..",timestamp="..",serial_no=".."`` where ``signature`` is base64 RSA-SHA256
  (PKCS#1 v1.5) with the merchant's API key over ``"{METHOD}\\n{path?query}\\n{timestamp}\\n
  {nonce}\\n{body}\\n"`` (body empty for GET), and ``serial_no`` names the merchant's API
  certificate.  The path signed is the one actually sent (taken from the built request), so
  the two cannot drift apart.
* Answer: the platform signs every response as it signs notifications (``Wechatpay-*``
  headers over ``"{timestamp}\\n{nonce}\\n{body}\\n"``).  WeChat's documentation says a 2xx
  without a valid signature must be treated as forged; we apply the same rule to 4xx
  refusals, because acting on a forged refusal (marking a refund failed that WeChat did make)
  is as harmful as acting on a forged success.  Whether WeChat signs *every* 4xx could not be
  confirmed; an unsigned one surfaces as :class:`ProviderUnavailable` and is retried.

Outcomes, so the caller knows what to do next:

* a parsed result: WeChat accepted the request (a refund or transfer is confirmed later by its
  notification, see :mod:`tokenmall.payments.wechat`);
* :class:`ProviderRefused` (an authentic 4xx): do not resend as is; ``provider_code`` says why;
* :class:`ProviderUnavailable` (network error, timeout, 5xx, or an answer that does not verify):
  the request may or may not have taken effect; send it again with the *same* merchant id
  (out_trade_no, out_refund_no, out_bill_no), which WeChat treats as the same object.

The client never retries by itself: the caller owns the retry policy and the record of what
it sent.  Amounts are Decimal CNY in and out; only :func:`to_fen`/:func:`from_fen` convert.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from tokenmall.json_limits import loads_bounded
from tokenmall.payments import _wire
from tokenmall.payments.base import (
    CURRENCY,
    Clock,
    Notification,
    PayoutAnswer,
    PayoutRequest,
    PayoutStatus,
    RefundResult,
    RefundStatus,
    from_fen,
    system_clock,
    to_fen,
)
from tokenmall.payments.errors import (
    InvalidAmount,
    InvalidPaymentRequest,
    NotificationRejected,
    PaymentConflict,
    ProviderConfigError,
    ProviderRefused,
    ProviderUnavailable,
)
from tokenmall.payments.wechat import (
    DEFAULT_TOLERANCE,
    PROVIDER,
    PUBLIC_KEY_ID_PREFIX,
    SIGNATURE_TYPE,
    WECHATPAY_SERIAL,
    WECHATPAY_SIGNATURE,
    _check_rsa,
    _refund_notification,
    _transaction_notification,
    decrypt_resource,
    verify_signature,
    wechat_time,
)

__all__ = [
    "CERTIFICATES_PATH",
    "DEFAULT_BASE_URL",
    "JSAPI_PATH",
    "ORDER_NOT_EXIST",
    "REFUND_PATH",
    "TRADE_PATH",
    "TRANSFER_NAME_REQUIRED_FROM",
    "TRANSFER_PATH",
    "TRANSFER_SCENE_CASH_MARKETING",
    "EncryptedField",
    "PlatformCertificate",
    "RefundQuery",
    "TradeQuery",
    "WeChatPayApi",
]

DEFAULT_BASE_URL: Final = "https://api.mch.weixin.qq.com"
JSAPI_PATH: Final = "/v3/pay/transactions/jsapi"
CERTIFICATES_PATH: Final = "/v3/certificates"
TRADE_PATH: Final = "/v3/pay/transactions/out-trade-no/"  # + out_trade_no [+ "/close"]
REFUND_PATH: Final = "/v3/refund/domestic/refunds"
TRANSFER_PATH: Final = "/v3/fund-app/mch-transfer/transfer-bills"
USER_AGENT: Final = "tokenmall-wechatpay/0.1 (+httpx)"

TRANSFER_SCENE_CASH_MARKETING: Final = "1000"
"""商家转账 scene 1000, 现金营销 (cash marketing): the scene a points withdrawal is filed under.

WeChat requires, for this scene, two report entries (报备信息) with ``info_type`` 活动名称
(activity name) and 奖励说明 (reward description), each ``info_content`` at most 32
characters, and accepts ``user_recv_perception`` 活动奖励 or 现金奖励.  Confirmed from WeChat's
request examples and SDK code; a merchant must also have the scene enabled in its portal.
"""
_TRANSFER_TEXT_MAX: Final = 32  # transfer_remark and info_content: "最多允许32个字符"
_DEFAULT_TRANSFER_REMARK: Final = "积分提现"
TRANSFER_NAME_REQUIRED_FROM: Final = Decimal(2000)
"""WeChat requires the payee's real name (``user_name``, encrypted) on transfers from this
many CNY up ("转账金额 >= 2,000 元时, 该笔明细必须填写收款用户姓名"); below it the name is
optional and, when sent, checked against the payee's real-name record."""
_NAME_MAX: Final = 64
# out_trade_no: at most 32 of digits, letters and _-|* (WeChat's documented alphabet).
_OUT_TRADE_NO: Final = re.compile(r"[0-9A-Za-z_\-|*]{1,32}")
# out_refund_no: at most 64 of digits, letters and _-|*@ (documented alphabet).
_OUT_REFUND_NO: Final = re.compile(r"[0-9A-Za-z_\-|*@]{1,64}")
# out_bill_no: at most 32 digits and letters only ("只能由数字、大小写字母组成").
_OUT_BILL_NO: Final = re.compile(r"[0-9A-Za-z]{1,32}")

ORDER_NOT_EXIST: Final = "ORDER_NOT_EXIST"
"""The error code of a query for an order WeChat does not have (HTTP 404, "订单不存在"), and
the ``trade_state`` :meth:`WeChatPayApi.query_order` reports for it."""
_OPEN_TRADE_STATES: Final = frozenset({"NOTPAY", "USERPAYING"})

_REFUND_STATUSES: Final[Mapping[str, RefundStatus]] = {
    "SUCCESS": RefundStatus.SUCCEEDED,
    "PROCESSING": RefundStatus.PENDING,
    "CLOSED": RefundStatus.FAILED,
    "ABNORMAL": RefundStatus.FAILED,
}
_TRANSFER_STATES: Final[Mapping[str, PayoutStatus]] = {
    "SUCCESS": PayoutStatus.SUCCEEDED,
    "FAIL": PayoutStatus.FAILED,
    "CANCELLED": PayoutStatus.FAILED,
}


@dataclass(frozen=True, slots=True)
class TradeQuery:
    """What WeChat says of one order (商户订单号查询订单), verified like a notification.

    ``trade_state`` is WeChat's word: ``NOTPAY`` or ``USERPAYING`` (still open), a final state
    (``SUCCESS``, ``REFUND``, ``CLOSED``, ``REVOKED``, ``PAYERROR``), or :data:`ORDER_NOT_EXIST`
    when WeChat has no order of that out_trade_no (the prepay never reached it).  For a final
    state, ``notification`` is the same :class:`~tokenmall.payments.Notification` the
    TRANSACTION notification would have produced, with the same ``event_id``: applying both
    (the query's and a late delivery) applies the payment once.
    """

    out_trade_no: str
    trade_state: str
    notification: Notification | None = None

    @property
    def is_open(self) -> bool:
        """WeChat has the order and it can still be paid."""
        return self.trade_state in _OPEN_TRADE_STATES


@dataclass(frozen=True, slots=True)
class EncryptedField:
    """A sensitive field encrypted for WeChat Pay (敏感信息加密): ``ciphertext`` is base64
    RSA-OAEP (SHA-1, MGF1 with SHA-1) under the platform key ``serial``, which the request
    names in its ``Wechatpay-Serial`` header.  Only WeChat can read it, so it may be stored
    and sent again as is (a resend of the same transfer)."""

    serial: str
    ciphertext: str


@dataclass(frozen=True, slots=True)
class PlatformCertificate:
    """One WeChat Pay platform certificate (平台证书) as downloaded: its serial (what the
    ``Wechatpay-Serial`` header names), its public key, the PEM, and its validity."""

    serial: str
    public_key: RSAPublicKey
    pem: str
    effective: datetime
    expires: datetime


@dataclass(frozen=True, slots=True)
class RefundQuery:
    """What WeChat says of one refund (查询单笔退款), verified like a notification.

    ``status`` is WeChat's word (``PROCESSING``, ``SUCCESS``, ``CLOSED``, ``ABNORMAL``); for a
    final one, ``notification`` is what the REFUND.* notification would have produced, with
    the same ``event_id``.
    """

    out_refund_no: str
    status: str
    notification: Notification | None = None


def _certificates(data: Mapping[str, Any], api_v3_key: bytes | str) -> list[PlatformCertificate]:
    """The certificates of a /v3/certificates answer, decrypted and checked; any defect is
    :class:`ProviderUnavailable` (not an answer we can use)."""
    try:
        entries = data.get("data")
        if not isinstance(entries, list) or not entries:
            raise ProviderUnavailable("WeChat Pay listed no platform certificate")
        out = []
        for entry in entries:
            if not isinstance(entry, dict):
                raise ProviderUnavailable("a WeChat Pay certificate entry is not an object")
            serial = _wire.str_field(entry, "serial_no", what="certificate")
            sealed = _wire.object_field(entry, "encrypt_certificate", what="certificate")
            pem = decrypt_resource(
                api_v3_key,
                ciphertext=_wire.str_field(sealed, "ciphertext", what="certificate"),
                nonce=_wire.str_field(sealed, "nonce", what="certificate"),
                associated_data=str(sealed.get("associated_data") or ""),
            )
            cert = x509.load_pem_x509_certificate(pem)
            if f"{cert.serial_number:X}" != serial.upper().lstrip("0"):
                raise ProviderUnavailable(f"certificate listed as {serial} has another serial")
            key = cert.public_key()
            if not isinstance(key, RSAPublicKey):
                raise ProviderUnavailable(f"certificate {serial} has no RSA key")
            _check_rsa(key, f"platform certificate {serial}")
            out.append(
                PlatformCertificate(
                    serial=serial,
                    public_key=key,
                    pem=pem.decode("ascii"),
                    effective=_wire.time_field(entry, "effective_time", what="certificate"),
                    expires=_wire.time_field(entry, "expire_time", what="certificate"),
                )
            )
    except (NotificationRejected, ProviderConfigError, ValueError) as exc:
        raise ProviderUnavailable(f"unusable WeChat Pay certificate list: {exc}") from exc
    return out


def _check_id(value: str, pattern: re.Pattern[str], what: str) -> str:
    """Refuse, before any network call, an id WeChat would reject or could not echo back."""
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise InvalidPaymentRequest(f"{what} {value!r} is not a valid WeChat Pay {what}")
    return value


def _json_body(payload: Mapping[str, Any]) -> bytes:
    # Serialised once; the signature covers these exact bytes and they are what is sent.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _provider_error(raw: bytes) -> tuple[str, str]:
    """WeChat's ``{"code": .., "message": ..}`` error body, tolerating anything else."""
    try:
        data = loads_bounded(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):  # not JSON, or nested too deep to be WeChat's
        return "", raw[:200].decode("utf-8", "replace")
    if not isinstance(data, dict):
        return "", str(data)[:200]
    code = data.get("code")
    message = data.get("message")
    return (
        code if isinstance(code, str) else "",
        message if isinstance(message, str) else "",
    )


class WeChatPayApi:
    """One merchant's signed WeChat Pay v3 calls (直连商户, ordinary merchant mode).

    ``merchant_key``/``merchant_serial`` are the merchant API certificate's private key
    (apiclient_key.pem) and serial number; ``platform_keys`` maps ``Wechatpay-Serial`` values
    to the platform certificate or platform public key (``PUB_KEY_ID_...``) keys that verify
    WeChat's answers, the same mapping :class:`~tokenmall.payments.wechat.WeChatPayNotifications`
    uses.  ``notify_url`` receives the notifications of every prepay, refund and transfer made
    here; WeChat requires it to be HTTPS without a query string.  ``clock`` signs requests and
    checks the freshness of answers, so a skewed clock shows up as refused or unverifiable
    calls rather than silently.

    Public-key mode: when a WeChat Pay public key (``PUB_KEY_ID_...``) is configured, every
    request names it in ``Wechatpay-Serial``.  WeChat signs its answer with the key a request
    names; a merchant that also has a platform certificate (every merchant switching from
    certificates, per WeChat's guide to the switch) is otherwise answered signed with the
    certificate, which a client holding only the public key cannot verify.  The first such
    key configured is named.  A transfer whose payee name is sealed with another key names
    that key instead, as WeChat requires of encrypted fields.
    """

    def __init__(
        self,
        *,
        mch_id: str,
        app_id: str,
        merchant_key: RSAPrivateKey,
        merchant_serial: str,
        platform_keys: Mapping[str, RSAPublicKey],
        notify_url: str,
        base_url: str = DEFAULT_BASE_URL,
        clock: Clock = system_clock,
        timeout: float = 10.0,
        transfer_activity: str = "会员积分提现",
        transfer_reward: str = "会员积分兑换的现金奖励",
        transfer_perception: str = "现金奖励",
    ) -> None:
        for what, value in (
            ("mch_id", mch_id),
            ("app_id", app_id),
            ("merchant_serial", merchant_serial),
        ):
            if not isinstance(value, str) or not value.strip() or '"' in value:
                raise ProviderConfigError(f"WeChat Pay {what} must be a non-empty string")
        _check_rsa(merchant_key, "the merchant API key")
        if not isinstance(merchant_key, RSAPrivateKey):
            raise ProviderConfigError("the merchant API key must be an RSA private key")
        if not platform_keys:
            raise ProviderConfigError("at least one WeChat Pay platform key is needed")
        for serial, key in platform_keys.items():
            _check_rsa(key, f"platform key {serial}")
        if not notify_url.startswith("https://") or "?" in notify_url:
            raise ProviderConfigError("notify_url must be an https:// URL without a query string")
        if timeout <= 0:
            raise ProviderConfigError("timeout must be positive")
        for what, text in (
            ("transfer_activity", transfer_activity),
            ("transfer_reward", transfer_reward),
        ):
            if not text or len(text) > _TRANSFER_TEXT_MAX:
                raise ProviderConfigError(f"{what} must be 1..{_TRANSFER_TEXT_MAX} characters")
        self._mch_id: Final = mch_id
        self._app_id: Final = app_id
        self._key: Final = merchant_key
        self._serial: Final = merchant_serial
        self._platform_keys: Final = dict(platform_keys)
        self._public_key_id: Final = next(
            (s for s in self._platform_keys if s.startswith(PUBLIC_KEY_ID_PREFIX)), None
        )
        self._notify_url: Final = notify_url
        self._clock: Final = clock
        self._transfer_activity: Final = transfer_activity
        self._transfer_reward: Final = transfer_reward
        self._transfer_perception: Final = transfer_perception
        self._http: Final = httpx.Client(
            base_url=base_url,
            timeout=timeout,
            headers={
                "Accept": "application/json",
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
            },
        )

    @property
    def provider(self) -> str:
        return PROVIDER

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    def __enter__(self) -> WeChatPayApi:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- JSAPI (mini-program / official account) payments ------------------------------------

    def jsapi_prepay(
        self,
        *,
        out_trade_no: str,
        amount: Decimal,
        description: str,
        openid: str,
        expires_at: datetime | None = None,
    ) -> str:
        """Place a JSAPI order (POST /v3/pay/transactions/jsapi) and return its ``prepay_id``.

        The same out_trade_no with the same content may be sent again (WeChat answers with a
        prepay_id for the same order); a different amount under the same out_trade_no is
        refused by WeChat.  The payment itself is confirmed by a TRANSACTION.SUCCESS
        notification, never by this answer.
        """
        _check_id(out_trade_no, _OUT_TRADE_NO, "out_trade_no")
        if not description or not description.strip():
            raise InvalidPaymentRequest("description must not be empty")
        if not openid or not openid.strip():
            raise InvalidPaymentRequest("openid must not be empty")
        payload: dict[str, Any] = {
            "appid": self._app_id,
            "mchid": self._mch_id,
            "description": description,
            "out_trade_no": out_trade_no,
            "notify_url": self._notify_url,
            "amount": {"total": to_fen(amount), "currency": CURRENCY},
            "payer": {"openid": openid},
        }
        if expires_at is not None:
            payload["time_expire"] = wechat_time(expires_at)
        data = self._call("POST", JSAPI_PATH, payload)
        return self._str(data, "prepay_id")

    def jsapi_pay_params(self, prepay_id: str) -> dict[str, str]:
        """The arguments of ``wx.requestPayment`` for ``prepay_id``, signed by the merchant.

        ``paySign`` is base64 RSA-SHA256 with the merchant API key over
        ``"{appId}\\n{timeStamp}\\n{nonceStr}\\n{package}\\n"``, as WeChat's JSAPI/mini-program
        调起支付 page specifies; ``signType`` is always ``RSA`` in API v3.
        """
        if not prepay_id:
            raise InvalidPaymentRequest("prepay_id must not be empty")
        timestamp = str(int(self._clock().timestamp()))
        nonce = secrets.token_hex(16)
        package = f"prepay_id={prepay_id}"
        message = f"{self._app_id}\n{timestamp}\n{nonce}\n{package}\n".encode()
        return {
            "appId": self._app_id,
            "timeStamp": timestamp,
            "nonceStr": nonce,
            "package": package,
            "signType": "RSA",
            "paySign": self._sign(message),
        }

    def query_order(self, out_trade_no: str) -> TradeQuery:
        """Ask WeChat for the state of ``out_trade_no`` (GET .../out-trade-no/{no}?mchid=..).

        What WeChat's documentation prescribes when a payment notification does not arrive,
        and before closing an order.  A signed 404 ``ORDER_NOT_EXIST`` is an answer, not an
        error: :data:`ORDER_NOT_EXIST`.  An answer about another merchant or another order is
        treated as no answer (:class:`ProviderUnavailable`).
        """
        _check_id(out_trade_no, _OUT_TRADE_NO, "out_trade_no")
        try:
            data = self._call("GET", f"{TRADE_PATH}{out_trade_no}?mchid={self._mch_id}", None)
        except ProviderRefused as exc:
            if exc.provider_code == ORDER_NOT_EXIST:
                return TradeQuery(out_trade_no, ORDER_NOT_EXIST)
            raise
        if data.get("mchid") != self._mch_id or data.get("out_trade_no") != out_trade_no:
            raise ProviderUnavailable(
                f"WeChat Pay answered about order {data.get('out_trade_no')!r} of merchant "
                f"{data.get('mchid')!r}, not {out_trade_no!r} of {self._mch_id!r}"
            )
        state = self._str(data, "trade_state")
        if state in _OPEN_TRADE_STATES:
            return TradeQuery(out_trade_no, state)
        try:
            notification = _transaction_notification(data, self._clock())
        except NotificationRejected as exc:  # an unknown state, a foreign currency
            raise ProviderUnavailable(f"unexpected WeChat Pay order answer: {exc}") from exc
        return TradeQuery(out_trade_no, state, notification)

    def close_order(self, out_trade_no: str) -> None:
        """Close the unpaid order ``out_trade_no`` so that it can no longer be paid.

        POST .../out-trade-no/{no}/close, answered ``204 No Content``.  Closing a closed order
        again is accepted; a paid one is refused (:class:`ProviderRefused`).  The answer has no
        body to act on, so whatever the caller records should come from a :meth:`query_order`
        afterwards (a signed ``CLOSED``), not from this call returning.
        """
        _check_id(out_trade_no, _OUT_TRADE_NO, "out_trade_no")
        self._call("POST", f"{TRADE_PATH}{out_trade_no}/close", {"mchid": self._mch_id}, body=False)

    # -- refunds ------------------------------------------------------------------------------

    def refund(
        self,
        *,
        out_trade_no: str,
        out_refund_no: str,
        amount: Decimal,
        total: Decimal,
        reason: str = "",
    ) -> RefundResult:
        """Ask for a refund of ``amount`` of the paid order ``out_trade_no`` (total ``total``).

        POST /v3/refund/domestic/refunds.  WeChat accepts it (usually ``PROCESSING``) and
        confirms with a REFUND.* notification.  Sending the same out_refund_no again with the
        same content returns the same refund; an answer about our out_refund_no with another
        amount means the id was used before for a different refund: :class:`PaymentConflict`.
        """
        _check_id(out_trade_no, _OUT_TRADE_NO, "out_trade_no")
        _check_id(out_refund_no, _OUT_REFUND_NO, "out_refund_no")
        refund_fen, total_fen = to_fen(amount), to_fen(total)
        if refund_fen > total_fen:
            raise InvalidAmount(f"refund {amount} is more than the order total {total}")
        payload: dict[str, Any] = {
            "out_trade_no": out_trade_no,
            "out_refund_no": out_refund_no,
        }
        if reason:
            payload["reason"] = reason
        payload["notify_url"] = self._notify_url
        payload["amount"] = {"refund": refund_fen, "total": total_fen, "currency": CURRENCY}
        data = self._call("POST", REFUND_PATH, payload)
        echoed = self._str(data, "out_refund_no")
        amounts = data.get("amount")
        if not isinstance(amounts, dict):
            raise ProviderUnavailable("WeChat Pay refund answer has no amount object")
        refunded = self._fen(amounts, "refund")
        if echoed != out_refund_no:
            raise ProviderUnavailable(
                f"WeChat Pay answered about refund {echoed!r}, not {out_refund_no!r}"
            )
        if refunded != amount:
            raise PaymentConflict(
                f"WeChat Pay refund {out_refund_no} is for {refunded} CNY, not {amount}"
            )
        status_text = self._str(data, "status")
        status = _REFUND_STATUSES.get(status_text)
        if status is None:
            raise ProviderUnavailable(f"unknown WeChat Pay refund status {status_text!r}")
        return RefundResult(
            provider=PROVIDER,
            refund_id=out_refund_no,
            intent_id=out_trade_no,
            order_id=out_trade_no,
            amount=refunded,
            status=status,
            provider_refund_id=self._str(data, "refund_id"),
        )

    def query_refund(self, out_refund_no: str) -> RefundQuery:
        """Ask WeChat for the state of refund ``out_refund_no`` (GET .../refunds/{no}).

        For a refund whose notification does not come.  An answer about another refund is
        treated as no answer (:class:`ProviderUnavailable`); an unknown refund is WeChat's
        refusal (:class:`ProviderRefused`, ``RESOURCE_NOT_EXISTS``).
        """
        _check_id(out_refund_no, _OUT_REFUND_NO, "out_refund_no")
        data = self._call("GET", f"{REFUND_PATH}/{out_refund_no}", None)
        if data.get("out_refund_no") != out_refund_no:
            raise ProviderUnavailable(
                f"WeChat Pay answered about refund {data.get('out_refund_no')!r}, "
                f"not {out_refund_no!r}"
            )
        status = self._str(data, "status")
        if _REFUND_STATUSES.get(status, RefundStatus.PENDING) is RefundStatus.PENDING:
            if status not in _REFUND_STATUSES:
                raise ProviderUnavailable(f"unknown WeChat Pay refund status {status!r}")
            return RefundQuery(out_refund_no, status)
        try:
            # the query names the state "status", the notification "refund_status"
            notification = _refund_notification({**data, "refund_status": status}, self._clock())
        except NotificationRejected as exc:
            raise ProviderUnavailable(f"unexpected WeChat Pay refund answer: {exc}") from exc
        return RefundQuery(out_refund_no, status, notification)

    # -- platform certificates -------------------------------------------------------------------

    def download_certificates(self, api_v3_key: bytes | str) -> list[PlatformCertificate]:
        """The platform certificates WeChat currently uses (GET /v3/certificates).

        For merchants in certificate mode, whose platform certificate WeChat rotates: a
        notification signed with a certificate the configuration lacks is refused, so the new
        one must be fetched before WeChat starts signing with it.  Each certificate arrives
        encrypted with the APIv3 key (AES-256-GCM, associated data ``certificate``): only
        WeChat can have produced one that decrypts, which is what makes it trusted, even
        before any key of it is configured (WeChat's documented bootstrap).  The answer's
        signature is then checked with the configured keys and the ones just decrypted, and
        each certificate's serial must match the one it is listed under.
        """

        def keys_in(raw: bytes) -> dict[str, RSAPublicKey]:
            try:
                data = _wire.json_object(raw, what="response")
            except NotificationRejected as exc:
                raise ProviderUnavailable(f"unusable WeChat Pay certificate list: {exc}") from exc
            return {c.serial: c.public_key for c in _certificates(data, api_v3_key)}

        return _certificates(self._call("GET", CERTIFICATES_PATH, None, trust=keys_in), api_v3_key)

    # -- transfers (商家转账) -------------------------------------------------------------------

    def encrypt(self, text: str) -> EncryptedField:
        """Encrypt ``text`` (a payee's real name) with the first configured platform key.

        List the newest platform key first in the configuration when WeChat rotates them: a
        field encrypted with a key WeChat has retired cannot be read there.
        """
        if not isinstance(text, str) or not text.strip() or len(text) > _NAME_MAX:
            raise InvalidPaymentRequest(f"the text to encrypt must be 1..{_NAME_MAX} characters")
        serial, key = next(iter(self._platform_keys.items()))
        sha1 = hashes.SHA1()  # noqa: S303 - WeChat's scheme (OAEPWithSHA-1AndMGF1Padding)
        oaep = padding.OAEP(mgf=padding.MGF1(sha1), algorithm=sha1, label=None)
        sealed = key.encrypt(text.encode("utf-8"), oaep)
        return EncryptedField(serial, base64.b64encode(sealed).decode("ascii"))

    def transfer(
        self, request: PayoutRequest, *, user_name: EncryptedField | None = None
    ) -> PayoutAnswer:
        """Send ``request.amount`` to the openid ``request.account`` (POST .../transfer-bills).

        ``payout_id`` becomes out_bill_no (digits and letters only, at most 32), so a retried
        transfer is the same bill.  Scene 1000 (现金营销) with its two required report
        entries; ``transfer_remark`` is the request's description, or a default, cut to
        WeChat's 32 characters (it is display text the payee sees, not an identifier).  In
        WeChat's user-confirmation flow the answer is ``WAIT_USER_CONFIRM`` with a
        ``package_info`` that the payee's mini-program must pass to
        ``wx.requestMerchantTransfer``: it is returned as ``confirm_package``.  Final state
        arrives as a MCHTRANSFER.BILL.FINISHED notification.
        """
        out_bill_no = _check_id(request.payout_id, _OUT_BILL_NO, "out_bill_no")
        if request.amount >= TRANSFER_NAME_REQUIRED_FROM and user_name is None:
            raise InvalidPaymentRequest(
                f"WeChat Pay transfers of {TRANSFER_NAME_REQUIRED_FROM} CNY or more need the "
                "payee's real name (user_name)"
            )
        remark = (request.description or _DEFAULT_TRANSFER_REMARK)[:_TRANSFER_TEXT_MAX]
        payload: dict[str, Any] = {
            "appid": self._app_id,
            "out_bill_no": out_bill_no,
            "transfer_scene_id": TRANSFER_SCENE_CASH_MARKETING,
            "openid": request.account,
            "transfer_amount": to_fen(request.amount),
            "transfer_remark": remark,
            "notify_url": self._notify_url,
            "user_recv_perception": self._transfer_perception,
            "transfer_scene_report_infos": [
                {"info_type": "活动名称", "info_content": self._transfer_activity},
                {"info_type": "奖励说明", "info_content": self._transfer_reward},
            ],
        }
        headers: dict[str, str] = {}
        if user_name is not None:
            payload["user_name"] = user_name.ciphertext
            headers[WECHATPAY_SERIAL] = user_name.serial  # the key the name is sealed with
        data = self._call("POST", TRANSFER_PATH, payload, headers=headers)
        echoed = self._str(data, "out_bill_no")
        if echoed != out_bill_no:
            raise ProviderUnavailable(
                f"WeChat Pay answered about transfer {echoed!r}, not {out_bill_no!r}"
            )
        state = self._str(data, "state")
        package = data.get("package_info")
        if package is not None and not isinstance(package, str):
            raise ProviderUnavailable("WeChat Pay transfer package_info is not a string")
        return PayoutAnswer(
            provider=PROVIDER,
            payout_id=out_bill_no,
            account=request.account,
            amount=request.amount,
            # ACCEPTED, PROCESSING, WAIT_USER_CONFIRM, TRANSFERING, CANCELING: not final yet.
            status=_TRANSFER_STATES.get(state, PayoutStatus.PENDING),
            provider_payout_id=self._str(data, "transfer_bill_no"),
            confirm_package=package or None,
        )

    # -- the wire -----------------------------------------------------------------------------

    def _sign(self, message: bytes) -> str:
        signature = self._key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode("ascii")

    def _call(
        self,
        method: str,
        path: str,
        payload: Mapping[str, Any] | None,
        *,
        body: bool = True,
        headers: Mapping[str, str] | None = None,
        trust: Callable[[bytes], Mapping[str, RSAPublicKey]] | None = None,
    ) -> dict[str, Any]:
        """Send one signed request and return the verified JSON object WeChat answered.

        ``body=False``: the call is answered ``204 No Content`` (close); that answer returns
        ``{}``, and is accepted unsigned only if it carries no signature at all (WeChat's pages
        do not say whether a 204 is signed; it carries nothing the caller acts on).
        ``trust``: more keys to verify a 2xx answer with, taken from the answer itself by a
        check the caller trusts (the certificates' authenticated encryption).
        """
        sent = b"" if payload is None else _json_body(payload)
        request = self._http.build_request(
            method, path, content=sent if sent else None, headers=headers
        )
        if self._public_key_id is not None and WECHATPAY_SERIAL not in request.headers:
            request.headers[WECHATPAY_SERIAL] = self._public_key_id  # see the class docstring
        target = request.url.raw_path.decode("ascii")  # path and query exactly as sent
        timestamp = str(int(self._clock().timestamp()))
        nonce = secrets.token_hex(16)
        message = f"{method}\n{target}\n{timestamp}\n{nonce}\n".encode() + sent + b"\n"
        request.headers["Authorization"] = (
            f'{SIGNATURE_TYPE} mchid="{self._mch_id}",nonce_str="{nonce}",'
            f'signature="{self._sign(message)}",timestamp="{timestamp}",'
            f'serial_no="{self._serial}"'
        )
        try:
            response = self._http.send(request)
        except httpx.TransportError as exc:
            raise ProviderUnavailable(
                f"WeChat Pay {method} {path} got no answer: {type(exc).__name__}: {exc}"
            ) from exc
        raw = response.content
        status = response.status_code
        if status >= 500:
            code, text = _provider_error(raw)
            raise ProviderUnavailable(f"WeChat Pay {method} {path}: HTTP {status} {code} {text}")
        if not body and status == 204 and not raw and WECHATPAY_SIGNATURE not in response.headers:
            return {}
        keys: Mapping[str, RSAPublicKey] = self._platform_keys
        if trust is not None and 200 <= status < 300:
            keys = {**keys, **trust(raw)}
        try:
            verify_signature(
                response.headers,
                raw,
                platform_keys=keys,
                now=self._clock(),
                tolerance=DEFAULT_TOLERANCE,
            )
        except NotificationRejected as exc:
            # Not an answer from WeChat as far as we can tell: as if none had arrived.
            raise ProviderUnavailable(
                f"WeChat Pay {method} {path}: HTTP {status} answer does not verify: {exc}"
            ) from exc
        if 400 <= status < 500:
            code, text = _provider_error(raw)
            raise ProviderRefused(text or f"HTTP {status}", provider_code=code or f"HTTP_{status}")
        if not 200 <= status < 300:
            raise ProviderUnavailable(f"WeChat Pay {method} {path}: unexpected HTTP {status}")
        if not body:
            return {}
        try:
            return _wire.json_object(raw, what="response")
        except NotificationRejected as exc:
            raise ProviderUnavailable(f"WeChat Pay {method} {path}: {exc}") from exc

    @staticmethod
    def _str(data: Mapping[str, Any], key: str) -> str:
        try:
            return _wire.str_field(data, key, what="response")
        except NotificationRejected as exc:
            raise ProviderUnavailable(f"unexpected WeChat Pay answer: {exc}") from exc

    @staticmethod
    def _fen(data: Mapping[str, Any], key: str) -> Decimal:
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProviderUnavailable(f"unexpected WeChat Pay answer: amount.{key} is not fen")
        try:
            return from_fen(value)
        except InvalidAmount as exc:
            raise ProviderUnavailable(f"unexpected WeChat Pay answer: amount.{key}: {exc}") from exc
