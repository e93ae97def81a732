"""What the order flow hands out: read models, its errors and limits, and row mapping.

Frozen dataclasses, built from rows by the functions at the bottom and never written back:
every write goes through :mod:`.transitions` (an order's status) or the role that owns the row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from tokenmall.errors import InvalidCommand
from tokenmall.money import cny_of_fen, opt_cny_of_fen
from tokenmall.service.errors import Conflict
from tokenmall.store import schema as s

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
    "OrderStateError",
    "Payment",
    "ProviderEvent",
    "ProviderNotConfigured",
    "SandboxCompletion",
    "SettleReport",
    "Shipment",
    "ShippingAddress",
    "WeChatConfig",
    "check_ref",
]

ORDER_STATUSES: Final = s.ORDER_STATUSES
MAX_LINES: Final = 50
MAX_QUANTITY: Final = 10_000
# CNY per order: far below the ledger's 10^12 cap, and what a provider's 64-bit fen can carry
MAX_ORDER_TOTAL: Final = Decimal("1000000000")
DAY: Final = 86_400.0
REFUNDABLE: Final = ("paid", "delivered", "settled")  # statuses a refund may start from
JOB_CHUNK: Final = 200
PAYMENT_GRACE: Final = 900.0
"""Seconds past ``expires_at`` that an order with an open payment at a provider that takes
payments on its own (WeChat Pay) stays unexpired.

A customer who paid before the deadline gets the order even if the provider's notification
comes late (WeChat's retries: 15 s, 15 s, 30 s, 3 min, 10 min, ...), or never and the
scheduler's query (:func:`.reconcile.reconcile_payments`) finds the payment instead: expiring
at the deadline would void and refund a payment made in time.  Past the grace the order expires
anyway, and a payment that still arrives is voided and refunded."""

_REF_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


class OrderStateError(Conflict):
    """The order's state does not allow this (pay a cancelled order, refund an unpaid one)."""

    code = "order_state"


class ProviderNotConfigured(Conflict):
    """The tenant has not configured this payment provider."""

    code = "provider_not_configured"


def check_ref(value: str, what: str) -> str:
    """Ids callers choose (client order ids, refund ids): they go into URLs and provider ids."""
    if not _REF_RE.fullmatch(value):
        raise InvalidCommand(
            f"{what} {value!r} must be 1-64 letters, digits or _.:- (starting with a letter "
            "or digit)"
        )
    return value


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
class ShippingAddress:
    """Where the goods go (checked by :func:`.shipping.check_address`)."""

    recipient: str
    phone: str  # a mainland mobile number, 11 digits
    province: str
    city: str
    district: str
    detail: str


@dataclass(frozen=True, slots=True)
class Shipment:
    """One merchant's lines of an order, handed to a carrier."""

    merchant_id: int
    carrier: str
    tracking_no: str
    shipped_at: float
    shipped_by: str
    updated_at: float
    updated_by: str


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
    shipping_address: ShippingAddress | None = None
    shipments: list[Shipment] = field(default_factory=list)


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


# ----------------------------------------------------------------------------- row mapping


def line_of(row: Any) -> OrderLine:
    return OrderLine(
        sku_id=row.sku_id,
        product_id=row.product_id,
        merchant_id=row.merchant_id,
        name=row.name,
        quantity=row.quantity,
        unit_price=cny_of_fen(row.unit_price_fen),
        pool_amount=opt_cny_of_fen(row.pool_unit_fen),
        fund_amount=opt_cny_of_fen(row.fund_unit_fen),
    )


def payment_of(row: Any, ref: str, total_fen: int) -> Payment:
    return Payment(
        id=row.id,
        order_ref=ref,
        attempt=row.attempt,
        provider=row.provider,
        provider_order_id=row.provider_order_id,
        intent_id=row.intent_id,
        cny=cny_of_fen(row.cny_fen),
        sp=cny_of_fen(row.sp_fen),
        points_value=cny_of_fen(total_fen - row.cny_fen - row.sp_fen),
        status=row.status,
        note=row.note,
        refund_status=row.refund_status,
        provider_refund_id=row.provider_refund_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def refund_of(row: Any, ref: str) -> OrderRefund:
    return OrderRefund(
        refund_id=row.refund_ref,
        order_ref=ref,
        amount=cny_of_fen(row.amount_fen),
        cny=cny_of_fen(row.cny_fen),
        sp=cny_of_fen(row.sp_fen),
        phase=row.phase,
        reason=row.reason,
        provider_status=row.provider_status,
        provider_refund_id=row.provider_refund_id,
        ledger_seq=row.ledger_seq,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def order_of(row: Any, lines: list[OrderLine] | None = None) -> Order:
    return Order(
        id=row.id,
        ref=row.ref,
        client_ref=row.client_ref,
        member=row.member,
        status=row.status,
        total=cny_of_fen(row.total_fen),
        refunded=cny_of_fen(row.refunded_fen),
        paid_cny=opt_cny_of_fen(row.paid_cny_fen),
        paid_sp=opt_cny_of_fen(row.paid_sp_fen),
        paid_points_value=None
        if row.paid_cny_fen is None
        else cny_of_fen(row.total_fen - row.paid_cny_fen - row.paid_sp_fen),
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
