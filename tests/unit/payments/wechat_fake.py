"""A fake WeChat Pay API v3 server for one merchant, over real HTTP on 127.0.0.1.

WeChat's servers cannot run here, so this plays them: it checks every request's
``Authorization`` signature like WeChat does (and answers 401 SIGN_ERROR otherwise), keeps
the state WeChat keeps (orders, refunds, transfer bills, all idempotent on the merchant's
ids), signs every answer, and produces the notifications WeChat would send (through
:func:`tokenmall.payments.wechat.build_notification`).

Which key signs an answer follows the request, as WeChat's guide to switching from platform
certificates to the WeChat Pay public key describes: a request whose ``Wechatpay-Serial``
names a key WeChat holds (the public key ``PUB_KEY_ID_...`` or a platform certificate) is
answered signed with that key; a request that names none is answered with the default signer,
the current platform certificate once one exists (:meth:`FakeWeChatPay.rotate_certificate`),
else the public key; a request naming a key WeChat does not hold is refused 400 PARAM_ERROR
(assumed).  So a client in public-key mode that forgets the header gets answers it cannot
verify, as it would from WeChat.

The request signature is checked here from WeChat's documented format, written out
independently of the client's code, so a client that signs the wrong string fails here.

Error codes the fake uses (WeChat's documented codes where known; marked where assumed):
SIGN_ERROR 401, PARAM_ERROR 400, RESOURCE_NOT_EXISTS 404 (a refund of an unknown order),
ORDER_NOT_EXIST 404 (query or close of an unknown order, as WeChat's query page lists it),
ORDERPAID 403 (prepay of a paid order; close of a paid order, assumed), ORDER_CLOSED 400
(prepay of a closed order, assumed), INVALID_REQUEST 400 for a reused id with different
content, a refund of an unpaid order, and a refund above what is left (WeChat's v2 API
answered INVALID_REQUEST "refund_fee大于可退金额" for the latter; the v3 code is assumed).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tokenmall.payments import Clock, SignedDelivery, from_fen
from tokenmall.payments.wechat import (
    WECHATPAY_NONCE,
    WECHATPAY_SERIAL,
    WECHATPAY_SIGNATURE,
    WECHATPAY_SIGNATURE_TYPE,
    WECHATPAY_TIMESTAMP,
    build_notification,
    encrypt_resource,
    refund_resource,
    sign_message,
    transaction_resource,
    transfer_resource,
    wechat_time,
)

_TRADE_PATH = "/v3/pay/transactions/out-trade-no/"
_REFUND_PATH = "/v3/refund/domestic/refunds"
_AUTH = re.compile(r"^WECHATPAY2-SHA256-RSA2048 (.+)$")
_AUTH_PARAM = re.compile(r'(\w+)="([^"]*)"')
# one merchant's identifiers, shared by the tests that talk to the fake
MCH_ID = "1900000109"
APP_ID = "wxd678efh567hg6787"
MERCHANT_SERIAL = "3775B6A45ACD588826D15E583A95F5DD********"
PLATFORM_SERIAL = "PUB_KEY_ID_0114232134912410000000000000"
API_V3_KEY = "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6"
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
REQUEST_TOLERANCE = timedelta(minutes=5)  # WeChat: "refuses requests made long ago" (assumed 5 min)


class Fault(StrEnum):
    """What goes wrong with the next answers (see :meth:`FakeWeChatPay.fail_next`)."""

    ERROR_500 = "error_500"  # HTTP 500 SYSTEM_ERROR
    DROP = "drop"  # close the connection without answering
    TAMPER = "tamper"  # sign the answer, then change its body
    WRONG_KEY = "wrong_key"  # sign with a key that is not the platform's (right serial)
    UNKNOWN_SERIAL = "unknown_serial"  # sign properly but name a serial nobody knows
    UNSIGNED = "unsigned"  # no Wechatpay-* headers at all
    DEEP_JSON = "deep_json"  # a properly signed body of arrays nested 30,000 deep


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the fake saw it (for tests to assert on)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class _Transaction:
    request: dict[str, Any]
    amount_fen: int
    openid: str
    prepay_id: str
    state: str = "NOTPAY"
    transaction_id: str | None = None
    paid_at: datetime | None = None
    refunded_fen: int = 0


@dataclass
class _Refund:
    out_trade_no: str
    amount_fen: int
    total_fen: int
    refund_id: str
    created_at: datetime
    status: str = "PROCESSING"
    success_time: datetime | None = None


@dataclass
class _Transfer:
    request: dict[str, Any]
    openid: str
    amount_fen: int
    transfer_bill_no: str
    created_at: datetime
    state: str
    package_info: str | None = None
    updated_at: datetime | None = None
    fail_reason: str | None = None
    payee_name: str | None = None  # decrypted user_name, for the tests to check


class _Refusal(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class _Faults:
    pending: list[tuple[Fault, bool]] = field(default_factory=list)


class FakeWeChatPay:
    """WeChat Pay for one merchant: start it, point a client at :attr:`base_url`."""

    def __init__(
        self,
        *,
        merchant_public_key: rsa.RSAPublicKey,
        platform_key: rsa.RSAPrivateKey,
        clock: Clock,
        merchant_serial: str = MERCHANT_SERIAL,
        mch_id: str = MCH_ID,
        app_id: str = APP_ID,
        platform_serial: str = PLATFORM_SERIAL,
        api_v3_key: str = API_V3_KEY,
    ) -> None:
        self.merchant_public_key = merchant_public_key
        self.merchant_serial = merchant_serial
        self.mch_id = mch_id
        self.app_id = app_id
        self.platform_key = platform_key
        """The default signer (notifications, answers to requests that name no key)."""
        self.platform_serial = platform_serial
        self._signing_keys: dict[str, rsa.RSAPrivateKey] = {platform_serial: platform_key}
        """Every key WeChat holds for this merchant, by serial: the public key given here
        and each platform certificate issued since (what ``Wechatpay-Serial`` may name)."""
        self.api_v3_key = api_v3_key
        self.clock = clock
        self.answer_mch_id: str | None = None
        """When set, order query answers name this merchant (a misrouted or forged answer)."""
        self.transfers_need_confirmation = False
        """When True, new transfer bills answer WAIT_USER_CONFIRM with a package_info."""
        self._lock = threading.Lock()
        self._certificates: list[dict[str, Any]] = []  # what GET /v3/certificates lists
        self._transactions: dict[str, _Transaction] = {}
        self._refunds: dict[str, _Refund] = {}
        self._transfers: dict[str, _Transfer] = {}
        self._requests: list[ReceivedRequest] = []
        self._faults = _Faults()
        self._counter = 0
        self._rogue_key: rsa.RSAPrivateKey | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeWeChatPay:
        handler = _handler_for(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeWeChatPay:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- knobs and records ----------------------------------------------------------------------

    def fail_next(
        self, count: int = 1, fault: Fault = Fault.ERROR_500, *, after_processing: bool = True
    ) -> None:
        """Make the next ``count`` requests go wrong.

        ``after_processing`` (the default) applies the request first and then loses or spoils
        the answer: the case where a retry must not do the work twice.
        """
        with self._lock:
            self._faults.pending.extend([(fault, after_processing)] * count)

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    def transaction(self, out_trade_no: str) -> dict[str, Any]:
        with self._lock:
            t = self._transactions[out_trade_no]
            return {"state": t.state, "amount_fen": t.amount_fen, "refunded_fen": t.refunded_fen}

    def refund_count(self) -> int:
        with self._lock:
            return len(self._refunds)

    def transfer_count(self) -> int:
        with self._lock:
            return len(self._transfers)

    def rotate_certificate(self) -> str:
        """WeChat rotates its platform certificate: from now on the new key signs every
        notification and every answer to a request that names no key (``Wechatpay-Serial``),
        and GET /v3/certificates lists it.  Returns its serial."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = self.clock()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=5 * 365))
            .sign(key, hashes.SHA256())
        )
        serial = f"{cert.serial_number:X}"
        pem = cert.public_bytes(serialization.Encoding.PEM)
        with self._lock:
            nonce = f"{self._next():012d}"
            self._certificates.append(
                {
                    "serial_no": serial,
                    "effective_time": wechat_time(now),
                    "expire_time": wechat_time(now + timedelta(days=5 * 365)),
                    "encrypt_certificate": {
                        "algorithm": "AEAD_AES_256_GCM",
                        "nonce": nonce,
                        "associated_data": "certificate",
                        "ciphertext": encrypt_resource(
                            self.api_v3_key, pem, nonce=nonce, associated_data="certificate"
                        ),
                    },
                }
            )
            self.platform_key, self.platform_serial = key, serial
            self._signing_keys[serial] = key
        return serial

    def transfer_payee_name(self, out_bill_no: str) -> str | None:
        """The payee name a transfer carried, as WeChat decrypted it."""
        with self._lock:
            return self._transfers[out_bill_no].payee_name

    # -- what WeChat does later, as notifications -----------------------------------------------

    def pay(self, out_trade_no: str, *, openid: str | None = None) -> SignedDelivery:
        """The payer pays: the order becomes SUCCESS; returns TRANSACTION.SUCCESS."""
        with self._lock:
            t = self._transactions[out_trade_no]
            if t.state == "CLOSED":
                raise ValueError(f"order {out_trade_no} is closed: WeChat would not take payment")
            deadline = t.request.get("time_expire")
            if t.state == "NOTPAY" and deadline and self.clock() > datetime.fromisoformat(deadline):
                raise ValueError(f"order {out_trade_no} is past its time_expire {deadline}")
            if t.state == "NOTPAY":
                t.state = "SUCCESS"
                t.transaction_id = f"42000{self._next():023d}"
                t.paid_at = self.clock()
            assert t.transaction_id is not None
            assert t.paid_at is not None
            resource = transaction_resource(
                order_id=out_trade_no,
                amount=from_fen(t.amount_fen),
                transaction_id=t.transaction_id,
                success_time=t.paid_at,
                mch_id=self.mch_id,
                app_id=self.app_id,
                openid=openid or t.openid,
            )
        return self._notify(resource, "TRANSACTION.SUCCESS")

    def finish_refund(self, out_refund_no: str, *, success: bool = True) -> SignedDelivery:
        """The refund reaches a final state; returns REFUND.SUCCESS or REFUND.ABNORMAL."""
        with self._lock:
            r = self._refunds[out_refund_no]
            if r.status == "PROCESSING":
                r.status = "SUCCESS" if success else "ABNORMAL"
                r.success_time = self.clock()
                if not success:
                    self._transactions[r.out_trade_no].refunded_fen -= r.amount_fen
            t = self._transactions[r.out_trade_no]
            assert t.transaction_id is not None
            assert r.success_time is not None
            resource = refund_resource(
                order_id=r.out_trade_no,
                refund_id=out_refund_no,
                wechat_refund_id=r.refund_id,
                transaction_id=t.transaction_id,
                amount=from_fen(r.amount_fen),
                total=from_fen(r.total_fen),
                success_time=r.success_time,
                refund_status=r.status,
                mch_id=self.mch_id,
            )
            event = "REFUND.SUCCESS" if r.status == "SUCCESS" else "REFUND.ABNORMAL"
        return self._notify(resource, event)

    def finish_transfer(self, out_bill_no: str, *, success: bool = True) -> SignedDelivery:
        """The transfer bill reaches SUCCESS or FAIL; returns MCHTRANSFER.BILL.FINISHED."""
        with self._lock:
            b = self._transfers[out_bill_no]
            if b.state not in ("SUCCESS", "FAIL", "CANCELLED"):
                b.state = "SUCCESS" if success else "FAIL"
                b.updated_at = self.clock()
                b.fail_reason = None if success else "PAYEE_ACCOUNT_ABNORMAL"
            assert b.updated_at is not None
            resource = transfer_resource(
                out_bill_no=out_bill_no,
                transfer_bill_no=b.transfer_bill_no,
                amount=from_fen(b.amount_fen),
                openid=b.openid,
                created_at=b.created_at,
                updated_at=b.updated_at,
                state=b.state,
                mch_id=self.mch_id,
                fail_reason=b.fail_reason,
            )
        return self._notify(resource, "MCHTRANSFER.BILL.FINISHED")

    def _notify(self, resource: dict[str, Any], event_type: str) -> SignedDelivery:
        return build_notification(
            private_key=self.platform_key,
            serial=self.platform_serial,
            api_v3_key=self.api_v3_key,
            resource=resource,
            sent_at=self.clock(),
            event_type=event_type,
        )

    def _next(self) -> int:
        self._counter += 1
        return self._counter

    # -- the HTTP side --------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> _Answer:
        """One request, start to finish (called on the server's threads)."""
        with self._lock:
            fault = self._faults.pending.pop(0) if self._faults.pending else None
            named = {k.lower(): v for k, v in headers.items()}.get(WECHATPAY_SERIAL.lower())
            signer = self._signer(named)
            if fault is not None and not fault[1]:
                answer = self._faulty(
                    fault[0], 500, {"code": "SYSTEM_ERROR", "message": "x"}, signer
                )
            else:
                try:
                    self._authenticate(method, path, headers, body)
                    if named is not None and named not in self._signing_keys:
                        raise _Refusal(
                            400, "PARAM_ERROR", f"Wechatpay-Serial {named!r} is not a key of ours"
                        )
                    status, payload = self._route(method, path, body, headers)
                except _Refusal as exc:
                    status, payload = exc.status, {"code": exc.code, "message": exc.message}
                if fault is None:
                    answer = self._signed(status, payload, key=signer[0], serial=signer[1])
                else:
                    answer = self._faulty(fault[0], status, payload, signer)
            self._requests.append(ReceivedRequest(method, path, headers, body, answer.status))
            return answer

    def _signer(self, named: str | None) -> tuple[rsa.RSAPrivateKey, str]:
        """The key (and its serial) that signs the answer to a request naming ``named``."""
        if named is not None and named in self._signing_keys:
            return self._signing_keys[named], named
        return self.platform_key, self.platform_serial

    def _authenticate(self, method: str, path: str, headers: dict[str, str], body: bytes) -> None:
        """WeChat's check of ``Authorization``; any failure is 401 SIGN_ERROR."""
        lowered = {k.lower(): v for k, v in headers.items()}
        match = _AUTH.match(lowered.get("authorization", ""))
        if match is None:
            raise _Refusal(401, "SIGN_ERROR", "missing or malformed Authorization")
        params = dict(_AUTH_PARAM.findall(match.group(1)))
        if params.get("mchid") != self.mch_id:
            raise _Refusal(401, "SIGN_ERROR", "mchid does not match")
        if params.get("serial_no") != self.merchant_serial:
            raise _Refusal(401, "SIGN_ERROR", "unknown merchant certificate serial_no")
        timestamp, nonce = params.get("timestamp", ""), params.get("nonce_str", "")
        if not timestamp.isdigit() or not nonce:
            raise _Refusal(401, "SIGN_ERROR", "timestamp or nonce_str missing")
        sent = datetime.fromtimestamp(int(timestamp), self.clock().tzinfo)
        if abs(self.clock() - sent) > REQUEST_TOLERANCE:
            raise _Refusal(401, "SIGN_ERROR", "timestamp expired")
        message = f"{method}\n{path}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"
        try:
            signature = base64.b64decode(params.get("signature", ""), validate=True)
            self.merchant_public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        except (binascii.Error, InvalidSignature):
            raise _Refusal(401, "SIGN_ERROR", "signature does not verify") from None

    def _route(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, Any] | None]:
        url = urlsplit(path)
        if method == "GET" and url.path == "/v3/certificates":
            return 200, {"data": list(self._certificates)}
        if method == "GET" and url.path.startswith(_TRADE_PATH):
            mchid = parse_qs(url.query).get("mchid", [""])[0]
            return 200, self._query(url.path.removeprefix(_TRADE_PATH), mchid)
        if method == "GET" and url.path.startswith(_REFUND_PATH + "/"):
            out_refund_no = url.path.removeprefix(_REFUND_PATH + "/")
            if out_refund_no not in self._refunds:
                raise _Refusal(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
            return 200, self._refund_json(out_refund_no, self._refunds[out_refund_no])
        if method != "POST":
            raise _Refusal(404, "RESOURCE_NOT_EXISTS", f"no {method} {path}")
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _Refusal(400, "PARAM_ERROR", "body is not JSON") from None
        if not isinstance(data, dict):
            raise _Refusal(400, "PARAM_ERROR", "body is not a JSON object")
        if path == "/v3/pay/transactions/jsapi":
            return 200, self._jsapi(data)
        if path.startswith(_TRADE_PATH) and path.endswith("/close"):
            self._close(path.removeprefix(_TRADE_PATH).removesuffix("/close"), data)
            return 204, None
        if path == _REFUND_PATH:
            return 200, self._refund(data)
        if path == "/v3/fund-app/mch-transfer/transfer-bills":
            return 200, self._transfer(data, headers)
        raise _Refusal(404, "RESOURCE_NOT_EXISTS", f"no POST {path}")

    def _jsapi(self, data: dict[str, Any]) -> dict[str, Any]:
        if data.get("mchid") != self.mch_id or data.get("appid") != self.app_id:
            raise _Refusal(400, "PARAM_ERROR", "appid and mchid do not match")
        amount = data.get("amount") or {}
        total, openid = amount.get("total"), (data.get("payer") or {}).get("openid")
        if type(total) is not int or total <= 0 or amount.get("currency", "CNY") != "CNY":
            raise _Refusal(400, "PARAM_ERROR", "amount.total must be a positive int of fen")
        if not isinstance(openid, str) or not openid or not data.get("notify_url"):
            raise _Refusal(400, "PARAM_ERROR", "payer.openid and notify_url are required")
        out_trade_no = data.get("out_trade_no")
        if not isinstance(out_trade_no, str) or not out_trade_no:
            raise _Refusal(400, "PARAM_ERROR", "out_trade_no is required")
        existing = self._transactions.get(out_trade_no)
        if existing is not None:
            if existing.request != data:
                raise _Refusal(400, "INVALID_REQUEST", "out_trade_no reused with other content")
            if existing.state == "CLOSED":
                raise _Refusal(400, "ORDER_CLOSED", "订单已关闭")
            if existing.state != "NOTPAY":
                raise _Refusal(403, "ORDERPAID", "the order is already paid")
            return {"prepay_id": existing.prepay_id}
        prepay_id = f"wx{self._next():030d}"
        self._transactions[out_trade_no] = _Transaction(data, total, openid, prepay_id)
        return {"prepay_id": prepay_id}

    def _order(self, out_trade_no: str, mchid: object) -> _Transaction:
        if mchid != self.mch_id:
            raise _Refusal(400, "PARAM_ERROR", "mchid does not match")
        t = self._transactions.get(out_trade_no)
        if t is None:
            raise _Refusal(404, "ORDER_NOT_EXIST", "订单不存在")
        return t

    def _query(self, out_trade_no: str, mchid: str) -> dict[str, Any]:
        t = self._order(out_trade_no, mchid)
        state = "REFUND" if t.state == "SUCCESS" and t.refunded_fen else t.state
        if t.transaction_id is not None and t.paid_at is not None:
            return transaction_resource(
                order_id=out_trade_no,
                amount=from_fen(t.amount_fen),
                transaction_id=t.transaction_id,
                success_time=t.paid_at,
                trade_state=state,
                mch_id=self.answer_mch_id or self.mch_id,
                app_id=self.app_id,
                openid=t.openid,
            )
        return {
            "appid": self.app_id,
            "mchid": self.answer_mch_id or self.mch_id,
            "out_trade_no": out_trade_no,
            "trade_type": "JSAPI",
            "trade_state": state,
            "trade_state_desc": {"NOTPAY": "未支付", "CLOSED": "已关闭"}.get(state, state),
            "payer": {"openid": t.openid},
            "amount": {"total": t.amount_fen, "currency": "CNY"},
        }

    def _close(self, out_trade_no: str, data: dict[str, Any]) -> None:
        t = self._order(out_trade_no, data.get("mchid"))
        if t.state == "SUCCESS":
            raise _Refusal(403, "ORDERPAID", "订单已支付")
        t.state = "CLOSED"

    def _refund(self, data: dict[str, Any]) -> dict[str, Any]:
        out_trade_no, out_refund_no = data.get("out_trade_no"), data.get("out_refund_no")
        amount = data.get("amount") or {}
        refund, total = amount.get("refund"), amount.get("total")
        if not (isinstance(out_trade_no, str) and isinstance(out_refund_no, str)):
            raise _Refusal(400, "PARAM_ERROR", "out_trade_no and out_refund_no are required")
        if type(refund) is not int or type(total) is not int or refund <= 0:
            raise _Refusal(400, "PARAM_ERROR", "amount.refund and amount.total must be fen")
        if amount.get("currency") != "CNY":
            raise _Refusal(400, "PARAM_ERROR", "amount.currency must be CNY")
        existing = self._refunds.get(out_refund_no)
        if existing is not None:
            if (existing.out_trade_no, existing.amount_fen) != (out_trade_no, refund):
                raise _Refusal(400, "INVALID_REQUEST", "out_refund_no reused with other content")
            return self._refund_json(out_refund_no, existing)
        t = self._transactions.get(out_trade_no)
        if t is None:
            raise _Refusal(404, "RESOURCE_NOT_EXISTS", "订单不存在")
        if t.state != "SUCCESS":
            raise _Refusal(400, "INVALID_REQUEST", "订单未支付")
        if total != t.amount_fen:
            raise _Refusal(400, "INVALID_REQUEST", "订单金额与原订单不一致")
        if refund > t.amount_fen - t.refunded_fen:
            raise _Refusal(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额")
        t.refunded_fen += refund
        r = _Refund(out_trade_no, refund, total, f"50300{self._next():024d}", self.clock())
        self._refunds[out_refund_no] = r
        return self._refund_json(out_refund_no, r)

    def _refund_json(self, out_refund_no: str, r: _Refund) -> dict[str, Any]:
        t = self._transactions[r.out_trade_no]
        answer: dict[str, Any] = {
            "refund_id": r.refund_id,
            "out_refund_no": out_refund_no,
            "transaction_id": t.transaction_id,
            "out_trade_no": r.out_trade_no,
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "create_time": wechat_time(r.created_at),
            "status": r.status,
            "funds_account": "AVAILABLE",
            "amount": {
                "total": r.total_fen,
                "refund": r.amount_fen,
                "payer_total": r.total_fen,
                "payer_refund": r.amount_fen,
                "settlement_refund": r.amount_fen,
                "settlement_total": r.total_fen,
                "discount_refund": 0,
                "currency": "CNY",
            },
        }
        if r.success_time is not None:
            answer["success_time"] = wechat_time(r.success_time)
        return answer

    def _transfer(self, data: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        if data.get("appid") != self.app_id:
            raise _Refusal(400, "PARAM_ERROR", "appid does not match")
        payee_name = self._payee_name(data, headers)
        out_bill_no, openid = data.get("out_bill_no"), data.get("openid")
        amount, remark = data.get("transfer_amount"), data.get("transfer_remark")
        if not isinstance(out_bill_no, str) or not re.fullmatch(r"[0-9A-Za-z]{1,32}", out_bill_no):
            raise _Refusal(400, "PARAM_ERROR", "out_bill_no must be 1..32 digits and letters")
        if not isinstance(openid, str) or not openid or type(amount) is not int or amount <= 0:
            raise _Refusal(400, "PARAM_ERROR", "openid and transfer_amount are required")
        if not isinstance(remark, str) or not remark or len(remark) > 32:
            raise _Refusal(400, "PARAM_ERROR", "transfer_remark must be 1..32 characters")
        if amount >= 200_000 and payee_name is None:
            raise _Refusal(400, "PARAM_ERROR", "转账金额>=2000元时,收款用户姓名必填")
        if data.get("transfer_scene_id") != "1000":
            raise _Refusal(403, "NO_AUTH", "transfer scene not enabled for this merchant")
        infos = {
            i.get("info_type"): i.get("info_content")
            for i in data.get("transfer_scene_report_infos") or []
            if isinstance(i, dict)
        }
        for info_type in ("活动名称", "奖励说明"):
            content = infos.get(info_type)
            if not isinstance(content, str) or not content or len(content) > 32:
                raise _Refusal(400, "PARAM_ERROR", f"scene 1000 needs report info {info_type}")
        existing = self._transfers.get(out_bill_no)
        if existing is not None:
            if existing.request != data:
                raise _Refusal(400, "INVALID_REQUEST", "out_bill_no reused with other content")
            return self._transfer_json(out_bill_no, existing)
        number = self._next()
        b = _Transfer(
            data,
            openid,
            amount,
            f"1330000{number:033d}",
            self.clock(),
            "WAIT_USER_CONFIRM" if self.transfers_need_confirmation else "ACCEPTED",
        )
        if self.transfers_need_confirmation:
            b.package_info = f"ABBQO+oYAAABAAAAAAAk{number:08d}"
        b.payee_name = payee_name
        self._transfers[out_bill_no] = b
        return self._transfer_json(out_bill_no, b)

    def _payee_name(self, data: dict[str, Any], headers: dict[str, str]) -> str | None:
        """``user_name``, decrypted with the platform key the ``Wechatpay-Serial`` names."""
        sealed = data.get("user_name")
        if sealed is None:
            return None
        serial = {k.lower(): v for k, v in headers.items()}.get(WECHATPAY_SERIAL.lower())
        key = self._signing_keys.get(serial) if serial is not None else None
        if key is None:
            raise _Refusal(400, "PARAM_ERROR", f"Wechatpay-Serial {serial!r} is not a key of ours")
        sha1 = hashes.SHA1()
        try:
            plain = key.decrypt(
                base64.b64decode(sealed, validate=True),
                padding.OAEP(mgf=padding.MGF1(sha1), algorithm=sha1, label=None),
            )
        except (binascii.Error, ValueError, TypeError):
            raise _Refusal(400, "PARAM_ERROR", "user_name cannot be decrypted") from None
        return plain.decode("utf-8")

    @staticmethod
    def _transfer_json(out_bill_no: str, b: _Transfer) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "out_bill_no": out_bill_no,
            "transfer_bill_no": b.transfer_bill_no,
            "create_time": wechat_time(b.created_at),
            "state": b.state,
        }
        if b.package_info is not None and b.state == "WAIT_USER_CONFIRM":
            answer["package_info"] = b.package_info
        if b.fail_reason is not None:
            answer["fail_reason"] = b.fail_reason
        return answer

    # -- answers --------------------------------------------------------------------------------

    def _signed(
        self,
        status: int,
        payload: dict[str, Any] | None,
        *,
        key: rsa.RSAPrivateKey | None = None,
        serial: str | None = None,
        raw: bytes | None = None,
    ) -> _Answer:
        if raw is not None:
            body = raw
        elif payload is None:
            body = b""
        else:
            body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        timestamp = str(int(self.clock().timestamp()))
        nonce = f"fake{self._next():028d}"
        headers = {
            WECHATPAY_TIMESTAMP: timestamp,
            WECHATPAY_NONCE: nonce,
            WECHATPAY_SERIAL: serial or self.platform_serial,
            WECHATPAY_SIGNATURE: sign_message(key or self.platform_key, timestamp, nonce, body),
            WECHATPAY_SIGNATURE_TYPE: "WECHATPAY2-SHA256-RSA2048",
            "Request-ID": f"08F{self._counter:020d}",
        }
        return _Answer(status, headers, body)

    def _faulty(
        self,
        fault: Fault,
        status: int,
        payload: dict[str, Any] | None,
        signer: tuple[rsa.RSAPrivateKey, str],
    ) -> _Answer:
        key, serial = signer
        if fault is Fault.ERROR_500:
            error = {"code": "SYSTEM_ERROR", "message": "系统错误"}
            return self._signed(500, error, key=key, serial=serial)
        if fault is Fault.DROP:
            return _Answer(0, {}, b"", drop=True)
        if fault is Fault.TAMPER:
            answer = self._signed(status, payload, key=key, serial=serial)
            # Change the first digit (an amount or an id) to another one; the signature stays.
            body = re.sub(
                rb"\d", lambda m: b"1" if m.group() != b"1" else b"2", answer.body, count=1
            )
            return _Answer(status, answer.headers, body)
        if fault is Fault.WRONG_KEY:
            if self._rogue_key is None:
                self._rogue_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return self._signed(status, payload, key=self._rogue_key, serial=serial)
        if fault is Fault.DEEP_JSON:
            deep = b'{"code": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"
            return self._signed(status, None, key=key, serial=serial, raw=deep)
        if fault is Fault.UNKNOWN_SERIAL:
            return self._signed(status, payload, key=key, serial="PUB_KEY_ID_NOBODY_KNOWS")
        answer = self._signed(status, payload, key=key, serial=serial)
        return _Answer(status, {}, answer.body)


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    drop: bool = False


def _handler_for(fake: FakeWeChatPay) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = dict(self.headers.items())
            answer = fake.handle(self.command, self.path, headers, body)
            if answer.drop:
                self.close_connection = True
                return
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        do_GET = do_POST = _serve  # noqa: N815  (http.server's naming)

        def log_message(self, format: str, *args: object) -> None:
            return  # keep test output quiet

    return Handler
