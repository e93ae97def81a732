"""Orders and payments: the bodies the order routes take and answer, and the WeChat Pay
configuration's."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from tokenmall.api.schemas.common import FenIn, InputModel, MemberCode, MoneyOut, utc_or_none
from tokenmall.api.schemas.shipping import ShipmentOut, ShippingAddressIn, ShippingAddressOut
from tokenmall.service.codec import dec
from tokenmall.service.orders import (
    MAX_LINES,
    MAX_QUANTITY,
    NotificationResult,
    Order,
    OrderLine,
    OrderRefund,
    Payment,
    ProviderEvent,
    SandboxCompletion,
    WeChatConfig,
)

__all__ = [
    "CancelIn",
    "CertificatesOut",
    "NotificationOut",
    "OrderCreate",
    "OrderLineIn",
    "OrderLineOut",
    "OrderOut",
    "OrderStatus",
    "OrderSummary",
    "PaymentCreate",
    "PaymentOut",
    "ProviderEventOut",
    "RefundCreate",
    "RefundOut",
    "SandboxComplete",
    "SandboxCompletionOut",
    "SignedRequestOut",
    "WeChatConfigIn",
    "WeChatConfigOut",
]

_REF = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
Ref = Annotated[str, StringConstraints(pattern=_REF)]
OrderStatus = Literal[
    "pending_payment",
    "paid",
    "delivered",
    "settled",
    "refunded",
    "cancelled",
    "expired",
    "failed",
]


# ----------------------------------------------------------------------------- bodies


class OrderLineIn(InputModel):
    sku_id: Annotated[int, Field(ge=1, le=2_147_483_647, strict=True)]
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY, strict=True)]


class OrderCreate(InputModel):
    member: MemberCode | None = Field(
        default=None, description="The buyer; required with an operator key, implied by a token."
    )
    lines: list[OrderLineIn] = Field(min_length=1, max_length=MAX_LINES)
    client_ref: Ref | None = Field(
        default=None,
        description="Your own order id: creating again with it returns the first order.",
    )
    shipping_address: ShippingAddressIn | None = Field(
        default=None,
        description="Where the goods go; shown only to the buyer, the order's merchants and "
        "operators.",
    )


class PaymentCreate(InputModel):
    provider: Literal["sandbox", "wechat"] = "sandbox"
    sp: FenIn = Field(
        default=Decimal(0),
        description="Part paid with stable points from the wallet.",
    )
    points_value: FenIn = Field(
        default=Decimal(0),
        description="Part paid by redeeming EP (R4): the points worth this much (after the sell "
        "fee) at the price when the payment applies are burned. The rest is CNY.",
    )
    payer: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = Field(
        default=None,
        description="provider wechat only: the payer's openid. The payment is then placed at "
        "WeChat Pay (JSAPI) and the answer carries pay_params for wx.requestPayment; needs the "
        "tenant's outbound WeChat configuration.",
    )


class CancelIn(InputModel):
    reason: str | None = Field(default=None, max_length=200)


class RefundCreate(InputModel):
    refund_id: Ref = Field(description="Your id of this refund: repeating it is safe.")
    amount: FenIn | None = Field(default=None, description="Omitted: all that is left.")
    reason: str | None = Field(default=None, max_length=200)


class SandboxComplete(InputModel):
    result: Literal["succeeded", "failed"] = "succeeded"
    deliver: bool = Field(
        default=True,
        description="Deliver the notifications to this service now; else return them signed "
        "(the sandbox's outbox keeps them too and delivers them with its next round).",
    )


class WeChatConfigIn(InputModel):
    api_v3_key: str = Field(min_length=32, max_length=32, description="The APIv3 key.")
    platform_keys: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=64)],
        Annotated[str, StringConstraints(max_length=8192)],
    ] = Field(min_length=1, max_length=5, description="Serial -> platform certificate or key PEM.")
    mch_id: str | None = Field(default=None, max_length=32)
    app_id: str | None = Field(
        default=None,
        max_length=32,
        description="Outbound calls: the appid (mini-program or official account) payments use.",
    )
    merchant_serial: str | None = Field(
        default=None,
        max_length=64,
        description="Outbound calls: the serial of the merchant API certificate.",
    )
    merchant_private_key: str | None = Field(
        default=None,
        max_length=8192,
        description="Outbound calls: the merchant API private key (apiclient_key.pem). Never "
        "shown again.",
    )
    notify_url: str | None = Field(
        default=None,
        max_length=256,
        description="Outbound calls: the public https URL of this tenant's "
        "/payments/wechat/notify route, which WeChat Pay calls back.",
    )
    api_base_url: str | None = Field(
        default=None,
        max_length=256,
        description="Outbound calls: WeChat Pay's API address (default "
        "https://api.mch.weixin.qq.com).",
    )


# ----------------------------------------------------------------------------- answers


class OrderLineOut(BaseModel):
    sku_id: int
    product_id: int
    merchant_id: int
    name: str
    quantity: int
    unit_price: MoneyOut
    amount: MoneyOut
    pool_amount: MoneyOut | None = Field(description="Per unit, the product's override.")
    fund_amount: MoneyOut | None

    @classmethod
    def of(cls, ln: OrderLine) -> OrderLineOut:
        return cls(
            sku_id=ln.sku_id,
            product_id=ln.product_id,
            merchant_id=ln.merchant_id,
            name=ln.name,
            quantity=ln.quantity,
            unit_price=ln.unit_price,
            amount=ln.amount,
            pool_amount=ln.pool_amount,
            fund_amount=ln.fund_amount,
        )


class PaymentOut(BaseModel):
    order_ref: str
    attempt: int
    provider: str
    provider_order_id: str = Field(description="What the provider knows it by (out_trade_no).")
    intent_id: str | None
    cny: MoneyOut
    sp: MoneyOut
    points_value: MoneyOut
    status: str = Field(description="requires_payment | paid | failed | voided")
    note: str | None
    refund_status: str = Field(
        description="For a voided payment: none | pending | submitted | succeeded | failed | manual"
    )
    created_at: datetime
    pay_params: dict[str, str] | None = Field(
        default=None,
        description="WeChat JSAPI (with payer): appId, timeStamp, nonceStr, package, signType and "
        "paySign for wx.requestPayment. Only in the answer that starts or re-asks the payment.",
    )

    @classmethod
    def of(cls, p: Payment) -> PaymentOut:
        return cls(
            order_ref=p.order_ref,
            attempt=p.attempt,
            provider=p.provider,
            provider_order_id=p.provider_order_id,
            intent_id=p.intent_id,
            cny=p.cny,
            sp=p.sp,
            points_value=p.points_value,
            status=p.status,
            note=p.note,
            refund_status=p.refund_status,
            created_at=datetime.fromtimestamp(p.created_at, tz=UTC),
            pay_params=p.pay_params,
        )


class RefundOut(BaseModel):
    refund_id: str
    order_ref: str
    amount: MoneyOut
    cny: MoneyOut = Field(description="Back to the payer through the provider.")
    sp: MoneyOut = Field(description="Back to the wallet as stable points.")
    phase: Literal["before_settlement", "after_settlement"]
    reason: str | None
    provider_status: str = Field(description="none | pending | submitted | succeeded | failed")
    provider_refund_id: str | None
    created_at: datetime

    @classmethod
    def of(cls, r: OrderRefund) -> RefundOut:
        return cls(
            refund_id=r.refund_id,
            order_ref=r.order_ref,
            amount=r.amount,
            cny=r.cny,
            sp=r.sp,
            phase=r.phase,  # type: ignore[arg-type]
            reason=r.reason,
            provider_status=r.provider_status,
            provider_refund_id=r.provider_refund_id,
            created_at=datetime.fromtimestamp(r.created_at, tz=UTC),
        )


class ProviderEventOut(BaseModel):
    provider: str
    event_id: str = Field(description="The provider's event, the same on every redelivery.")
    kind: str = Field(description="payment_succeeded, refund_failed, payout_succeeded, ...")
    provider_order_id: str | None = Field(description="out_trade_no of a payment or refund.")
    amount: MoneyOut
    outcome: str = Field(
        description="What it did: applied, voided, payment_failed, refund_succeeded, ...; "
        "amount_mismatch, unknown_payment, unknown_refund, unknown_payout and conflict "
        "changed nothing and are for an operator to look at."
    )
    detail: str | None
    received_at: datetime

    @classmethod
    def of(cls, e: ProviderEvent) -> ProviderEventOut:
        return cls(
            provider=e.provider,
            event_id=e.event_id,
            kind=e.kind,
            provider_order_id=e.provider_order_id,
            amount=e.amount,
            outcome=e.outcome,
            detail=e.detail,
            received_at=datetime.fromtimestamp(e.received_at, tz=UTC),
        )


class OrderSummary(BaseModel):
    ref: str
    client_ref: str | None
    member: str
    status: OrderStatus
    total: MoneyOut
    refunded: MoneyOut
    paid_cny: MoneyOut | None
    paid_sp: MoneyOut | None
    paid_points_value: MoneyOut | None = Field(description="The part paid by redeeming EP.")
    created_at: datetime
    expires_at: datetime
    paid_at: datetime | None
    delivered_at: datetime | None
    settle_at: datetime | None = Field(description="When the return window ends.")
    settled_at: datetime | None
    closed_at: datetime | None
    close_reason: str | None
    settle_error: str | None
    lines: list[OrderLineOut]
    shipping_address: ShippingAddressOut | None = None
    shipments: list[ShipmentOut] = Field(
        default_factory=list, description="One per merchant that shipped its lines."
    )

    @classmethod
    def fields_of(cls, o: Order) -> dict[str, Any]:
        return {
            "ref": o.ref,
            "client_ref": o.client_ref,
            "member": o.member,
            "status": o.status,
            "total": o.total,
            "refunded": o.refunded,
            "paid_cny": o.paid_cny,
            "paid_sp": o.paid_sp,
            "paid_points_value": o.paid_points_value,
            "created_at": utc_or_none(o.created_at),
            "expires_at": utc_or_none(o.expires_at),
            "paid_at": utc_or_none(o.paid_at),
            "delivered_at": utc_or_none(o.delivered_at),
            "settle_at": utc_or_none(o.settle_at),
            "settled_at": utc_or_none(o.settled_at),
            "closed_at": utc_or_none(o.closed_at),
            "close_reason": o.close_reason,
            "settle_error": o.settle_error,
            "lines": [OrderLineOut.of(ln) for ln in o.lines],
            "shipping_address": ShippingAddressOut.maybe(o.shipping_address),
            "shipments": [ShipmentOut.of(sh) for sh in o.shipments],
        }

    @classmethod
    def of(cls, o: Order) -> OrderSummary:
        return cls(**cls.fields_of(o))


class OrderOut(OrderSummary):
    paid_points: str | None = Field(description="EP redeemed (burned) by the payment.")
    payments: list[PaymentOut]
    refunds: list[RefundOut]

    @classmethod
    def of(cls, o: Order) -> OrderOut:
        return cls(
            **cls.fields_of(o),
            paid_points=None if o.paid_points is None else dec(o.paid_points),
            payments=[PaymentOut.of(p) for p in o.payments],
            refunds=[RefundOut.of(r) for r in o.refunds],
        )


class NotificationOut(BaseModel):
    event_id: str
    kind: str
    outcome: str = Field(
        description="applied | voided | payment_failed | refund_succeeded | refund_failed | "
        "amount_mismatch | unknown_payment | unknown_refund | already_applied | ignored"
    )
    duplicate: bool = Field(description="Delivered before: nothing changed this time.")
    order_ref: str | None
    detail: str | None

    @classmethod
    def of(cls, r: NotificationResult) -> NotificationOut:
        return cls(
            event_id=r.event_id,
            kind=r.kind,
            outcome=r.outcome,
            duplicate=r.duplicate,
            order_ref=r.order_ref,
            detail=r.detail,
        )


class SignedRequestOut(BaseModel):
    headers: dict[str, str]
    body: str = Field(description="Send these exact bytes (UTF-8) with these headers.")


class SandboxCompletionOut(BaseModel):
    intent_id: str
    status: str
    deliveries: list[SignedRequestOut] = Field(
        description="The signed notifications sent (deliver: true) or to send (deliver: false)."
    )
    results: list[NotificationOut]

    @classmethod
    def of(cls, c: SandboxCompletion) -> SandboxCompletionOut:
        return cls(
            intent_id=c.intent_id,
            status=c.status,
            deliveries=[SignedRequestOut(headers=h, body=b.decode()) for h, b in c.deliveries],
            results=[NotificationOut.of(r) for r in c.results],
        )


class WeChatConfigOut(BaseModel):
    configured: bool
    mch_id: str | None
    platform_key_serials: list[str]
    updated_at: datetime | None
    updated_by: str | None
    outbound: bool = Field(
        default=False,
        description="tokenmall can call WeChat Pay (prepay, refunds, transfers); otherwise "
        "WeChat refunds are manual.",
    )
    app_id: str | None = None
    merchant_serial: str | None = None
    notify_url: str | None = None
    api_base_url: str | None = None

    @classmethod
    def of(cls, c: WeChatConfig) -> WeChatConfigOut:
        return cls(
            configured=c.configured,
            mch_id=c.mch_id,
            platform_key_serials=c.serials,
            updated_at=utc_or_none(c.updated_at),
            updated_by=c.updated_by,
            outbound=c.outbound,
            app_id=c.app_id,
            merchant_serial=c.merchant_serial,
            notify_url=c.notify_url,
            api_base_url=c.api_base_url,
        )


class CertificatesOut(BaseModel):
    added: list[str] = Field(description="Serials of the platform certificates just added.")
    config: WeChatConfigOut
