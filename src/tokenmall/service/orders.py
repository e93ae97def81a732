"""Orders of the mall: create, pay, confirm delivery, settle, refund, cancel and expire.

The life of an order (``orders.status``)::

    pending_payment --paid (notification or SP-only payment)--> paid --confirm--> delivered
          |   |                                                  |                  |
          |   +--payment could not be applied (SP short)--> failed  |   return window over
          |   +--cancel--> cancelled                                 |   (settle_due) or operator
          +--unpaid past expires_at--> expired                       +-----> settled
    paid / delivered / settled --refunds adding up to the total--> refunded

With ``settle_days = 0`` an order settles in the transaction that records its payment
(paid -> settled; confirming delivery later only stamps ``delivered_at``).  A partial refund
keeps the status; the order settles (or stays settled) on what is left.

Why it is built this way:

* **Stock** is reserved by the catalog's conditional update in the transaction that inserts
  the order, SKUs in ascending id order (two multi-line orders never wait on each other in a
  cycle), so stock is never oversold; expiry and cancellation give it back in the transaction
  that moves the order out of ``pending_payment`` with a conditional update, so at most once.
* **Money moves only in the ledger** (:class:`~tokenmall.service.ledger.Ledger`), and the
  ledger's unit of work runs on this module's connection: a payment's ``Pay`` (and ``Settle``
  when settle_days is 0), the order's new status and the provider event that caused them
  commit together or not at all.  Ledger keys are ``pay:<ref>``, ``settle:<ref>`` and
  ``refund:<ref>:<refund id>``, so even a repeated call cannot apply an effect twice.
* **Locks in one order**: a transaction that moves value takes the tenant's ledger lock first,
  then order rows; one that does not (create, cancel, expire, start a payment) never takes the
  tenant lock.  So there is no lock cycle on PostgreSQL, and SQLite serialises writers anyway.
* **Provider notifications** are verified (signature, freshness) before anything is read, then
  deduplicated by the primary key of ``provider_events`` inside the transaction that applies
  them: the same notification delivered five times grants once.  A payment that arrives for an
  order that can no longer take it (expired, cancelled, already paid by another attempt, or
  the SP part is no longer in the wallet) is *voided*: recorded, and refunded through the
  provider.  The provider's time of payment decides lateness: a customer who paid before
  ``expires_at`` gets the order even if the notification arrives after it.
* **Provider calls happen after commit** (intents, refunds): a provider is slow and may fail,
  and a database transaction must not wait on it.  Each call is idempotent on an id chosen here
  (``<ref>-<attempt>`` for intents, ``<ref>-r<n>`` / ``<ref>-<attempt>-void`` for refunds), so
  repeating it after a crash is safe; its state is kept on the row (``pending`` until the
  provider accepted it, then ``submitted``, then ``succeeded``/``failed`` by notification).

EP redemption (R4, ``Pay.points``): a payment names the CNY *value* to pay with EP, not a
number of points.  The points are priced when the payment applies (under the tenant's lock, the
fewest points whose sell payout is exactly that value), because the CNY part is fixed when the
intent is created and the price moves before the notification arrives; priced any earlier, the
parts would not add up to the total.  No rule of the engine lowers the price (the property
tests check it after every step), so the member never needs more points than were quoted.
EP-paid value earns no reward at settlement (it came from the pool).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from sqlalchemy import (
    Connection,
    Engine,
    Select,
    bindparam,
    func,
    insert,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError

from tokenmall.domain.economy import Command, Economy, Join, Pay, Refund, Settle
from tokenmall.domain.params import TenantParams
from tokenmall.errors import (
    IdempotencyConflict,
    InsufficientBalance,
    InvalidCommand,
    NotFound,
    TokenmallError,
    UnknownMember,
)
from tokenmall.json_limits import loads_bounded
from tokenmall.money import CNY_PLACES, EP_PLACES, ZERO, atoms, from_atoms, mul, ratio_floor
from tokenmall.payments import (
    Notification,
    NotificationKind,
    NotificationVerifier,
    PaymentError,
    ProviderConfigError,
    SandboxGateway,
    SandboxProvider,
    UnsupportedNotification,
    WeChatPayNotifications,
)
from tokenmall.payments.base import Clock, system_clock
from tokenmall.payments.errors import (
    PaymentStateError,
    ProviderRefused,
    ProviderUnavailable,
    UnknownPayment,
)
from tokenmall.payments.wechat import (
    PUBLIC_KEY_ID_PREFIX,
    load_merchant_key,
    load_platform_key,
)
from tokenmall.payments.wechat_api import WeChatPayApi
from tokenmall.service import catalog, members
from tokenmall.service.errors import Conflict, InvalidCursor, OutOfStock
from tokenmall.service.ledger import Ledger, Outcome
from tokenmall.service.pages import MAX_LIMIT, Page, fetch_page
from tokenmall.service.reads import tenant_params as _params
from tokenmall.store import schema as s
from tokenmall.store.db import read_only
from tokenmall.store.rows import insert_row, update_by_key

__all__ = [
    "MAX_LINES",
    "MAX_ORDER_TOTAL",
    "MAX_QUANTITY",
    "ORDER_STATUSES",
    "PAYMENT_GRACE",
    "NotificationResult",
    "Order",
    "OrderLine",
    "OrderRefund",
    "OrderService",
    "OrderStateError",
    "Payment",
    "PaymentHub",
    "ProviderEvent",
    "ProviderNotConfigured",
    "SandboxCompletion",
    "SettleReport",
    "WeChatConfig",
    "expire_orders",
    "settle_due",
]

log = logging.getLogger("tokenmall.orders")

ORDER_STATUSES: Final = s.ORDER_STATUSES
MAX_LINES: Final = 50
MAX_QUANTITY: Final = 10_000
# CNY per order: far below the ledger's 10^12 cap, and what a provider's 64-bit fen can carry
MAX_ORDER_TOTAL: Final = Decimal("1000000000")
_FEN_PLACES: Final = 2
_FEN_PER_ATOM: Final = 10 ** (CNY_PLACES - _FEN_PLACES)
_CNY_EXP: Final = Decimal(1).scaleb(-CNY_PLACES)
_EP_EXP: Final = Decimal(1).scaleb(-EP_PLACES)
_FEN_EXP: Final = Decimal("0.01")
_DAY: Final = 86_400.0
_REF_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_REFUNDABLE: Final = ("paid", "delivered", "settled")  # statuses a refund may start from
_JOB_CHUNK: Final = 200
_SANDBOX_DRAIN_ROUNDS: Final = 10
WECHAT_API: Final = "https://api.mch.weixin.qq.com"
CERTIFICATE_REFRESH: Final = 86_400.0  # the scheduler asks for WeChat's certificates daily
PAYMENT_GRACE: Final = 900.0
"""Seconds past ``expires_at`` that an order with an open WeChat payment stays unexpired.

A customer who paid before the deadline gets the order even if WeChat's notification comes
late (its retries: 15 s, 15 s, 30 s, 3 min, 10 min, ...), or never and the scheduler's query
(:meth:`OrderService.reconcile_payments`) finds the payment instead: expiring at the deadline
would void and refund a payment made in time.  Past the grace the order expires anyway, and a
payment that still arrives is voided and refunded."""

Provider = Literal["sandbox", "wechat"]
Handler = Callable[[Connection, int, Notification], tuple[str, str | None]]


class _HandedOver(Exception):
    """A sandbox notification given to the caller instead of delivered (not acknowledged)."""


class OrderStateError(Conflict):
    """The order's state does not allow this (pay a cancelled order, refund an unpaid one)."""

    code = "order_state"


class ProviderNotConfigured(Conflict):
    """The tenant has not configured this payment provider."""

    code = "provider_not_configured"


# ----------------------------------------------------------------------------- read models


@dataclass(frozen=True, slots=True)
class OrderLine:
    sku_id: int
    product_id: int
    merchant_id: int
    name: str
    quantity: int
    unit_price: Decimal
    pool_amount: Decimal | None  # per unit, when the product overrides the tenant's rate
    fund_amount: Decimal | None

    @property
    def amount(self) -> Decimal:
        return self.unit_price * self.quantity


@dataclass(frozen=True, slots=True)
class Payment:
    id: int
    order_ref: str
    attempt: int
    provider: str
    provider_order_id: str
    intent_id: str | None
    cny: Decimal
    sp: Decimal
    points_value: Decimal  # CNY paid with EP, priced when the payment applies (R4)
    status: str
    note: str | None
    refund_status: str
    provider_refund_id: str | None
    created_at: float
    updated_at: float
    # What the mini-program passes to wx.requestPayment (WeChat JSAPI with a payer openid):
    # made by the call that starts or re-asks the payment, never stored.
    pay_params: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class OrderRefund:
    refund_id: str
    order_ref: str
    amount: Decimal
    cny: Decimal
    sp: Decimal
    phase: str
    reason: str | None
    provider_status: str
    provider_refund_id: str | None
    ledger_seq: int
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """One provider notification (or query result) as applied: what it was and what it did."""

    provider: str
    event_id: str
    kind: str
    provider_order_id: str | None
    amount: Decimal
    outcome: str
    detail: str | None
    received_at: float


@dataclass(frozen=True, slots=True)
class Order:
    id: int
    ref: str
    client_ref: str | None
    member: str
    status: str
    total: Decimal
    refunded: Decimal
    paid_cny: Decimal | None
    paid_sp: Decimal | None
    paid_points_value: Decimal | None
    created_at: float
    expires_at: float
    paid_at: float | None
    delivered_at: float | None
    settle_at: float | None
    settled_at: float | None
    closed_at: float | None
    close_reason: str | None
    settle_error: str | None
    lines: list[OrderLine] = field(default_factory=list)
    paid_points: Decimal | None = None  # EP redeemed (burned) by the payment
    payments: list[Payment] = field(default_factory=list)
    refunds: list[OrderRefund] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class NotificationResult:
    """What one delivery of a provider notification did (``duplicate``: nothing, again)."""

    event_id: str
    kind: str
    outcome: str
    duplicate: bool
    order_ref: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class SandboxCompletion:
    """A sandbox intent paid (or failed) by the 'customer', and the notifications it sent."""

    intent_id: str
    status: str
    deliveries: list[tuple[dict[str, str], bytes]]
    results: list[NotificationResult]


@dataclass(frozen=True, slots=True)
class SettleReport:
    settled: int
    failed: list[tuple[int, str, str]]  # (tenant id, order ref, reason)


@dataclass(frozen=True, slots=True)
class WeChatConfig:
    configured: bool
    mch_id: str | None = None
    serials: list[str] = field(default_factory=list)
    updated_at: float | None = None
    updated_by: str | None = None
    # outbound calls (JSAPI prepay, refunds, transfers) are possible
    outbound: bool = False
    app_id: str | None = None
    merchant_serial: str | None = None
    notify_url: str | None = None
    api_base_url: str | None = None


# ----------------------------------------------------------------------------- small helpers


def _fen(amount: Decimal) -> int:
    return atoms(amount, _FEN_PLACES)


def _cny(fen: int) -> Decimal:
    return from_atoms(fen, _FEN_PLACES).quantize(Decimal("0.01"))


def _opt_cny(fen: int | None) -> Decimal | None:
    return None if fen is None else _cny(fen)


def _ts(now: float | datetime | None) -> float:
    if now is None:
        return time.time()
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("now must be an aware datetime")
        return now.timestamp()
    return float(now)


def check_ref(value: str, what: str) -> str:
    """Ids callers choose (client order ids, refund ids): they go into URLs and provider ids."""
    if not _REF_RE.fullmatch(value):
        raise InvalidCommand(
            f"{what} {value!r} must be 1-64 letters, digits or _.:- (starting with a letter "
            "or digit)"
        )
    return value


# The hot statements, built once with bound parameters: building a Core statement and its
# cache key on every call cost about 140 us of CPU here against 40 us to execute a built one,
# and a paid order runs some thirty of them (bench/README.md, "2026-11-26, second session").
_o, _py, _ln = s.orders.c, s.payments.c, s.order_lines.c
_t = s.tenants.c
_ORDER_BY_REF = select(s.orders).where(_o.tenant_id == bindparam("t"), _o.ref == bindparam("ref"))
_ORDER_BY_ID = select(s.orders).where(_o.tenant_id == bindparam("t"), _o.id == bindparam("id"))
_LINES = (
    select(s.order_lines)
    .where(_ln.tenant_id == bindparam("t"), _ln.order_id == bindparam("id"))
    .order_by(_ln.line_no)
)
_TENANT_SEQ = select(s.tenant_state.c.seq).where(s.tenant_state.c.tenant_id == bindparam("t"))
_PAYMENT_BY_PROVIDER_ID = select(s.payments).where(
    _py.tenant_id == bindparam("t"),
    _py.provider == bindparam("provider"),
    _py.provider_order_id == bindparam("pid"),
)
_ORDER_OF_INTENT = (
    select(_o.ref, _o.member)
    .select_from(
        s.payments.join(s.orders, (_o.tenant_id == _py.tenant_id) & (_o.id == _py.order_id))
    )
    .where(
        _py.tenant_id == bindparam("t"), _py.provider == "sandbox", _py.intent_id == bindparam("i")
    )
)


_LAST_ATTEMPT = select(func.max(_py.attempt)).where(
    _py.tenant_id == bindparam("t"), _py.order_id == bindparam("id")
)
_WAITING = select(s.payments).where(
    _py.tenant_id == bindparam("t"),
    _py.order_id == bindparam("id"),
    _py.provider == bindparam("provider"),
    _py.status == "requires_payment",
    _py.sp_fen == bindparam("sp"),
    _py.cny_fen == bindparam("cny"),
)
_PAYMENT_BY_ID = select(s.payments).where(
    _py.tenant_id == bindparam("t"), _py.id == bindparam("id")
)
_PAYMENTS_OF_ORDER = (
    select(s.payments)
    .where(_py.tenant_id == bindparam("t"), _py.order_id == bindparam("id"))
    .order_by(_py.attempt)
)
_REFUNDS_OF_ORDER = (
    select(s.order_refunds)
    .where(
        s.order_refunds.c.tenant_id == bindparam("t"), s.order_refunds.c.order_id == bindparam("id")
    )
    .order_by(s.order_refunds.c.id)
)
_ESCROW_POINTS = select(s.escrows.c.ep_points).where(
    s.escrows.c.tenant_id == bindparam("t"), s.escrows.c.order_ref == bindparam("ref")
)
# a WeChat payment of the order that may still be paid (the expiry waits for it, PAYMENT_GRACE)
_OPEN_WECHAT_OF_ORDER = select(_py.id).where(
    _py.tenant_id == bindparam("t"),
    _py.order_id == bindparam("id"),
    _py.provider == "wechat",
    _py.status == "requires_payment",
)


def _due_for_check(q: Select[Any], checked_at: Any, row_id: Any) -> Select[Any]:
    """``q`` limited to rows not asked about since ``:checked``, least recently asked first,
    at most ``:limit`` (the reconciliation's queries of payments and refunds)."""
    return (
        q.where(checked_at.is_(None) | (checked_at <= bindparam("checked")))
        .order_by(func.coalesce(checked_at, 0.0), row_id)
        .limit(bindparam("limit"))
    )


# open WeChat payments with what reconciling one needs to know of its order
_OPEN_WECHAT = (
    select(
        _py.id,
        _py.provider_order_id,
        _o.ref,
        _o.status.label("order_status"),
        _o.expires_at,
    )
    .select_from(
        s.payments.join(s.orders, (_o.tenant_id == _py.tenant_id) & (_o.id == _py.order_id))
    )
    .where(
        _py.tenant_id == bindparam("t"),
        _py.provider == "wechat",
        _py.status == "requires_payment",
    )
)
_TO_RECONCILE = _due_for_check(
    _OPEN_WECHAT.where(_py.created_at <= bindparam("created")), _py.checked_at, _py.id
)
_OPEN_WECHAT_OF = _OPEN_WECHAT.where(_py.order_id == bindparam("id")).order_by(_py.id)
_PAYMENT_CHECKED = (
    update(s.payments)
    .where(_py.tenant_id == bindparam("t"), _py.id == bindparam("b_id"))
    .values(checked_at=bindparam("at"))
)
_rf = s.order_refunds.c
# WeChat refunds submitted a while ago and still without their notification
_REFUNDS_TO_CHECK = _due_for_check(
    select(_rf.id, _rf.provider_refund_id)
    .select_from(
        s.order_refunds.join(
            s.payments, (_py.tenant_id == _rf.tenant_id) & (_py.id == _rf.payment_id)
        )
    )
    .where(
        _rf.tenant_id == bindparam("t"),
        _rf.provider_status == "submitted",
        _py.provider == "wechat",
        _rf.updated_at <= bindparam("since"),
    ),
    _rf.checked_at,
    _rf.id,
)
_VOID_REFUNDS_TO_CHECK = _due_for_check(
    select(_py.id, _py.provider_refund_id).where(
        _py.tenant_id == bindparam("t"),
        _py.provider == "wechat",
        _py.refund_status == "submitted",
        _py.updated_at <= bindparam("since"),
    ),
    _py.checked_at,
    _py.id,
)
_REFUND_CHECKED = (
    update(s.order_refunds)
    .where(_rf.tenant_id == bindparam("t"), _rf.id == bindparam("b_id"))
    .values(checked_at=bindparam("at"))
)
_PAYMENT_PAID = (
    update(s.payments)
    .where(_py.tenant_id == bindparam("t"), _py.id == bindparam("b_id"))
    .values(status="paid", updated_at=bindparam("at"))
)
_EVENT = select(s.provider_events).where(
    s.provider_events.c.tenant_id == bindparam("t"),
    s.provider_events.c.provider == bindparam("provider"),
    s.provider_events.c.event_id == bindparam("event"),
)
_k, _p = s.skus.c, s.products.c
_SKU_INFO = (
    select(
        _k.id,
        _k.product_id,
        _k.name,
        _k.price_fen,
        _p.merchant_id,
        _p.name.label("product_name"),
        _p.pool_amount_fen,
        _p.fund_amount_fen,
    )
    .select_from(s.skus.join(s.products, (_p.tenant_id == _k.tenant_id) & (_p.id == _k.product_id)))
    .where(_k.tenant_id == bindparam("t"), _k.id.in_(bindparam("ids", expanding=True)))
)


def _locked(conn: Connection, q: Select[Any]) -> Select[Any]:
    """``q`` with ``FOR UPDATE`` where rows are locked (SQLite: every writing transaction
    began IMMEDIATE, store.db, so it holds the database lock already)."""
    return q if conn.dialect.name == "sqlite" else q.with_for_update()


def _lock_tenant(conn: Connection, tenant_id: int) -> None:
    """The ledger's per-tenant lock, taken before any order row (see the module docstring)."""
    if conn.execute(_locked(conn, _TENANT_SEQ), {"t": tenant_id}).first() is None:
        raise NotFound(f"no tenant {tenant_id}")


def _tenant_ids(conn: Connection, tenant_id: int | None) -> list[int]:
    if tenant_id is not None:
        return [tenant_id]
    return [int(t) for t in conn.execute(select(s.tenants.c.id).order_by(s.tenants.c.id)).scalars()]


def _submit(
    ledger: Ledger, conn: Connection, tenant_id: int, items: Sequence[tuple[str, Command]]
) -> list[Outcome]:
    # The ledger's unit of work on *our* connection: the order's rows and the money they move
    # commit together.  ``Ledger.submit`` would open a transaction of its own.
    return ledger._submit(conn, tenant_id, items)


_REJECTED: Mapping[str, type[TokenmallError]] = {
    InsufficientBalance.code: InsufficientBalance,
    UnknownMember.code: UnknownMember,
    NotFound.code: NotFound,
    IdempotencyConflict.code: IdempotencyConflict,
}


def _raise_rejected(outcome: Outcome) -> None:
    if outcome.status == "rejected":
        cls = _REJECTED.get(outcome.error_code or "", InvalidCommand)
        raise cls(outcome.error or "refused by the ledger")


# ----------------------------------------------------------------------------- providers


@dataclass(slots=True)
class _Sandbox:
    gateway: SandboxGateway
    provider: SandboxProvider
    lock: threading.RLock


class PaymentHub:
    """The payment providers of every tenant, for one process.

    Sandbox: one :class:`SandboxGateway` per tenant, in memory (it plays the provider), with a
    secret derived from the service's secret key, so every process of a deployment verifies
    the same signatures; intents live only in the process that created them.  The gateway is
    not thread-safe, so each has a re-entrant lock (re-entrant: delivering a notification runs
    the handler, which may ask the same gateway for a refund).
    WeChat Pay: the verifier is built from the tenant's ``payment_settings`` row.
    """

    def __init__(self, secret: str | bytes, *, clock: Clock = system_clock) -> None:
        self._secret = secret.encode() if isinstance(secret, str) else secret
        self._clock = clock
        self._sandboxes: dict[str, _Sandbox] = {}
        self._wechat: dict[int, tuple[float, _WeChat]] = {}
        self._lock = threading.Lock()

    def sandbox_secret(self, tenant: str) -> bytes:
        return hmac.new(self._secret, b"tokenmall-sandbox\x00" + tenant.encode(), "sha256").digest()

    def sandbox(self, tenant: str) -> _Sandbox:
        with self._lock:
            box = self._sandboxes.get(tenant)
            if box is None:
                gateway = SandboxGateway(tenant, self.sandbox_secret(tenant), clock=self._clock)
                box = _Sandbox(gateway, SandboxProvider(gateway), threading.RLock())
                self._sandboxes[tenant] = box
            return box

    def _wechat_entry(self, conn: Connection, tenant_id: int) -> _WeChat | None:
        p = s.payment_settings.c
        row = conn.execute(
            select(p.config, p.updated_at).where(p.tenant_id == tenant_id, p.provider == "wechat")
        ).first()
        if row is None:
            return None
        with self._lock:
            cached = self._wechat.get(tenant_id)
            if cached is not None and cached[0] == row.updated_at:
                return cached[1]
        entry = _wechat_entry(json.loads(row.config), self._clock)
        with self._lock:
            self._wechat[tenant_id] = (row.updated_at, entry)
        return entry

    def wechat(self, conn: Connection, tenant_id: int) -> WeChatPayNotifications | None:
        """The verifier of the tenant's WeChat Pay notifications (None: not configured)."""
        entry = self._wechat_entry(conn, tenant_id)
        return None if entry is None else entry.verifier

    def wechat_api(self, conn: Connection, tenant_id: int) -> WeChatPayApi | None:
        """The tenant's outbound WeChat Pay client (None: notifications only, or none)."""
        entry = self._wechat_entry(conn, tenant_id)
        return None if entry is None else entry.api


@dataclass(frozen=True, slots=True)
class _WeChat:
    verifier: WeChatPayNotifications
    api: WeChatPayApi | None


def _wechat_entry(config: Mapping[str, Any], clock: Clock) -> _WeChat:
    """The verifier and, with the merchant's key, the client of a stored configuration
    (checks every key: :class:`ProviderConfigError` for one that is not usable)."""
    keys = {serial: load_platform_key(pem.encode()) for serial, pem in config["keys"].items()}
    verifier = WeChatPayNotifications(
        platform_keys=keys,
        api_v3_key=config["api_v3_key"],
        mch_id=config.get("mch_id"),
        clock=clock,
    )
    out = config.get("outbound")
    if not out:
        return _WeChat(verifier, None)
    api = WeChatPayApi(
        mch_id=config["mch_id"],
        app_id=out["app_id"],
        merchant_key=load_merchant_key(out["merchant_private_key"].encode()),
        merchant_serial=out["merchant_serial"],
        platform_keys=keys,
        notify_url=out["notify_url"],
        base_url=out["api_base_url"],
        clock=clock,
    )
    return _WeChat(verifier, api)


def _check_api_url(url: str) -> str:
    """WeChat Pay's address: https, or plain http to this machine (a local gateway or a test
    double).  The notify URL is checked by :class:`WeChatPayApi` (WeChat's own rules)."""
    parts = urlsplit(url)
    local = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        raise ProviderConfigError(f"api_base_url must be an https URL, got {url!r}")
    if not parts.hostname or parts.query:
        raise ProviderConfigError(f"api_base_url must have a host and no query string: {url!r}")
    return url.rstrip("/")


@dataclass(frozen=True, slots=True)
class _ProviderRefund:
    """A refund to ask of a provider once the transaction that decided it has committed."""

    table: Literal["payments", "order_refunds"]
    row_id: int
    provider: str
    intent_id: str
    refund_id: str
    amount: Decimal
    total: Decimal  # the payment's CNY: WeChat's refund request states the original amount

    @classmethod
    def of_void(cls, pay: Any, refund_id: str) -> _ProviderRefund:
        """All the CNY of a voided payment (its ``payments`` row) back, as ``refund_id``."""
        cny = _cny(pay.cny_fen)
        return cls("payments", pay.id, pay.provider, pay.intent_id, refund_id, cny, cny)


# ----------------------------------------------------------------------------- row mapping


_EVENT_CURSOR = "e1:"


def _encode_event_cursor(row: Any) -> str:
    """The keyset cursor of a provider event: (received_at, provider, event_id), opaque."""
    raw = _EVENT_CURSOR + json.dumps([row.received_at, row.provider, row.event_id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_event_cursor(cursor: str) -> tuple[float, str, str]:
    bad = InvalidCursor("cursor is not one this service handed out")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith(_EVENT_CURSOR):
            raise bad
        at, provider, event_id = loads_bounded(raw[len(_EVENT_CURSOR) :])
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError):
        raise bad from None
    if not (
        isinstance(at, float | int)
        and not isinstance(at, bool)
        and math.isfinite(at)
        and isinstance(provider, str)
        and isinstance(event_id, str)
    ):
        raise bad
    return float(at), provider, event_id


def _line(row: Any) -> OrderLine:
    return OrderLine(
        sku_id=row.sku_id,
        product_id=row.product_id,
        merchant_id=row.merchant_id,
        name=row.name,
        quantity=row.quantity,
        unit_price=_cny(row.unit_price_fen),
        pool_amount=_opt_cny(row.pool_unit_fen),
        fund_amount=_opt_cny(row.fund_unit_fen),
    )


def _payment(row: Any, ref: str, total_fen: int) -> Payment:
    return Payment(
        id=row.id,
        order_ref=ref,
        attempt=row.attempt,
        provider=row.provider,
        provider_order_id=row.provider_order_id,
        intent_id=row.intent_id,
        cny=_cny(row.cny_fen),
        sp=_cny(row.sp_fen),
        points_value=_cny(total_fen - row.cny_fen - row.sp_fen),
        status=row.status,
        note=row.note,
        refund_status=row.refund_status,
        provider_refund_id=row.provider_refund_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _refund(row: Any, ref: str) -> OrderRefund:
    return OrderRefund(
        refund_id=row.refund_ref,
        order_ref=ref,
        amount=_cny(row.amount_fen),
        cny=_cny(row.cny_fen),
        sp=_cny(row.sp_fen),
        phase=row.phase,
        reason=row.reason,
        provider_status=row.provider_status,
        provider_refund_id=row.provider_refund_id,
        ledger_seq=row.ledger_seq,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _order(row: Any, lines: list[OrderLine] | None = None) -> Order:
    return Order(
        id=row.id,
        ref=row.ref,
        client_ref=row.client_ref,
        member=row.member,
        status=row.status,
        total=_cny(row.total_fen),
        refunded=_cny(row.refunded_fen),
        paid_cny=_opt_cny(row.paid_cny_fen),
        paid_sp=_opt_cny(row.paid_sp_fen),
        paid_points_value=None
        if row.paid_cny_fen is None
        else _cny(row.total_fen - row.paid_cny_fen - row.paid_sp_fen),
        created_at=row.created_at,
        expires_at=row.expires_at,
        paid_at=row.paid_at,
        delivered_at=row.delivered_at,
        settle_at=row.settle_at,
        settled_at=row.settled_at,
        closed_at=row.closed_at,
        close_reason=row.close_reason,
        settle_error=row.settle_error,
        lines=lines or [],
    )


def _order_row(conn: Connection, tenant_id: int, ref: str, *, lock: bool = False) -> Any:
    q = _locked(conn, _ORDER_BY_REF) if lock else _ORDER_BY_REF
    row = conn.execute(q, {"t": tenant_id, "ref": ref}).first()
    if row is None:
        raise NotFound(f"no order {ref!r}")
    return row


def _order_by_id(conn: Connection, tenant_id: int, order_id: int, *, lock: bool = False) -> Any:
    q = _locked(conn, _ORDER_BY_ID) if lock else _ORDER_BY_ID
    return conn.execute(q, {"t": tenant_id, "id": order_id}).one()


def _lines(conn: Connection, tenant_id: int, order_id: int) -> list[Any]:
    return list(conn.execute(_LINES, {"t": tenant_id, "id": order_id}))


def _set_order(conn: Connection, tenant_id: int, order_id: int, **values: Any) -> None:
    update_by_key(conn, s.orders, {"tenant_id": tenant_id, "id": order_id}, values)


def _close_unpaid(
    conn: Connection,
    tenant_id: int,
    order_ids: Sequence[int],
    *,
    status: str,
    reason: str,
    now: float,
) -> list[int]:
    """pending_payment -> ``status`` for each order still pending, giving its stock back;
    returns the ids it closed.

    The conditional update is what makes the release happen once: of two transactions closing
    the same order (the expiry job and a late payment, say) only one sees ``pending_payment``.
    Locks are taken in one global order, every order row first (ascending id) and then every
    SKU row (ascending id, quantities summed): a transaction that held a SKU while waiting
    for an order row could deadlock with a payment holding that order and releasing the SKU.
    """
    o = s.orders.c
    closed = []
    for order_id in sorted(order_ids):
        done = conn.execute(
            update(s.orders)
            .where(o.tenant_id == tenant_id, o.id == order_id, o.status == "pending_payment")
            .values(status=status, closed_at=now, close_reason=reason)
        )
        if done.rowcount == 1:
            closed.append(order_id)
    for sku_id, units in _units_per_sku(conn, tenant_id, closed):
        catalog.release_stock(conn, tenant_id, sku_id, units)
    return closed


def _units_per_sku(conn: Connection, tenant_id: int, order_ids: list[int]) -> list[tuple[int, int]]:
    """(SKU id, units) over the lines of ``order_ids``, in ascending SKU id (the lock order)."""
    if not order_ids:
        return []
    ln = s.order_lines.c
    per_sku = conn.execute(
        select(ln.sku_id, func.sum(ln.quantity).label("units"))
        .where(ln.tenant_id == tenant_id, ln.order_id.in_(order_ids))
        .group_by(ln.sku_id)
        .order_by(ln.sku_id)
    )
    return [(int(sku_id), int(units)) for sku_id, units in per_sku]


def _restock(conn: Connection, tenant_id: int, order_id: int, ref: str) -> None:
    """A fully refunded order that was never delivered gives its units back to stock.

    Once only: it runs in the transaction that moves the order to ``refunded`` (its row is
    locked, and a refunded order refunds no more).  Refunds of delivered goods, and partial
    refunds (money, not units), leave stock alone: the operator decides what came back to the
    shelf.  SKU rows are locked in ascending id, after the order row, as in
    :func:`_close_unpaid`.  A SKU that would go over the stock ceiling keeps what it has (the
    refund itself must not fail on that); the log says so.
    """
    for sku_id, units in _units_per_sku(conn, tenant_id, [order_id]):
        try:
            catalog.release_stock(conn, tenant_id, sku_id, units)
        except InvalidCommand as exc:
            log.warning(
                "order %s refunded; %s units of SKU %s not restocked: %s", ref, units, sku_id, exc
            )


def _fail_open_payment(
    conn: Connection,
    tenant_id: int,
    payment_id: int,
    note: str,
    now: float,
    *,
    checked_at: float | None = None,
) -> bool:
    """requires_payment -> failed (the order stays open for another attempt); False if the
    payment had moved on already.  ``checked_at``: the provider was asked at that time."""
    values: dict[str, Any] = {"status": "failed", "note": note[:300], "updated_at": now}
    if checked_at is not None:
        values["checked_at"] = checked_at
    done = conn.execute(
        update(s.payments)
        .where(
            _py.tenant_id == tenant_id,
            _py.id == payment_id,
            _py.status == "requires_payment",
        )
        .values(values)
    )
    return bool(done.rowcount == 1)


def _awaits_provider(conn: Connection, tenant_id: int, row: Any, at: float) -> bool:
    """``row`` is past ``expires_at`` but within :data:`PAYMENT_GRACE` of it with an open
    WeChat payment: its payment may have been made in time and not be known here yet."""
    return at < row.expires_at + PAYMENT_GRACE and (
        conn.execute(_OPEN_WECHAT_OF_ORDER, {"t": tenant_id, "id": row.id}).first() is not None
    )


def _expire_if_due(
    conn: Connection, tenant_id: int, row: Any, at: float, *, grace: bool = True
) -> Any:
    """Lazy expiry: an unpaid order touched after ``expires_at`` expires now (with ``grace``,
    not while an open WeChat payment may still turn out paid: :data:`PAYMENT_GRACE`)."""
    if row.status == "pending_payment" and row.expires_at <= at:
        if grace and _awaits_provider(conn, tenant_id, row, at):
            return row
        _close_unpaid(
            conn, tenant_id, [row.id], status="expired", reason="not paid in time", now=at
        )
        return _order_by_id(conn, tenant_id, row.id)
    return row


def _settle_command(
    conn: Connection,
    tenant_id: int,
    row: Any,
    params: TenantParams,
    rewarded_fen: int | None = None,
) -> Settle:
    """Settle with the products' per-unit pool/dividend amounts, if any line has them.

    A line without an override contributes its amount times the tenant's rate, so a mixed
    order is priced line by line.  The sums are scaled (cut down) to the part of the order
    that earns rewards, as the ledger scales its rate-based amounts: the CNY and SP paid
    (``rewarded_fen``; EP redeemed earn nothing) and what is left after refunds.
    """
    lines = _lines(conn, tenant_id, row.id)
    has_pool = any(ln.pool_unit_fen is not None for ln in lines)
    has_fund = any(ln.fund_unit_fen is not None for ln in lines)
    if not has_pool and not has_fund:
        return Settle(row.ref)
    total = Decimal(row.total_fen)
    left = total - Decimal(row.refunded_fen)
    if rewarded_fen is None:
        rewarded_fen = int(row.paid_cny_fen or 0) + int(row.paid_sp_fen or 0)
    share = mul(left, Decimal(rewarded_fen))

    def summed(unit_col: str, rate: Decimal) -> Decimal:
        acc = ZERO
        for ln in lines:
            unit = getattr(ln, unit_col)
            if unit is not None:
                acc += _cny(unit) * ln.quantity
            else:
                acc += mul(_cny(ln.unit_price_fen) * ln.quantity, rate)
        return ratio_floor(mul(acc, share), mul(total, total), _CNY_EXP)

    return Settle(
        row.ref,
        pool_amount=summed("pool_unit_fen", params.pool_rate) if has_pool else None,
        fund_amount=summed("fund_unit_fen", params.dividend_rate) if has_fund else None,
    )


def _world_cny_fen(conn: Connection, tenant_id: int, seq: int) -> int:
    """CNY a ledger transaction paid back to the payer (credits of ``world``), in fen."""
    t = s.transfers.c
    total = conn.execute(
        select(func.coalesce(func.sum(t.amount), 0)).where(
            t.tenant_id == tenant_id, t.seq == seq, t.asset == "CNY", t.credit == "world"
        )
    ).scalar_one()
    fen, rest = divmod(int(total), _FEN_PER_ATOM)
    if rest:  # pragma: no cover - the ledger refunds whole fen
        raise InvalidCommand(f"ledger transaction {seq} paid back a fraction of a fen")
    return int(fen)


# ----------------------------------------------------------------------------- the service


class OrderService:
    """The order flow of every tenant; one per process (it holds the :class:`PaymentHub`).

    ``clock`` is the service's time (unix seconds), injectable so tests can move it.
    ``sandbox``: whether the sandbox provider may be used.  It lets anyone who can start a
    payment also "pay" it, so a production service turns it off.
    ``handlers`` maps notification kinds to handlers; payouts (withdrawals) plug theirs in
    here: ``handler(conn, tenant_id, notification) -> (outcome, detail)``, run inside the
    transaction that records the event, after the tenant's lock.
    """

    def __init__(
        self,
        engine: Engine,
        hub: PaymentHub,
        *,
        clock: Callable[[], float] = time.time,
        sandbox: bool = True,
    ) -> None:
        self.engine = engine
        self.hub = hub
        self.sandbox = sandbox
        self.ledger = Ledger(engine)
        self.clock = clock
        self.handlers: dict[NotificationKind, Handler] = {}
        # tenant id -> when this process last asked WeChat for its platform certificates
        self._certificates_checked: dict[int, float] = {}

    # ------------------------------------------------------------------ create and read

    def create_order(
        self,
        tenant_id: int,
        *,
        member: str,
        lines: Sequence[tuple[int, int]],
        client_ref: str | None = None,
    ) -> Order:
        """An order of ``lines`` ((SKU id, quantity), ...) for ``member``, stock reserved.

        With ``client_ref`` creating is safe to retry: the same id and the same content return
        the first order, the same id with other content is refused (409).
        """
        members.check_member_code(member)
        if client_ref is not None:
            check_ref(client_ref, "client_ref")
        if not 1 <= len(lines) <= MAX_LINES:
            raise InvalidCommand(f"an order has 1 to {MAX_LINES} lines")
        if len({sku for sku, _ in lines}) != len(lines):
            raise InvalidCommand("each SKU appears on one line only (add up the quantities)")
        for _, qty in lines:
            if isinstance(qty, bool) or not 1 <= qty <= MAX_QUANTITY:
                raise InvalidCommand(f"quantity must be an integer from 1 to {MAX_QUANTITY}")
        digest = hashlib.sha256(
            json.dumps({"member": member, "lines": [list(x) for x in lines]}).encode()
        ).hexdigest()
        try:
            with self.engine.begin() as conn:
                if client_ref is not None:
                    found = self._by_client_ref(conn, tenant_id, client_ref, digest)
                    if found is not None:
                        return found
                return self._insert_order(
                    conn,
                    tenant_id,
                    member=member,
                    lines=lines,
                    client_ref=client_ref,
                    digest=digest,
                )
        except IntegrityError:
            if client_ref is None:
                raise
            # created concurrently with the same client_ref: answer as for a retry
            with read_only(self.engine).connect() as conn:
                found = self._by_client_ref(conn, tenant_id, client_ref, digest)
            if found is None:
                raise
            return found

    def _by_client_ref(
        self, conn: Connection, tenant_id: int, client_ref: str, digest: str
    ) -> Order | None:
        o = s.orders.c
        row = conn.execute(
            select(s.orders).where(o.tenant_id == tenant_id, o.client_ref == client_ref)
        ).first()
        if row is None:
            return None
        if row.request_hash != digest:
            raise IdempotencyConflict(
                f"client_ref {client_ref!r} was used for an order with other content"
            )
        return self._load(conn, tenant_id, row)

    def _insert_order(
        self,
        conn: Connection,
        tenant_id: int,
        *,
        member: str,
        lines: Sequence[tuple[int, int]],
        client_ref: str | None,
        digest: str,
    ) -> Order:
        try:
            members.get_profile(conn, tenant_id, member)
        except NotFound:
            raise UnknownMember(f"no member {member!r}") from None
        now = self.clock()
        params = _params(conn, tenant_id)
        # Reserve first, in SKU order: in PostgreSQL this locks each SKU row, so the prices
        # read below are the ones the reservation saw.
        for sku_id, qty in sorted(lines):
            if not catalog.reserve_stock(conn, tenant_id, sku_id, qty):
                try:
                    catalog.get_sku(conn, tenant_id, sku_id)
                except NotFound:
                    raise InvalidCommand(f"no SKU {sku_id}") from None
                raise OutOfStock(f"SKU {sku_id} has fewer than {qty} units left")
        info = {
            r.id: r
            for r in conn.execute(_SKU_INFO, {"t": tenant_id, "ids": [sku for sku, _ in lines]})
        }
        total_fen = sum(info[sku].price_fen * qty for sku, qty in lines)
        if total_fen > _fen(MAX_ORDER_TOTAL):
            raise InvalidCommand(f"an order may total at most {MAX_ORDER_TOTAL} CNY")
        ref = "o" + secrets.token_hex(8)
        pk = insert_row(
            conn,
            s.orders,
            {
                "tenant_id": tenant_id,
                "ref": ref,
                "client_ref": client_ref,
                "request_hash": digest,
                "member": member,
                "status": "pending_payment",
                "total_fen": total_fen,
                "refunded_fen": 0,
                "created_at": now,
                "expires_at": now + float(params.order_ttl_minutes) * 60,
            },
        ).inserted_primary_key
        assert pk is not None
        order_id = int(pk[0])
        conn.execute(
            insert(s.order_lines),
            [
                {
                    "tenant_id": tenant_id,
                    "order_id": order_id,
                    "line_no": n,
                    "sku_id": sku,
                    "product_id": info[sku].product_id,
                    "merchant_id": info[sku].merchant_id,
                    "name": f"{info[sku].product_name} / {info[sku].name}",
                    "quantity": qty,
                    "unit_price_fen": info[sku].price_fen,
                    "pool_unit_fen": info[sku].pool_amount_fen,
                    "fund_unit_fen": info[sku].fund_amount_fen,
                }
                for n, (sku, qty) in enumerate(lines, start=1)
            ],
        )
        # a new order has no payment or refund yet: no need to query for them
        return self._load(conn, tenant_id, _order_by_id(conn, tenant_id, order_id), full=False)

    def _load(self, conn: Connection, tenant_id: int, row: Any, *, full: bool = True) -> Order:
        order = _order(row, [_line(r) for r in _lines(conn, tenant_id, row.id)])
        if full:
            of_order = {"t": tenant_id, "id": row.id}
            order.payments.extend(
                _payment(r, row.ref, row.total_fen)
                for r in conn.execute(_PAYMENTS_OF_ORDER, of_order)
            )
            order.refunds.extend(
                _refund(r, row.ref) for r in conn.execute(_REFUNDS_OF_ORDER, of_order)
            )
            if row.paid_cny_fen is not None and row.paid_cny_fen + row.paid_sp_fen < row.total_fen:
                burned = conn.execute(_ESCROW_POINTS, {"t": tenant_id, "ref": row.ref}).scalar()
                if burned is not None:
                    order = replace(order, paid_points=from_atoms(int(burned), EP_PLACES))
        return order

    def get_order(self, tenant_id: int, ref: str) -> Order:
        """The order with its lines, payments and refunds (an overdue unpaid one expires)."""
        with read_only(self.engine).connect() as conn:
            row = _order_row(conn, tenant_id, ref)
            now = self.clock()
            overdue = row.status == "pending_payment" and row.expires_at <= now
            # an order kept open for its WeChat payment (PAYMENT_GRACE) is read, not written
            if not overdue or _awaits_provider(conn, tenant_id, row, now):
                return self._load(conn, tenant_id, row)
        with self.engine.begin() as conn:
            row = _expire_if_due(conn, tenant_id, _order_row(conn, tenant_id, ref), self.clock())
            return self._load(conn, tenant_id, row)

    def list_orders(
        self,
        tenant_id: int,
        *,
        limit: int,
        cursor: str | None,
        member: str | None = None,
        status: str | None = None,
    ) -> Page[Order]:
        """Orders with their lines, oldest first (payments and refunds: read the order)."""
        o = s.orders.c
        q = select(s.orders).where(o.tenant_id == tenant_id)
        if member is not None:
            q = q.where(o.member == member)
        if status is not None:
            q = q.where(o.status == status)
        with read_only(self.engine).connect() as conn:
            page = fetch_page(conn, q, o.id, limit=limit, cursor=cursor, convert=lambda r: r)
            ln = s.order_lines.c
            by_order: dict[int, list[OrderLine]] = {}
            ids = [r.id for r in page.items]
            if ids:
                for r in conn.execute(
                    select(s.order_lines)
                    .where(ln.tenant_id == tenant_id, ln.order_id.in_(ids))
                    .order_by(ln.order_id, ln.line_no)
                ):
                    by_order.setdefault(r.order_id, []).append(_line(r))
        return Page([_order(r, by_order.get(r.id, [])) for r in page.items], page.next_cursor)

    def cancel_order(self, tenant_id: int, ref: str, *, reason: str | None = None) -> Order:
        """An unpaid order is cancelled and its stock released; a cancelled one is returned."""
        now = self.clock()
        with self.engine.begin() as conn:
            row = _expire_if_due(conn, tenant_id, _order_row(conn, tenant_id, ref, lock=True), now)
            if row.status == "pending_payment":
                _close_unpaid(
                    conn,
                    tenant_id,
                    [row.id],
                    status="cancelled",
                    reason=reason or "cancelled",
                    now=now,
                )
                row = _order_by_id(conn, tenant_id, row.id)
            elif row.status != "cancelled":
                raise OrderStateError(f"order {ref!r} is {row.status}; only unpaid orders cancel")
            return self._load(conn, tenant_id, row)

    # ------------------------------------------------------------------ payments

    def start_payment(
        self,
        tenant_id: int,
        tenant: str,
        ref: str,
        *,
        provider: Provider = "sandbox",
        sp: Decimal = ZERO,
        points_value: Decimal = ZERO,
        member: str | None = None,
        payer: str | None = None,
    ) -> Payment:
        """Start paying ``ref``: ``sp`` from the wallet, ``points_value`` CNY worth of EP
        redeemed (R4), the rest in CNY through ``provider``.  With ``member``, an order of
        anyone else is answered as absent (NotFound), checked on the same read.

        Without a CNY part the wallet pays at once (one ledger transaction) and the order is
        paid on return.  Otherwise an intent is created at the provider and the order is paid
        when its notification arrives; every part moves then, atomically.  The EP are priced
        when the payment applies (the points that are worth ``points_value`` then, after the
        sell fee, are burned), so the parts always add up to the total.  Asking again with
        the same split returns the waiting attempt instead of opening another.

        With ``payer`` (provider ``wechat``: the payer's openid, and the tenant's outbound
        WeChat Pay calls configured), the payment is also placed at WeChat (JSAPI prepay,
        after the row commits: provider calls never run inside a transaction) and the answer
        carries ``pay_params`` for ``wx.requestPayment``.  Asking again re-issues them.
        """
        if payer is not None and provider != "wechat":
            raise InvalidCommand("payer is a WeChat openid: it goes with provider wechat")
        pay, expires_at = self._open_payment(
            tenant_id,
            tenant,
            ref,
            provider=provider,
            sp=sp,
            points_value=points_value,
            member=member,
            payer=payer,
        )
        if payer is None or pay.status != "requires_payment" or pay.cny <= 0:
            return pay
        with read_only(self.engine).connect() as conn:
            api = self.hub.wechat_api(conn, tenant_id)
        if api is None:  # pragma: no cover - checked by _open_payment; the config was removed since
            raise ProviderNotConfigured("WeChat Pay outbound calls are not configured")
        prepay_id = api.jsapi_prepay(
            out_trade_no=pay.provider_order_id,
            amount=pay.cny,
            description=f"{tenant} order {ref}"[:127],
            openid=payer,
            expires_at=datetime.fromtimestamp(expires_at, UTC),
        )
        return replace(pay, pay_params=api.jsapi_pay_params(prepay_id))

    def _open_payment(
        self,
        tenant_id: int,
        tenant: str,
        ref: str,
        *,
        provider: Provider,
        sp: Decimal,
        points_value: Decimal,
        member: str | None,
        payer: str | None,
    ) -> tuple[Payment, float]:
        """:meth:`start_payment` up to the provider call: the payment and the order's expiry."""
        for name, v in (("sp", sp), ("points_value", points_value)):
            if not v.is_finite() or v < 0:
                raise InvalidCommand(f"{name} must be a non-negative amount")
        if provider == "sandbox":
            self._check_sandbox()
        sp_fen, ep_fen = _fen(sp), _fen(points_value)
        now = self.clock()
        py = s.payments.c
        # The checks only read (the row is checked again, locked, when the payment is
        # inserted), so they take no writer lock; only an order found overdue is written.
        with read_only(self.engine).connect() as conn:
            row = _order_row(conn, tenant_id, ref)
            if member is not None and row.member != member:
                raise NotFound(f"no order {ref!r}")
            overdue = row.status == "pending_payment" and row.expires_at <= now
            wallet_only = row.status == "pending_payment" and sp_fen + ep_fen >= row.total_fen
            if not overdue and not wallet_only:
                if row.status != "pending_payment":
                    raise OrderStateError(f"order {ref!r} is {row.status}, not waiting for payment")
                cny_fen = row.total_fen - sp_fen - ep_fen
                if sp_fen:
                    self._check_sp(conn, tenant_id, row, sp_fen)
                if ep_fen:
                    self._check_points(conn, tenant_id, row.member, ep_fen)
                if provider == "wechat" and self.hub.wechat(conn, tenant_id) is None:
                    raise ProviderNotConfigured("WeChat Pay is not configured for this tenant")
                if payer is not None and self.hub.wechat_api(conn, tenant_id) is None:
                    raise ProviderNotConfigured(
                        "WeChat Pay outbound calls (merchant key, app id) are not configured "
                        "for this tenant: pay by out_trade_no without payer"
                    )
                # The last attempt before the waiting one, in this order: under READ COMMITTED
                # (PostgreSQL) each statement sees its own moment, and read the other way a
                # concurrent start committing in between looked like "none waiting, last
                # attempt 1", so a second attempt was opened.  Read this way, an attempt
                # committed in between is found waiting, or ours collides with it on insert.
                last = conn.execute(_LAST_ATTEMPT, {"t": tenant_id, "id": row.id}).scalar()
                waiting = conn.execute(
                    _WAITING,
                    {
                        "t": tenant_id,
                        "id": row.id,
                        "provider": provider,
                        "sp": sp_fen,
                        "cny": cny_fen,
                    },
                ).first()
                if waiting is not None:
                    return _payment(waiting, ref, row.total_fen), row.expires_at
        if wallet_only:
            if sp_fen + ep_fen > row.total_fen:
                raise InvalidCommand(
                    f"sp and points_value ({_cny(sp_fen + ep_fen)}) are more than the order's "
                    f"total {_cny(row.total_fen)}"
                )
            return self._pay_from_wallet(tenant_id, ref, sp_fen), row.expires_at
        if overdue:
            with self.engine.begin() as conn:
                row = _expire_if_due(
                    conn, tenant_id, _order_row(conn, tenant_id, ref, lock=True), now
                )
            if row.status == "pending_payment":
                raise OrderStateError(
                    f"order {ref!r} is past its payment deadline; its WeChat payment is being "
                    "confirmed"
                )
            raise OrderStateError(f"order {ref!r} is {row.status}, not waiting for payment")
        attempt = int(last or 0) + 1
        provider_order_id = f"{ref}-{attempt}"
        # The intent first, outside any transaction, then the row with its id: one durable
        # commit instead of two.  Creating an intent is idempotent on provider_order_id, and
        # one whose row was never written is never shown to a customer, so never paid.
        if provider == "wechat":
            intent_id = provider_order_id  # WeChat knows a payment by our out_trade_no
        else:
            intent_id = self._sandbox_intent(tenant, provider_order_id, _cny(cny_fen), ref)
        try:
            with self.engine.begin() as conn:
                row = _order_row(conn, tenant_id, ref, lock=True)
                if row.status != "pending_payment":
                    raise OrderStateError(f"order {ref!r} is {row.status}, not waiting for payment")
                pay = self._new_payment(
                    conn,
                    tenant_id,
                    row,
                    provider=provider,
                    cny_fen=cny_fen,
                    sp_fen=sp_fen,
                    now=now,
                    attempt=attempt,
                    intent_id=intent_id,
                )
        except IntegrityError:
            # the same attempt started concurrently (same split): answer with that one
            with read_only(self.engine).connect() as conn:
                pay = conn.execute(
                    select(s.payments).where(
                        py.tenant_id == tenant_id,
                        py.provider == provider,
                        py.provider_order_id == provider_order_id,
                        py.cny_fen == cny_fen,
                        py.sp_fen == sp_fen,
                    )
                ).first()
            if pay is None:
                raise
        return _payment(pay, ref, row.total_fen), row.expires_at

    def _price(
        self, conn: Connection, tenant_id: int, params: TenantParams
    ) -> tuple[Decimal, Decimal]:
        """The EP price as the ledger will use it in this transaction (an exact ratio)."""
        st = conn.execute(
            select(s.tenant_state).where(s.tenant_state.c.tenant_id == tenant_id)
        ).one()
        # the ledger's own loader, so the price is computed exactly as Pay will compute it
        state = self.ledger._load_state(conn, tenant_id, st)
        return Economy(params, state).price_ratio()

    def _points_for(
        self, conn: Connection, tenant_id: int, params: TenantParams, value_fen: int
    ) -> Decimal:
        """The fewest EP whose redemption value (R3 payout, after the sell fee) is exactly
        ``value_fen``: each point atom is worth far less than a fen, so the floor of the
        payout steps through every fen and the smallest count reaching the value hits it."""
        value = _cny(value_fen)
        keep = 1 - params.sell_fee
        if keep <= 0:
            raise InvalidCommand("points cannot pay for goods while sell_fee is 1")
        num, den = self._price(conn, tenant_id, params)

        def worth(points: Decimal) -> Decimal:
            return ratio_floor(mul(points, num, keep), den, _FEN_EXP)

        points = ratio_floor(mul(value, den), mul(num, keep), _EP_EXP)
        if worth(points) < value:
            points += _EP_EXP
        if worth(points) != value:
            raise InvalidCommand(f"no number of points is worth exactly {value} CNY now")
        return points

    def _check_points(self, conn: Connection, tenant_id: int, member: str, ep_fen: int) -> None:
        """Advisory (a clear early answer): the points are priced and taken when it applies."""
        needed = self._points_for(conn, tenant_id, _params(conn, tenant_id), ep_fen)
        m = s.members.c
        held = conn.execute(select(m.ep).where(m.tenant_id == tenant_id, m.code == member)).scalar()
        have = from_atoms(int(held or 0), EP_PLACES)
        if have < needed:
            raise InsufficientBalance(
                f"member {member!r} holds {have} EP; {_cny(ep_fen)} CNY of goods needs {needed}"
            )

    def _check_sp(self, conn: Connection, tenant_id: int, row: Any, sp_fen: int) -> None:
        ln, mc = s.order_lines.c, s.merchants.c
        refusing = conn.execute(
            select(mc.code)
            .select_from(
                s.order_lines.join(
                    s.merchants, (mc.tenant_id == ln.tenant_id) & (mc.id == ln.merchant_id)
                )
            )
            .where(ln.tenant_id == tenant_id, ln.order_id == row.id, mc.accepts_sp.is_(False))
        ).first()
        if refusing is not None:
            raise InvalidCommand(f"merchant {refusing.code!r} does not accept SP")
        m = s.members.c
        held = conn.execute(
            select(m.sp).where(m.tenant_id == tenant_id, m.code == row.member)
        ).scalar()
        # advisory (a clear early answer): the ledger checks again when the payment applies
        if int(held or 0) < sp_fen * _FEN_PER_ATOM:
            have = from_atoms(int(held or 0), CNY_PLACES)
            raise InsufficientBalance(
                f"member {row.member!r} holds {have} SP, {_cny(sp_fen)} asked"
            )

    def _new_payment(
        self,
        conn: Connection,
        tenant_id: int,
        row: Any,
        *,
        provider: str,
        cny_fen: int,
        sp_fen: int,
        now: float,
        attempt: int | None = None,
        intent_id: str | None = None,
    ) -> Any:
        if attempt is None:
            last = conn.execute(_LAST_ATTEMPT, {"t": tenant_id, "id": row.id}).scalar()
            attempt = int(last or 0) + 1
        provider_order_id = f"{row.ref}-{attempt}"
        pk = insert_row(
            conn,
            s.payments,
            {
                "tenant_id": tenant_id,
                "order_id": row.id,
                "attempt": attempt,
                "provider": provider,
                "provider_order_id": provider_order_id,
                "intent_id": intent_id,
                "cny_fen": cny_fen,
                "sp_fen": sp_fen,
                "status": "requires_payment",
                "refund_status": "none",
                "created_at": now,
                "updated_at": now,
            },
        ).inserted_primary_key
        assert pk is not None
        return conn.execute(_PAYMENT_BY_ID, {"t": tenant_id, "id": int(pk[0])}).one()

    def _sandbox_intent(
        self, tenant: str, provider_order_id: str, amount: Decimal, ref: str
    ) -> str:
        box = self.hub.sandbox(tenant)
        with box.lock:
            try:
                intent = box.provider.create_intent(
                    provider_order_id, amount, f"tokenmall order {ref}"
                )
            except PaymentStateError as exc:
                raise Conflict(str(exc)) from None
        return intent.intent_id

    def _pay_from_wallet(self, tenant_id: int, ref: str, sp_fen: int) -> Payment:
        now = self.clock()
        with self.engine.begin() as conn:
            _lock_tenant(conn, tenant_id)
            row = _expire_if_due(conn, tenant_id, _order_row(conn, tenant_id, ref, lock=True), now)
            if row.status != "pending_payment":
                raise OrderStateError(f"order {ref!r} is {row.status}, not waiting for payment")
            if row.expires_at <= now:  # kept open past its deadline for a WeChat payment
                raise OrderStateError(
                    f"order {ref!r} is past its payment deadline; its WeChat payment is being "
                    "confirmed"
                )
            if sp_fen:
                self._check_sp(conn, tenant_id, row, sp_fen)
            pay = self._new_payment(
                conn, tenant_id, row, provider="wallet", cny_fen=0, sp_fen=sp_fen, now=now
            )
            refused = self._apply_payment(conn, tenant_id, row, pay, now)
            if refused is not None:
                _raise_rejected(refused)
            return _payment(
                conn.execute(
                    select(s.payments).where(
                        s.payments.c.tenant_id == tenant_id, s.payments.c.id == pay.id
                    )
                ).one(),
                ref,
                row.total_fen,
            )

    def _apply_payment(
        self, conn: Connection, tenant_id: int, row: Any, pay: Any, now: float
    ) -> Outcome | None:
        """Pay (and, with settle_days 0, Settle) in the ledger; the order becomes paid.

        Runs under the tenant lock with the order pending.  Returns the ledger's refusal (the
        SP is no longer there, say) with nothing changed, or None when the order is paid.
        """
        params = _params(conn, tenant_id)
        items: list[tuple[str, Command]] = []
        referrer = members.get_profile(conn, tenant_id, row.member).referrer
        if referrer is not None and members.ledger_referrer(conn, tenant_id, row.member) is None:
            # the ledger learns the referral link before the first payment that rewards it
            items.append((f"join:{row.member}:{referrer}", Join(row.member, referrer)))
        ep_fen = row.total_fen - pay.cny_fen - pay.sp_fen
        try:
            points = self._points_for(conn, tenant_id, params, ep_fen) if ep_fen else ZERO
        except InvalidCommand as exc:
            return Outcome(f"pay:{row.ref}", "rejected", error_code=exc.code, error=str(exc))
        pay_cmd = Pay(
            row.ref, row.member, cny=_cny(pay.cny_fen), sp=_cny(pay.sp_fen), points=points
        )
        items.append((f"pay:{row.ref}", pay_cmd))
        settle_now = params.settle_days == 0
        if settle_now:
            rewarded = pay.cny_fen + pay.sp_fen
            items.append(
                (f"settle:{row.ref}", _settle_command(conn, tenant_id, row, params, rewarded))
            )
        outcomes = _submit(self.ledger, conn, tenant_id, items)
        paid = outcomes[-2] if settle_now else outcomes[-1]
        if paid.status == "rejected":
            return paid
        values: dict[str, Any] = {
            "status": "paid",
            "paid_at": now,
            "paid_cny_fen": pay.cny_fen,
            "paid_sp_fen": pay.sp_fen,
            "payment_id": pay.id,
        }
        if settle_now:
            settled = outcomes[-1]
            if settled.status == "rejected":
                values["settle_error"] = (settled.error or "refused")[:300]
            else:
                values.update(status="settled", settled_at=now)
        _set_order(conn, tenant_id, row.id, **values)
        conn.execute(_PAYMENT_PAID, {"t": tenant_id, "b_id": pay.id, "at": now})
        return None

    # ------------------------------------------------------------------ notifications

    def _check_sandbox(self) -> None:
        if not self.sandbox:
            raise ProviderNotConfigured("the sandbox payment provider is off in production")

    def verifier(
        self, conn: Connection, tenant_id: int, tenant: str, provider: str
    ) -> NotificationVerifier:
        if provider == "sandbox":
            self._check_sandbox()
            return self.hub.sandbox(tenant).provider
        if provider == "wechat":
            verifier = self.hub.wechat(conn, tenant_id)
            if verifier is None:
                raise ProviderNotConfigured("WeChat Pay is not configured for this tenant")
            return verifier
        raise NotFound(f"no payment provider {provider!r}")

    def handle_notification(
        self,
        tenant_id: int,
        tenant: str,
        provider: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        pump: bool = True,
    ) -> NotificationResult:
        """Verify one delivery, then apply it once (see the module docstring).

        ``pump``: afterwards, deliver what the in-process sandbox queued meanwhile (the refund
        of a voided payment); False when this delivery comes from such a pump already.

        Raises :class:`~tokenmall.payments.NotificationRejected` for a delivery that must not
        be acted on (bad signature, stale, malformed, another tenant's, unsupported): nothing
        is recorded, and the provider, told so by a 4xx, may try again.
        """
        with read_only(self.engine).connect() as conn:
            verifier = self.verifier(conn, tenant_id, tenant, provider)
        n = verifier.parse_notification(headers, body)
        if n.kind.is_payout and n.kind not in self.handlers:
            raise UnsupportedNotification(f"{n.kind} notifications are not handled here")
        return self._apply_event(tenant_id, tenant, n, pump=pump)

    def _apply_event(
        self, tenant_id: int, tenant: str, n: Notification, *, pump: bool = True
    ) -> NotificationResult:
        """Apply one verified event once (a notification, or what a query of the provider
        found: both carry the same ``event_id``, so whichever comes second is a replay)."""
        refunds: list[_ProviderRefund] = []
        try:
            with self.engine.begin() as conn:
                _lock_tenant(conn, tenant_id)
                seen = self._event(conn, tenant_id, n)
                if seen is not None:
                    return seen
                outcome, detail, order_ref = self._dispatch(conn, tenant_id, n, refunds)
                insert_row(
                    conn,
                    s.provider_events,
                    {
                        "tenant_id": tenant_id,
                        "provider": n.provider,
                        "event_id": n.event_id,
                        "kind": n.kind.value,
                        "provider_order_id": n.order_id,
                        "amount_fen": _fen(n.amount),
                        "outcome": outcome,
                        "detail": None if detail is None else detail[:300],
                        "received_at": self.clock(),
                    },
                )
        except IntegrityError:
            # the same event applied concurrently: the primary key kept it to once
            with read_only(self.engine).connect() as conn:
                seen = self._event(conn, tenant_id, n)
            if seen is None:
                raise
            return seen
        self._submit_refunds(tenant_id, tenant, refunds)
        if pump and refunds:
            self.pump_sandbox(tenant_id, tenant)
        return NotificationResult(n.event_id, n.kind.value, outcome, False, order_ref, detail)

    def _event(
        self, conn: Connection, tenant_id: int, n: Notification
    ) -> NotificationResult | None:
        row = conn.execute(
            _EVENT, {"t": tenant_id, "provider": n.provider, "event": n.event_id}
        ).first()
        if row is None:
            return None
        return NotificationResult(n.event_id, row.kind, row.outcome, True, None, row.detail)

    def _dispatch(
        self, conn: Connection, tenant_id: int, n: Notification, refunds: list[_ProviderRefund]
    ) -> tuple[str, str | None, str | None]:
        handler = self.handlers.get(n.kind)
        if handler is not None:
            outcome, detail = handler(conn, tenant_id, n)
            return outcome, detail, None
        if n.kind is NotificationKind.PAYMENT_SUCCEEDED:
            return self._on_paid(conn, tenant_id, n, refunds)
        if n.kind is NotificationKind.PAYMENT_FAILED:
            return self._on_payment_failed(conn, tenant_id, n)
        if n.kind.is_refund:
            return self._on_refund(conn, tenant_id, n)
        raise UnsupportedNotification(f"{n.kind} notifications are not handled here")

    def _payment_for(self, conn: Connection, tenant_id: int, n: Notification) -> Any:
        return conn.execute(
            _locked(conn, _PAYMENT_BY_PROVIDER_ID),
            {"t": tenant_id, "provider": n.provider, "pid": n.order_id or ""},
        ).first()

    def _on_paid(
        self, conn: Connection, tenant_id: int, n: Notification, refunds: list[_ProviderRefund]
    ) -> tuple[str, str | None, str | None]:
        pay = self._payment_for(conn, tenant_id, n)
        if pay is None:
            return "unknown_payment", f"no payment {n.order_id!r}", None
        row = _order_by_id(conn, tenant_id, pay.order_id, lock=True)
        if _fen(n.amount) != pay.cny_fen:
            # authentic, but not what we asked for: nothing moves; an operator must look
            return "amount_mismatch", f"paid {n.amount}, expected {_cny(pay.cny_fen)}", row.ref
        if pay.status in ("paid", "voided"):
            return "already_applied", f"payment {pay.provider_order_id} is {pay.status}", row.ref
        now = self.clock()
        # the customer paid at occurred_at: in time if that was before expires_at
        row = _expire_if_due(conn, tenant_id, row, n.occurred_at.timestamp(), grace=False)
        if row.status == "pending_payment":
            refused = self._apply_payment(conn, tenant_id, row, pay, now)
            if refused is None:
                return "applied", None, row.ref
            reason = f"payment could not be applied: {refused.error}"
            _close_unpaid(conn, tenant_id, [row.id], status="failed", reason=reason[:200], now=now)
        else:
            reason = f"order is {row.status}"
        self._void(conn, tenant_id, pay, reason=reason, now=now, refunds=refunds)
        return "voided", reason, row.ref

    def _void(
        self,
        conn: Connection,
        tenant_id: int,
        pay: Any,
        *,
        reason: str,
        now: float,
        refunds: list[_ProviderRefund],
    ) -> None:
        """Money came in for an order that cannot take it: record it and give it back."""
        refund_id = f"{pay.provider_order_id}-void"
        status = self._refund_route(conn, tenant_id, pay.provider)
        py = s.payments.c
        conn.execute(
            update(s.payments)
            .where(py.tenant_id == tenant_id, py.id == pay.id)
            .values(
                status="voided",
                note=reason[:300],
                refund_status=status,
                provider_refund_id=refund_id,
                updated_at=now,
            )
        )
        if status == "pending":
            refunds.append(_ProviderRefund.of_void(pay, refund_id))

    def _on_payment_failed(
        self, conn: Connection, tenant_id: int, n: Notification
    ) -> tuple[str, str | None, str | None]:
        pay = self._payment_for(conn, tenant_id, n)
        if pay is None:
            return "unknown_payment", f"no payment {n.order_id!r}", None
        row = _order_by_id(conn, tenant_id, pay.order_id)
        if pay.status != "requires_payment":
            return "ignored", f"payment {pay.provider_order_id} is {pay.status}", row.ref
        _fail_open_payment(
            conn, tenant_id, pay.id, "the provider reported a failed payment", self.clock()
        )
        # the order stays open: the customer may try again until it expires
        return "payment_failed", None, row.ref

    def _on_refund(
        self, conn: Connection, tenant_id: int, n: Notification
    ) -> tuple[str, str | None, str | None]:
        ok = n.kind is NotificationKind.REFUND_SUCCEEDED
        status = "succeeded" if ok else "failed"
        now = self.clock()
        rf, py = s.order_refunds.c, s.payments.c
        row = conn.execute(
            select(rf.id, rf.order_id, rf.cny_fen).where(
                rf.tenant_id == tenant_id, rf.provider_refund_id == n.refund_id
            )
        ).first()
        if row is not None:
            conn.execute(
                update(s.order_refunds)
                .where(rf.tenant_id == tenant_id, rf.id == row.id)
                .values(provider_status=status, updated_at=now)
            )
            ref = _order_by_id(conn, tenant_id, row.order_id).ref
            return f"refund_{status}", None, ref
        pay = conn.execute(
            select(py.id, py.order_id).where(
                py.tenant_id == tenant_id, py.provider_refund_id == n.refund_id
            )
        ).first()
        if pay is not None:
            conn.execute(
                update(s.payments)
                .where(py.tenant_id == tenant_id, py.id == pay.id)
                .values(refund_status=status, updated_at=now)
            )
            ref = _order_by_id(conn, tenant_id, pay.order_id).ref
            return f"refund_{status}", None, ref
        return "unknown_refund", f"no refund {n.refund_id!r}", None

    def _submit_refunds(
        self, tenant_id: int, tenant: str, refunds: Iterable[_ProviderRefund]
    ) -> None:
        """Ask the provider for refunds decided by a committed transaction; record its answer.

        A refusal is recorded (``failed``, with the provider's reason), not raised: the money
        is already back in the ledger's books, and an operator settles it with the provider.
        A provider that could not be reached (a timeout, a 5xx) leaves the refund ``pending``:
        the request is idempotent on the refund id, so asking the same refund again, or the
        scheduler's :meth:`retry_refunds`, sends it again.
        """
        refunds = list(refunds)
        api: WeChatPayApi | None = None
        if any(r.provider == "wechat" for r in refunds):
            with read_only(self.engine).connect() as conn:
                api = self.hub.wechat_api(conn, tenant_id)
        for r in refunds:
            status, note = "submitted", None
            try:
                if r.provider == "wechat":
                    if api is None:
                        raise ProviderConfigError("WeChat Pay outbound calls are not configured")
                    api.refund(
                        out_trade_no=r.intent_id,
                        out_refund_no=r.refund_id,
                        amount=r.amount,
                        total=r.total,
                    )
                else:
                    box = self.hub.sandbox(tenant)
                    with box.lock:
                        intent = box.gateway.get_intent(r.intent_id)
                        box.provider.refund(intent, r.refund_id, r.amount)
            except ProviderUnavailable as exc:
                status, note = "pending", f"{exc.code}: {exc}"
                log.warning("provider refund %s not sent, will retry: %s", r.refund_id, note)
            except PaymentError as exc:
                status, note = "failed", f"{exc.code}: {exc}"
                log.warning("provider refund %s failed: %s", r.refund_id, note)
            with self.engine.begin() as conn:
                if r.table == "payments":
                    py = s.payments.c
                    values: dict[str, Any] = {"refund_status": status, "updated_at": self.clock()}
                    if note is not None:
                        values["note"] = note[:300]
                    conn.execute(
                        update(s.payments)
                        .where(
                            py.tenant_id == tenant_id,
                            py.id == r.row_id,
                            py.refund_status == "pending",
                        )
                        .values(values)
                    )
                else:
                    rf = s.order_refunds.c
                    conn.execute(
                        update(s.order_refunds)
                        .where(
                            rf.tenant_id == tenant_id,
                            rf.id == r.row_id,
                            rf.provider_status == "pending",
                        )
                        .values(provider_status=status, updated_at=self.clock())
                    )

    def retry_refunds(self, *, older_than: float = 300.0, now: float | None = None) -> int:
        """Send again every provider refund still ``pending`` after ``older_than`` seconds.

        A refund is ``pending`` between the commit that decided it and the provider's answer;
        one that stays so had its call fail to reach the provider (or its process died before
        the call).  Each is idempotent at the provider on its refund id.  The scheduler runs
        this; returns how many were sent.
        """
        at = self.clock() if now is None else now
        cutoff = at - older_than
        py, rf = s.payments.c, s.order_refunds.c
        todo: dict[tuple[int, str], list[_ProviderRefund]] = {}
        with read_only(self.engine).connect() as conn:
            tenants = [(int(r.id), str(r.code)) for r in conn.execute(select(_t.id, _t.code))]
            for tid, code in tenants:
                found = todo.setdefault((tid, code), [])
                for pay in conn.execute(
                    select(s.payments).where(
                        py.tenant_id == tid, py.refund_status == "pending", py.updated_at < cutoff
                    )
                ):
                    found.append(_ProviderRefund.of_void(pay, pay.provider_refund_id))
                for row in conn.execute(
                    select(s.order_refunds).where(
                        rf.tenant_id == tid,
                        rf.provider_status == "pending",
                        rf.updated_at < cutoff,
                    )
                ):
                    found.append(self._provider_refund(conn, tid, row))
        for (tid, code), refunds in todo.items():
            if refunds:
                self._submit_refunds(tid, code, refunds)
                if any(r.provider == "sandbox" for r in refunds):
                    self.pump_sandbox(tid, code)
        return sum(len(v) for v in todo.values())

    # ------------------------------------------------------------------ reconciliation

    def reconcile_payments(
        self,
        *,
        now: float | None = None,
        older_than: float = 60.0,
        recheck: float = 60.0,
        limit: int = 200,
        refund_after: float = 600.0,
    ) -> int:
        """Ask WeChat Pay about open WeChat payments and refunds; returns how many changed.

        For every tenant whose outbound WeChat Pay calls are configured, each payment still
        ``requires_payment`` ``older_than`` seconds after it started (and not asked about in
        the last ``recheck`` seconds; at most ``limit`` per tenant and run, least recently
        asked first) is queried, as WeChat's documentation prescribes when a notification
        does not come:

        * paid (or closed) at WeChat: applied exactly as its notification would be, with the
          same event id, so a notification arriving later is a replay;
        * still open, and the order can no longer take it (expired, cancelled, paid by another
          attempt): the order is closed at WeChat so that it can never be paid, and the
          payment is recorded failed once a query confirms ``CLOSED``;
        * unknown to WeChat (the prepay never reached it) while the order can no longer take
          it: recorded failed.

        Refunds WeChat accepted (``submitted``, of an order or of a voided payment) whose
        notification has not come ``refund_after`` seconds later are queried too (each at most
        once per ``refund_after``): a final state is applied as its REFUND notification would
        be, under the same event id.

        Once a day per tenant in certificate mode (a platform key serial that is not a
        ``PUB_KEY_ID_``), the platform certificates are downloaded and new ones added
        (:meth:`refresh_wechat_certificates`), so a rotation never stalls notifications.

        A provider that cannot be reached or refuses is logged; the next run asks again.  The
        scheduler runs this before expiring orders, so an order whose payment was made in time
        is found paid rather than expired.
        """
        at = self.clock() if now is None else now
        ps = s.payment_settings.c
        with read_only(self.engine).connect() as conn:
            # only tenants with a WeChat configuration: one query, not one per tenant
            tenants = conn.execute(
                select(_t.id, _t.code, ps.config)
                .join(s.payment_settings, (ps.tenant_id == _t.id) & (ps.provider == "wechat"))
                .order_by(_t.id)
            ).all()
        for r in tenants:  # first: the queries below may be answered with a rotated key
            self._refresh_certificates_due(int(r.id), json.loads(r.config), at)
        todo: list[tuple[int, str, WeChatPayApi, Sequence[Any], list[tuple[str, Any]]]] = []
        with read_only(self.engine).connect() as conn:
            for r in tenants:
                api = self.hub.wechat_api(conn, r.id)
                if api is None:
                    continue
                rows = conn.execute(
                    _TO_RECONCILE,
                    {
                        "t": r.id,
                        "created": at - older_than,
                        "checked": at - recheck,
                        "limit": limit,
                    },
                ).all()
                late = {"t": r.id, "since": at - refund_after, "checked": at - refund_after}
                refunds = [
                    ("order_refunds", row)
                    for row in conn.execute(_REFUNDS_TO_CHECK, {**late, "limit": limit})
                ] + [
                    ("payments", row)
                    for row in conn.execute(_VOID_REFUNDS_TO_CHECK, {**late, "limit": limit})
                ]
                if rows or refunds:
                    todo.append((int(r.id), str(r.code), api, rows, refunds))
        return sum(self._reconcile_tenant(*entry, at=at) for entry in todo)

    def _refresh_certificates_due(
        self, tenant_id: int, config: Mapping[str, Any], at: float
    ) -> None:
        """:meth:`refresh_wechat_certificates` once a :data:`CERTIFICATE_REFRESH` per tenant
        with outbound calls in certificate mode (``config``: its stored WeChat configuration);
        a failure is logged and tried again after the same interval."""
        if at - self._certificates_checked.get(tenant_id, -math.inf) < CERTIFICATE_REFRESH:
            return
        if not config.get("outbound") or all(
            k.startswith(PUBLIC_KEY_ID_PREFIX) for k in config["keys"]
        ):
            # public-key mode: nothing to download; looked at again each tick, in case that
            # changes
            return
        self._certificates_checked[tenant_id] = at
        try:
            self.refresh_wechat_certificates(tenant_id, actor="scheduler")
        except (PaymentError, Conflict) as exc:
            log.warning("tenant %s: WeChat Pay certificates not refreshed: %s", tenant_id, exc)

    def _reconcile_tenant(
        self,
        tenant_id: int,
        tenant: str,
        api: WeChatPayApi,
        payments: Sequence[Any],
        refunds: Sequence[tuple[str, Any]],
        *,
        at: float,
    ) -> int:
        """One tenant's share of :meth:`reconcile_payments`; how many changed.

        WeChat unreachable (a timeout, a 5xx, an answer that does not verify) ends the
        tenant's run: every further call would wait out its timeout too, and the scheduler's
        other work (and other tenants) should not wait behind them.  The rest are asked on the
        next run.  A refusal concerns one payment or refund: the others go on.
        """
        changed = 0
        items: list[tuple[str, Any]] = [*refunds, *(("order", pay) for pay in payments)]
        # asked, nothing changed: not asked again before the next interval (one commit)
        asked: dict[str, list[int]] = {"payments": [], "order_refunds": []}
        try:
            for kind, row in items:
                table = "order_refunds" if kind == "order_refunds" else "payments"
                try:
                    if kind == "order":
                        done = self._reconcile(tenant_id, tenant, api, row, at)
                        if done is not None:
                            changed += done
                            continue
                    else:
                        found = api.query_refund(row.provider_refund_id)
                        if found.notification is not None:
                            changed += self._applied(tenant_id, tenant, found.notification)
                            continue
                except PaymentError as exc:
                    what = row.provider_order_id if kind == "order" else row.provider_refund_id
                    log.warning("WeChat %s not reconciled, will ask again: %s", what, exc)
                    asked[table].append(row.id)
                    if isinstance(exc, ProviderUnavailable):
                        return changed
                    continue
                asked[table].append(row.id)
            return changed
        finally:
            self._checked(tenant_id, asked, at)

    def sync_payments(
        self, tenant_id: int, tenant: str, ref: str, *, member: str | None = None
    ) -> Order:
        """Ask WeChat Pay now about the order's open WeChat payments and return the order.

        What a mini-program calls after ``wx.requestPayment`` succeeds, so the customer sees
        the order paid without waiting for WeChat's notification.  Same rules as
        :meth:`reconcile_payments`; a provider error is raised (the caller may ask again).
        With ``member``, another member's order is answered as absent.
        """
        at = self.clock()
        with read_only(self.engine).connect() as conn:
            row = _order_row(conn, tenant_id, ref)
            if member is not None and row.member != member:
                raise NotFound(f"no order {ref!r}")
            api = self.hub.wechat_api(conn, tenant_id)
            if api is None:
                raise ProviderNotConfigured(
                    "WeChat Pay outbound calls are not configured for this tenant"
                )
            pays = conn.execute(_OPEN_WECHAT_OF, {"t": tenant_id, "id": row.id}).all()
        asked: list[int] = []
        try:
            for pay in pays:
                if self._reconcile(tenant_id, tenant, api, pay, at) is None:
                    asked.append(pay.id)
        finally:
            self._checked(tenant_id, {"payments": asked}, at)
        return self.get_order(tenant_id, ref)

    def _reconcile(
        self, tenant_id: int, tenant: str, api: WeChatPayApi, pay: Any, at: float
    ) -> int | None:
        """One open WeChat payment against what WeChat says of it: 1 if its state changed, 0 if
        an event changed nothing, None if WeChat was asked and nothing is to be done yet (the
        caller records that it asked)."""
        no = pay.provider_order_id
        found = api.query_order(no)
        if found.notification is not None:
            return self._applied(tenant_id, tenant, found.notification)
        if pay.order_status == "pending_payment" and at < pay.expires_at:
            return None  # the customer may still pay
        if found.is_open:
            # The order can no longer take this payment: make sure it is never made.  A close
            # refused because the customer paid just now is fine: the query below sees it.
            try:
                api.close_order(no)
            except ProviderRefused as exc:
                log.info("WeChat order %s not closed (%s); asking its state", no, exc)
            found = api.query_order(no)
            if found.notification is not None:
                return self._applied(tenant_id, tenant, found.notification)
            return None
        # WeChat has no such order (its signed answer says so): nothing was or can be paid
        note = f"WeChat Pay has no order {no} ({found.trade_state})"
        with self.engine.begin() as conn:
            return int(
                _fail_open_payment(conn, tenant_id, pay.id, note, self.clock(), checked_at=at)
            )

    def _applied(self, tenant_id: int, tenant: str, n: Notification) -> int:
        result = self._apply_event(tenant_id, tenant, n, pump=False)
        log.info("WeChat %s of %s: %s by query", n.event_id, n.order_id, result.outcome)
        return int(not result.duplicate)

    def _checked(self, tenant_id: int, asked: Mapping[str, list[int]], at: float) -> None:
        """Record in one transaction that WeChat was asked about these ``payments`` and
        ``order_refunds`` rows at ``at``."""
        statements = (
            (_PAYMENT_CHECKED, asked.get("payments", [])),
            (_REFUND_CHECKED, asked.get("order_refunds", [])),
        )
        if not any(ids for _, ids in statements):
            return
        with self.engine.begin() as conn:
            for statement, ids in statements:
                if ids:
                    conn.execute(statement, [{"t": tenant_id, "b_id": i, "at": at} for i in ids])

    # ------------------------------------------------------------------ sandbox customer

    def pump_sandbox(self, tenant_id: int, tenant: str) -> None:
        """Deliver what the tenant's in-process sandbox has queued, as a provider would call.

        A real provider calls the notification endpoint by itself; the sandbox lives in this
        process, so the service hands its notifications over after the calls that queue them
        (refunds).  Failures stay queued for the next pump, as with a provider's retries.
        """
        box = self.hub.sandbox(tenant)

        def deliver(headers: Mapping[str, str], body: bytes) -> None:
            self.handle_notification(tenant_id, tenant, "sandbox", headers, body, pump=False)

        with box.lock:
            try:
                box.gateway.drain(deliver, max_rounds=_SANDBOX_DRAIN_ROUNDS)
            except PaymentError as exc:
                log.warning("sandbox outbox of tenant %s not drained: %s", tenant, exc)

    def order_member(self, tenant_id: int, ref: str) -> str:
        """Who placed order ``ref`` (NotFound if the tenant has none): the ownership check of
        the member routes reads the order's row, not its lines, payments and refunds."""
        with read_only(self.engine).connect() as conn:
            return str(_order_row(conn, tenant_id, ref).member)

    def complete_sandbox(
        self,
        tenant_id: int,
        tenant: str,
        intent_id: str,
        *,
        succeed: bool = True,
        deliver: bool = True,
        member: str | None = None,
    ) -> SandboxCompletion:
        """Play the customer at the sandbox: pay (or fail) an intent of this tenant.  With
        ``member``, an intent of anyone else's order is answered as absent (NotFound), checked
        on the same read.

        ``deliver``: the sandbox delivers its pending notifications to this service at once
        (through :meth:`handle_notification`, signatures and all).  Otherwise the new ones are
        handed back as signed requests, for the caller to deliver (as often as it likes); the
        sandbox's outbox keeps them too, as a provider retries until it is acknowledged, and
        delivers them with its next round (:meth:`pump_sandbox`).
        """
        self._check_sandbox()
        with read_only(self.engine).connect() as conn:
            pay = conn.execute(_ORDER_OF_INTENT, {"t": tenant_id, "i": intent_id}).first()
        if pay is None:
            raise NotFound(f"no sandbox intent {intent_id!r}")
        if member is not None and pay.member != member:
            raise NotFound(f"no order {pay.ref!r}")
        box = self.hub.sandbox(tenant)
        captured: list[tuple[dict[str, str], bytes]] = []
        results: list[NotificationResult] = []

        def hand_over(headers: Mapping[str, str], body: bytes) -> None:
            captured.append((dict(headers), body))
            # not an acknowledgement: the outbox keeps the event until this service takes it
            raise _HandedOver

        def handle(headers: Mapping[str, str], body: bytes) -> None:
            captured.append((dict(headers), body))
            results.append(
                self.handle_notification(tenant_id, tenant, "sandbox", headers, body, pump=False)
            )

        with box.lock:
            gw = box.gateway
            before = set(gw.pending_event_ids)
            try:
                intent = gw.pay(intent_id) if succeed else gw.fail(intent_id)
            except UnknownPayment:
                raise OrderStateError(
                    f"the sandbox does not know intent {intent_id!r} (it keeps intents in "
                    "memory: after a restart, start a new payment)"
                ) from None
            except PaymentStateError as exc:
                raise OrderStateError(str(exc)) from None
            if deliver:
                try:
                    gw.drain(handle, max_rounds=_SANDBOX_DRAIN_ROUNDS)
                except PaymentError as exc:
                    log.warning("sandbox outbox not drained: %s", exc)
            else:
                for event_id in [e for e in gw.pending_event_ids if e not in before]:
                    gw.redeliver(event_id, hand_over)
        return SandboxCompletion(intent.intent_id, intent.status.value, captured, results)

    # ------------------------------------------------------------------ fulfilment

    def confirm_delivery(self, tenant_id: int, ref: str) -> Order:
        """The buyer has the goods: the return window (settle_days) starts now."""
        now = self.clock()
        with self.engine.begin() as conn:
            row = _order_row(conn, tenant_id, ref, lock=True)
            if row.status == "paid":
                days = _params(conn, tenant_id).settle_days
                _set_order(
                    conn,
                    tenant_id,
                    row.id,
                    status="delivered",
                    delivered_at=now,
                    settle_at=now + float(days) * _DAY,
                )
            elif row.status in ("settled", "refunded") and row.paid_at is not None:
                if row.delivered_at is None:  # settled at payment (settle_days 0)
                    _set_order(conn, tenant_id, row.id, delivered_at=now)
            elif row.status != "delivered":
                raise OrderStateError(f"order {ref!r} is {row.status}; only paid orders deliver")
            return self._load(conn, tenant_id, _order_by_id(conn, tenant_id, row.id))

    def settle_order(self, tenant_id: int, ref: str) -> Order:
        """Settle now, without waiting for the return window (the operator's decision)."""
        now = self.clock()
        with self.engine.begin() as conn:
            _lock_tenant(conn, tenant_id)
            row = _order_row(conn, tenant_id, ref, lock=True)
            if row.status not in ("paid", "delivered"):
                if row.status == "settled":
                    return self._load(conn, tenant_id, row)
                raise OrderStateError(f"order {ref!r} is {row.status}; it cannot settle")
            params = _params(conn, tenant_id)
            out = _submit(
                self.ledger,
                conn,
                tenant_id,
                [(f"settle:{row.ref}", _settle_command(conn, tenant_id, row, params))],
            )[0]
            _raise_rejected(out)
            _set_order(conn, tenant_id, row.id, status="settled", settled_at=now, settle_error=None)
            return self._load(conn, tenant_id, _order_by_id(conn, tenant_id, row.id))

    # ------------------------------------------------------------------ refunds

    def refund(
        self,
        tenant_id: int,
        tenant: str,
        ref: str,
        *,
        refund_id: str,
        amount: Decimal | None = None,
        reason: str | None = None,
    ) -> tuple[OrderRefund, bool]:
        """Refund ``amount`` (None: all that is left) of a paid order; (refund, created).

        Before settlement the ledger returns the money and no reward existed; after it, the
        ledger takes the rewards back (R11: EP burned, pool back without lowering the price,
        quota removed).  The CNY part goes back through the provider after commit, the rest
        as SP.  ``refund_id`` is the caller's: the same id with the same amount answers with
        the first refund, with another amount (or order) it is refused (409).
        """
        check_ref(refund_id, "refund_id")
        requested = None if amount is None else _fen(amount)
        if requested is not None and requested <= 0:
            raise InvalidCommand("a refund amount must be greater than 0")
        now = self.clock()
        todo: list[_ProviderRefund] = []
        with self.engine.begin() as conn:
            _lock_tenant(conn, tenant_id)
            rf = s.order_refunds.c
            prior = conn.execute(
                select(s.order_refunds).where(rf.tenant_id == tenant_id, rf.refund_ref == refund_id)
            ).first()
            if prior is not None:
                prior_ref = _order_by_id(conn, tenant_id, prior.order_id).ref
                if prior_ref != ref or prior.requested_fen != requested:
                    raise IdempotencyConflict(
                        f"refund {refund_id!r} was made for {_cny(prior.amount_fen)} of order "
                        f"{prior_ref!r}; a refund id cannot be reused for another refund"
                    )
                if prior.provider_status == "pending":  # the provider call did not happen
                    todo.append(self._provider_refund(conn, tenant_id, prior))
                result = _refund(prior, ref)
                created = False
            else:
                result = self._new_refund(
                    conn,
                    tenant_id,
                    ref,
                    refund_id=refund_id,
                    requested=requested,
                    reason=reason,
                    now=now,
                )
                row = conn.execute(
                    select(s.order_refunds).where(
                        rf.tenant_id == tenant_id, rf.refund_ref == refund_id
                    )
                ).one()
                if row.provider_status == "pending":
                    todo.append(self._provider_refund(conn, tenant_id, row))
                created = True
        self._submit_refunds(tenant_id, tenant, todo)
        if todo:
            self.pump_sandbox(tenant_id, tenant)
            with self.engine.connect() as conn:
                row = conn.execute(
                    select(s.order_refunds).where(
                        rf.tenant_id == tenant_id, rf.refund_ref == refund_id
                    )
                ).one()
            result = _refund(row, ref)
        return result, created

    def _provider_refund(self, conn: Connection, tenant_id: int, row: Any) -> _ProviderRefund:
        py = s.payments.c
        pay = conn.execute(
            select(py.provider, py.intent_id, py.cny_fen).where(
                py.tenant_id == tenant_id, py.id == row.payment_id
            )
        ).one()
        return _ProviderRefund(
            "order_refunds",
            row.id,
            pay.provider,
            pay.intent_id,
            row.provider_refund_id,
            _cny(row.cny_fen),
            _cny(pay.cny_fen),
        )

    def _refund_route(self, conn: Connection, tenant_id: int, provider: str) -> str:
        """How the CNY of a refund goes back: ``pending`` (asked of the provider after the
        commit), or ``manual`` when the provider cannot be called (WeChat Pay configured for
        notifications only): an operator refunds in the merchant platform."""
        if provider == "wechat" and self.hub.wechat_api(conn, tenant_id) is None:
            return "manual"
        return "pending"

    def _new_refund(
        self,
        conn: Connection,
        tenant_id: int,
        ref: str,
        *,
        refund_id: str,
        requested: int | None,
        reason: str | None,
        now: float,
    ) -> OrderRefund:
        row = _order_row(conn, tenant_id, ref, lock=True)
        if row.status not in _REFUNDABLE:
            raise OrderStateError(f"order {ref!r} is {row.status}; only paid orders refund")
        left = row.total_fen - row.refunded_fen
        amount = left if requested is None else requested
        if amount > left:
            raise InvalidCommand(f"order {ref!r} has only {_cny(left)} left to refund")
        phase = "after_settlement" if row.status == "settled" else "before_settlement"
        out = _submit(
            self.ledger,
            conn,
            tenant_id,
            [(f"refund:{row.ref}:{refund_id}", Refund(row.ref, _cny(amount)))],
        )[0]
        _raise_rejected(out)
        assert out.seq is not None
        cny_fen = _world_cny_fen(conn, tenant_id, out.seq)
        py = s.payments.c
        pay = conn.execute(
            select(py.id, py.provider).where(py.tenant_id == tenant_id, py.id == row.payment_id)
        ).one()
        if cny_fen == 0:
            provider_status = "none"
        else:
            provider_status = self._refund_route(conn, tenant_id, pay.provider)
        rf = s.order_refunds.c
        n = conn.execute(
            select(func.count()).where(rf.tenant_id == tenant_id, rf.order_id == row.id)
        ).scalar_one()
        conn.execute(
            insert(s.order_refunds).values(
                tenant_id=tenant_id,
                order_id=row.id,
                refund_ref=refund_id,
                requested_fen=requested,
                amount_fen=amount,
                cny_fen=cny_fen,
                sp_fen=amount - cny_fen,
                phase=phase,
                ledger_seq=out.seq,
                reason=reason,
                payment_id=pay.id,
                provider_status=provider_status,
                provider_refund_id=f"{row.ref}-r{int(n) + 1}" if cny_fen else None,
                created_at=now,
                updated_at=now,
            )
        )
        values: dict[str, Any] = {"refunded_fen": row.refunded_fen + amount}
        if row.refunded_fen + amount == row.total_fen:
            values.update(status="refunded", closed_at=now, close_reason="refunded in full")
            if row.delivered_at is None:
                _restock(conn, tenant_id, row.id, ref)
        _set_order(conn, tenant_id, row.id, **values)
        return _refund(
            conn.execute(
                select(s.order_refunds).where(rf.tenant_id == tenant_id, rf.refund_ref == refund_id)
            ).one(),
            ref,
        )

    def list_refunds(self, tenant_id: int, ref: str) -> list[OrderRefund]:
        with self.engine.connect() as conn:
            row = _order_row(conn, tenant_id, ref)
            rf = s.order_refunds.c
            return [
                _refund(r, ref)
                for r in conn.execute(
                    select(s.order_refunds)
                    .where(rf.tenant_id == tenant_id, rf.order_id == row.id)
                    .order_by(rf.id)
                )
            ]

    # ------------------------------------------------------------------ the payments desk

    def list_payments(
        self,
        tenant_id: int,
        *,
        limit: int,
        cursor: str | None,
        status: str | None = None,
        refund_status: str | None = None,
        provider: str | None = None,
    ) -> Page[Payment]:
        """Payment attempts of every order, oldest first.  ``?status=voided&refund_status=
        manual`` (or ``failed``) is money an operator must give back by hand."""
        q = select(s.payments, _o.ref.label("order_ref"), _o.total_fen.label("order_total"))
        q = q.select_from(
            s.payments.join(s.orders, (_o.tenant_id == _py.tenant_id) & (_o.id == _py.order_id))
        ).where(_py.tenant_id == tenant_id)
        for col, value in (
            (_py.status, status),
            (_py.refund_status, refund_status),
            (_py.provider, provider),
        ):
            if value is not None:
                q = q.where(col == value)
        with read_only(self.engine).connect() as conn:
            return fetch_page(
                conn,
                q,
                _py.id,
                limit=limit,
                cursor=cursor,
                convert=lambda r: _payment(r, r.order_ref, r.order_total),
            )

    def list_all_refunds(
        self,
        tenant_id: int,
        *,
        limit: int,
        cursor: str | None,
        provider_status: str | None = None,
    ) -> Page[OrderRefund]:
        """Refunds of every order, oldest first.  ``?provider_status=failed`` (or ``manual``)
        is CNY the provider did not return, for an operator to settle by hand."""
        q = (
            select(s.order_refunds, _o.ref.label("order_ref"))
            .select_from(
                s.order_refunds.join(
                    s.orders, (_o.tenant_id == _rf.tenant_id) & (_o.id == _rf.order_id)
                )
            )
            .where(_rf.tenant_id == tenant_id)
        )
        if provider_status is not None:
            q = q.where(_rf.provider_status == provider_status)
        with read_only(self.engine).connect() as conn:
            return fetch_page(
                conn,
                q,
                _rf.id,
                limit=limit,
                cursor=cursor,
                convert=lambda r: _refund(r, r.order_ref),
            )

    def list_provider_events(
        self,
        tenant_id: int,
        *,
        limit: int,
        cursor: str | None,
        outcome: str | None = None,
        provider: str | None = None,
    ) -> Page[ProviderEvent]:
        """Every provider event applied, in the order received.  Outcomes other than
        ``applied`` and the like are for an operator: ``amount_mismatch`` (paid another amount
        than asked), ``unknown_payment``/``unknown_refund``/``unknown_payout`` (nothing here
        matches it), ``voided`` (money for an order that could not take it, refunded),
        ``conflict`` (contradicts an earlier outcome)."""
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidCursor(f"limit must be between 1 and {MAX_LIMIT}")
        pe = s.provider_events.c
        key = (pe.received_at, pe.provider, pe.event_id)
        q = select(s.provider_events).where(pe.tenant_id == tenant_id)
        if outcome is not None:
            q = q.where(pe.outcome == outcome)
        if provider is not None:
            q = q.where(pe.provider == provider)
        if cursor is not None:
            after = _decode_event_cursor(cursor)
            q = q.where(tuple_(*key) > tuple_(*(literal(v) for v in after)))
        with read_only(self.engine).connect() as conn:
            rows = conn.execute(q.order_by(*key).limit(limit + 1)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(
            [
                ProviderEvent(
                    provider=r.provider,
                    event_id=r.event_id,
                    kind=r.kind,
                    provider_order_id=r.provider_order_id,
                    amount=_cny(r.amount_fen),
                    outcome=r.outcome,
                    detail=r.detail,
                    received_at=r.received_at,
                )
                for r in rows
            ],
            _encode_event_cursor(rows[-1]) if more else None,
        )

    # ------------------------------------------------------------------ provider settings

    def set_wechat_config(
        self,
        tenant_id: int,
        *,
        api_v3_key: str,
        platform_keys: Mapping[str, str],
        mch_id: str | None,
        actor: str,
        app_id: str | None = None,
        merchant_serial: str | None = None,
        merchant_private_key: str | None = None,
        notify_url: str | None = None,
        api_base_url: str | None = None,
    ) -> WeChatConfig:
        """Store the tenant's WeChat Pay keys (every one checked before anything is stored).

        The APIv3 key and the platform keys verify notifications.  With the merchant's API
        key too (``app_id``, ``merchant_serial``, ``merchant_private_key``, ``notify_url``,
        and ``mch_id``: all of them or none), tokenmall also calls WeChat Pay: JSAPI prepay
        for a payer's openid, refunds, and transfers for withdrawals.  The keys are stored as
        given: protecting them at rest (a KMS, an encrypted column) is the deployment's job
        and not done here yet.
        """
        config: dict[str, Any] = {
            "api_v3_key": api_v3_key,
            "keys": dict(platform_keys),
            "mch_id": mch_id,
        }
        outbound = {
            "app_id": app_id,
            "merchant_serial": merchant_serial,
            "merchant_private_key": merchant_private_key,
            "notify_url": notify_url,
        }
        given = [k for k, v in outbound.items() if v]
        try:
            if given:
                missing = [k for k, v in outbound.items() if not v]
                if mch_id is None:
                    missing.insert(0, "mch_id")
                if missing:
                    raise ProviderConfigError(
                        "outbound WeChat Pay calls need all of mch_id, app_id, merchant_serial, "
                        f"merchant_private_key and notify_url; missing: {', '.join(missing)}"
                    )
                outbound["api_base_url"] = _check_api_url(api_base_url or WECHAT_API)
                config["outbound"] = outbound
            elif api_base_url:
                raise ProviderConfigError("api_base_url is only used with outbound calls")
            api = _wechat_entry(config, system_clock).api
            if api is not None:
                api.close()
        except ProviderConfigError as exc:
            raise InvalidCommand(str(exc)) from None
        now = self.clock()
        p = s.payment_settings.c
        with self.engine.begin() as conn:
            done = conn.execute(
                update(s.payment_settings)
                .where(p.tenant_id == tenant_id, p.provider == "wechat")
                .values(config=json.dumps(config), updated_at=now, updated_by=actor)
            )
            if done.rowcount == 0:
                conn.execute(
                    insert(s.payment_settings).values(
                        tenant_id=tenant_id,
                        provider="wechat",
                        config=json.dumps(config),
                        updated_at=now,
                        updated_by=actor,
                    )
                )
        return _wechat_config(config, now, actor)

    def refresh_wechat_certificates(
        self, tenant_id: int, *, actor: str
    ) -> tuple[WeChatConfig, list[str]]:
        """Download WeChat's platform certificates and add those the configuration lacks.

        For merchants in certificate mode: WeChat rotates its platform certificate, and a
        notification signed with one the configuration lacks is refused, so payments would
        stall.  New certificates go first (the first key seals payee names) and none is
        removed: an old one keeps verifying what WeChat signed before.  The scheduler does
        this once a day (:meth:`reconcile_payments`); an operator can ask for it at once.
        Returns the configuration and the serials added.
        """
        p = s.payment_settings.c
        with read_only(self.engine).connect() as conn:
            row = conn.execute(
                select(s.payment_settings).where(p.tenant_id == tenant_id, p.provider == "wechat")
            ).first()
            api = self.hub.wechat_api(conn, tenant_id)
        if row is None or api is None:
            raise ProviderNotConfigured(
                "downloading WeChat Pay certificates needs the outbound configuration"
            )
        config = json.loads(row.config)
        certs = api.download_certificates(config["api_v3_key"])
        added = [c.serial for c in certs if c.serial not in config["keys"]]
        if not added:
            return _wechat_config(config, row.updated_at, row.updated_by), []
        config["keys"] = {
            **{c.serial: c.pem for c in certs if c.serial in added},
            **config["keys"],
        }
        now = self.clock()
        with self.engine.begin() as conn:
            done = conn.execute(
                update(s.payment_settings)
                .where(
                    p.tenant_id == tenant_id,
                    p.provider == "wechat",
                    p.updated_at == row.updated_at,  # no lost update of a concurrent change
                )
                .values(config=json.dumps(config), updated_at=now, updated_by=actor)
            )
        if done.rowcount != 1:
            raise Conflict("the WeChat Pay configuration changed meanwhile; ask again")
        log.info("tenant %s: WeChat Pay platform certificates added: %s", tenant_id, added)
        return _wechat_config(config, now, actor), added

    def get_wechat_config(self, tenant_id: int) -> WeChatConfig:
        p = s.payment_settings.c
        with self.engine.connect() as conn:
            row = conn.execute(
                select(s.payment_settings).where(p.tenant_id == tenant_id, p.provider == "wechat")
            ).first()
        if row is None:
            return WeChatConfig(False)
        return _wechat_config(json.loads(row.config), row.updated_at, row.updated_by)


def _wechat_config(config: Mapping[str, Any], at: float, by: str | None) -> WeChatConfig:
    """What may be shown of a stored configuration: never a key, only serials and ids."""
    out = config.get("outbound") or {}
    return WeChatConfig(
        True,
        config.get("mch_id"),
        sorted(config["keys"]),
        at,
        by,
        outbound=bool(out),
        app_id=out.get("app_id"),
        merchant_serial=out.get("merchant_serial"),
        notify_url=out.get("notify_url"),
        api_base_url=out.get("api_base_url"),
    )


# ----------------------------------------------------------------------------- jobs


def expire_orders(
    engine: Engine, now: float | datetime | None = None, *, tenant_id: int | None = None
) -> int:
    """Expire every unpaid order past ``expires_at`` and release its stock; the count.

    An order with an open WeChat payment waits :data:`PAYMENT_GRACE` longer (its payment may
    have been made in time; the scheduler's reconciliation finds out first).

    Safe to run from several processes at once and next to lazy expiry: each order moves out
    of ``pending_payment`` by a conditional update, so its stock comes back once.
    """
    at = _ts(now)
    o, py = s.orders.c, s.payments.c
    # an open WeChat payment holds its order for PAYMENT_GRACE past the deadline
    awaiting = (
        select(py.id)
        .where(
            py.tenant_id == o.tenant_id,
            py.order_id == o.id,
            py.provider == "wechat",
            py.status == "requires_payment",
        )
        .exists()
    )
    count = 0
    with engine.connect() as conn:
        tenants = _tenant_ids(conn, tenant_id)
    for tid in tenants:
        after = 0
        while True:
            with engine.begin() as conn:
                ids = list(
                    conn.execute(
                        select(o.id)
                        .where(
                            o.tenant_id == tid,
                            o.status == "pending_payment",
                            o.expires_at <= at,
                            o.id > after,
                            (o.expires_at <= at - PAYMENT_GRACE) | ~awaiting,
                        )
                        .order_by(o.id)
                        .limit(_JOB_CHUNK)
                    ).scalars()
                )
                count += len(
                    _close_unpaid(
                        conn, tid, ids, status="expired", reason="not paid in time", now=at
                    )
                )
            if len(ids) < _JOB_CHUNK:
                break
            after = ids[-1]
    return count


def settle_due(
    engine: Engine, now: float | datetime | None = None, *, tenant_id: int | None = None
) -> SettleReport:
    """Settle every delivered order whose return window ended by ``now`` (R11).

    One ledger transaction per chunk of orders.  An order the ledger refuses to settle (its
    products' pool and dividend amounts exceed what is left of it, say) keeps ``delivered``,
    gets ``settle_error`` and is reported; the others settle.  Idempotent: the ledger key
    ``settle:<ref>`` and the status both say an order settled once.
    """
    at = _ts(now)
    ledger = Ledger(engine)
    o = s.orders.c
    settled = 0
    failed: list[tuple[int, str, str]] = []
    with engine.connect() as conn:
        tenants = _tenant_ids(conn, tenant_id)
    for tid in tenants:
        after = 0
        while True:
            with engine.begin() as conn:
                _lock_tenant(conn, tid)
                q = (
                    select(s.orders)
                    .where(
                        o.tenant_id == tid,
                        o.status == "delivered",
                        o.settle_at <= at,
                        o.id > after,
                    )
                    .order_by(o.id)
                    .limit(_JOB_CHUNK)
                )
                if conn.dialect.name != "sqlite":
                    q = q.with_for_update()
                rows = list(conn.execute(q))
                if rows:
                    params = _params(conn, tid)
                    items: list[tuple[str, Command]] = [
                        (f"settle:{r.ref}", _settle_command(conn, tid, r, params)) for r in rows
                    ]
                    for r, out in zip(rows, _submit(ledger, conn, tid, items), strict=True):
                        if out.status == "rejected":
                            reason = (out.error or "refused")[:300]
                            _set_order(conn, tid, r.id, settle_error=reason)
                            failed.append((tid, r.ref, reason))
                        else:
                            _set_order(
                                conn, tid, r.id, status="settled", settled_at=at, settle_error=None
                            )
                            settled += 1
            if len(rows) < _JOB_CHUNK:
                break
            after = rows[-1].id
    return SettleReport(settled, failed)
