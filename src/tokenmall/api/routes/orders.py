"""Orders and payments: the order life cycle over HTTP, and the providers' callbacks.

Who may do what:

* the tenant's back end (operator key) and the platform admin: everything, for any member;
* a member token: create, read, pay, cancel and confirm delivery of the member's *own* orders
  (another member's order answers 404, as if it did not exist), and play the customer at the
  sandbox for them;
* refunds, settling now and provider settings: operators only;
* merchant keys: none of it (403): an order may mix several merchants' goods.

The provider callbacks (``.../payments/sandbox/notify``, ``.../payments/wechat/notify``) take
no credential: the provider's signature is the authentication, checked before anything else;
a delivery that fails it is answered 400 and changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.concurrency import run_in_threadpool

from tokenmall.api.deps import AppContext, Caller, Context, OperatorCaller, Paging, TenantCaller
from tokenmall.api.errors import ERROR_RESPONSES, ApiError
from tokenmall.api.routes import API_PREFIX
from tokenmall.api.schemas import FenIn, MoneyOut, Page
from tokenmall.errors import NotFound
from tokenmall.payments import NotificationRejected
from tokenmall.service.codec import dec
from tokenmall.service.orders import (
    MAX_LINES,
    MAX_QUANTITY,
    NotificationResult,
    Order,
    OrderLine,
    OrderRefund,
    OrderService,
    Payment,
    ProviderEvent,
    SandboxCompletion,
    WeChatConfig,
)

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["orders"], responses=ERROR_RESPONSES)

MAX_NOTIFICATION_BYTES = 64 * 1024
_REF = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
Ref = Annotated[str, StringConstraints(pattern=_REF)]
MemberCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}$")]
OrderRef = Annotated[str, Path(max_length=64, description="The order's number (``ref``).")]
IntentId = Annotated[str, Path(max_length=64, description="The sandbox intent id.")]
Status = Literal[
    "pending_payment",
    "paid",
    "delivered",
    "settled",
    "refunded",
    "cancelled",
    "expired",
    "failed",
]

PaymentStatus = Literal["requires_payment", "paid", "failed", "voided"]
ProviderRefundStatus = Literal["none", "pending", "submitted", "succeeded", "failed", "manual"]
ProviderName = Literal["sandbox", "wechat", "wallet"]


async def _orders(request: Request, ctx: Context) -> OrderService:
    """The app's order service, built by the composition root (one per app: it holds the
    sandbox gateways).  ``async``: no I/O, so no thread-pool hand-over per request (see
    tokenmall.api.deps)."""
    service: OrderService = request.app.state.orders
    return service


Orders = Annotated[OrderService, Depends(_orders)]


def _utc(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC)


# ----------------------------------------------------------------------------- bodies


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrderLineIn(_In):
    sku_id: Annotated[int, Field(ge=1, le=2_147_483_647, strict=True)]
    quantity: Annotated[int, Field(ge=1, le=MAX_QUANTITY, strict=True)]


class OrderCreate(_In):
    member: MemberCode | None = Field(
        default=None, description="The buyer; required with an operator key, implied by a token."
    )
    lines: list[OrderLineIn] = Field(min_length=1, max_length=MAX_LINES)
    client_ref: Ref | None = Field(
        default=None,
        description="Your own order id: creating again with it returns the first order.",
    )


class PaymentCreate(_In):
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


class CancelIn(_In):
    reason: str | None = Field(default=None, max_length=200)


class RefundCreate(_In):
    refund_id: Ref = Field(description="Your id of this refund: repeating it is safe.")
    amount: FenIn | None = Field(default=None, description="Omitted: all that is left.")
    reason: str | None = Field(default=None, max_length=200)


class SandboxComplete(_In):
    result: Literal["succeeded", "failed"] = "succeeded"
    deliver: bool = Field(
        default=True,
        description="Deliver the notifications to this service now; else return them signed "
        "(the sandbox's outbox keeps them too and delivers them with its next round).",
    )


class WeChatConfigIn(_In):
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
    status: Status
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
            "created_at": _utc(o.created_at),
            "expires_at": _utc(o.expires_at),
            "paid_at": _utc(o.paid_at),
            "delivered_at": _utc(o.delivered_at),
            "settle_at": _utc(o.settle_at),
            "settled_at": _utc(o.settled_at),
            "closed_at": _utc(o.closed_at),
            "close_reason": o.close_reason,
            "settle_error": o.settle_error,
            "lines": [OrderLineOut.of(ln) for ln in o.lines],
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
            updated_at=_utc(c.updated_at),
            updated_by=c.updated_by,
            outbound=c.outbound,
            app_id=c.app_id,
            merchant_serial=c.merchant_serial,
            notify_url=c.notify_url,
            api_base_url=c.api_base_url,
        )


# ----------------------------------------------------------------------------- access


def _staff_or_member(caller: Caller) -> None:
    if caller.kind == "merchant":
        raise ApiError(
            403, "forbidden", "this needs platform admin, operator or member credentials"
        )


def _own_order(caller: Caller, service: OrderService, ref: str) -> Order:
    """The order, if the caller may see it: a member sees only their own (others: 404)."""
    _staff_or_member(caller)
    order = service.get_order(caller.tenant_id, ref)
    if caller.kind == "member" and order.member != caller.principal.member:
        raise NotFound(f"no order {ref!r}")
    return order


def _may_act_on(caller: Caller, service: OrderService, ref: str) -> None:
    """:func:`_own_order` for routes that act on the order and load it themselves: staff
    reach every order (the action answers 404 for a missing one); a member, only their own,
    checked with one indexed read of the order's member (others: 404)."""
    _staff_or_member(caller)
    if caller.kind == "member" and service.order_member(caller.tenant_id, ref) != (
        caller.principal.member
    ):
        raise NotFound(f"no order {ref!r}")


# ----------------------------------------------------------------------------- orders


@router.post("/tenants/{tenant}/orders", status_code=201)
def create_order(caller: TenantCaller, orders: Orders, body: OrderCreate) -> OrderOut:
    """Reserve the stock of ``lines`` for a member; unpaid, the order expires after the
    tenant's ``order_ttl_minutes`` and the stock comes back.  409 ``out_of_stock`` if a SKU
    has fewer units left."""
    _staff_or_member(caller)
    member = body.member
    if caller.kind == "member":
        if member not in (None, caller.principal.member):
            raise ApiError(403, "forbidden", "a member token orders for its own member only")
        member = caller.principal.member
    if member is None:
        raise ApiError(422, "validation_error", "member is required with this credential")
    order = orders.create_order(
        caller.tenant_id,
        member=member,
        lines=[(ln.sku_id, ln.quantity) for ln in body.lines],
        client_ref=body.client_ref,
    )
    return OrderOut.of(order)


@router.get("/tenants/{tenant}/orders")
def list_orders(
    caller: TenantCaller,
    orders: Orders,
    page: Paging,
    member: Annotated[str | None, Query(max_length=64)] = None,
    status: Status | None = None,
) -> Page[OrderSummary]:
    """Orders, oldest first; a member token lists its own member's only."""
    _staff_or_member(caller)
    if caller.kind == "member":
        if member not in (None, caller.principal.member):
            return Page(items=[], next_cursor=None)
        member = caller.principal.member
    found = orders.list_orders(
        caller.tenant_id, limit=page.limit, cursor=page.cursor, member=member, status=status
    )
    return Page(items=[OrderSummary.of(o) for o in found.items], next_cursor=found.next_cursor)


@router.get("/tenants/{tenant}/orders/{order_ref}")
def read_order(caller: TenantCaller, orders: Orders, order_ref: OrderRef) -> OrderOut:
    """The order with its lines, payment attempts and refunds."""
    return OrderOut.of(_own_order(caller, orders, order_ref))


@router.post("/tenants/{tenant}/orders/{order_ref}/cancel")
def cancel_order(
    caller: TenantCaller, orders: Orders, order_ref: OrderRef, body: CancelIn | None = None
) -> OrderOut:
    """Cancel an unpaid order (its stock comes back); a paid one is refunded instead."""
    _may_act_on(caller, orders, order_ref)
    reason = body.reason if body else None
    return OrderOut.of(orders.cancel_order(caller.tenant_id, order_ref, reason=reason))


@router.post("/tenants/{tenant}/orders/{order_ref}/payments", status_code=201)
def start_payment(
    caller: TenantCaller, orders: Orders, order_ref: OrderRef, body: PaymentCreate
) -> PaymentOut:
    """Pay ``sp`` from the wallet, ``points_value`` by redeeming EP (R4), and the rest in CNY
    through ``provider``.

    Without a CNY part, the order is paid on return.  Otherwise the answer is a payment
    intent (``intent_id``) that the customer pays at the provider; the order becomes paid
    when the provider's notification arrives, and the SP is taken then.
    """
    _staff_or_member(caller)
    pay = orders.start_payment(
        caller.tenant_id,
        caller.tenant,
        order_ref,
        provider=body.provider,
        sp=body.sp,
        points_value=body.points_value,
        member=caller.principal.member if caller.kind == "member" else None,
        payer=body.payer,
    )
    return PaymentOut.of(pay)


@router.post("/tenants/{tenant}/orders/{order_ref}/payments/sync")
def sync_payments(caller: TenantCaller, orders: Orders, order_ref: OrderRef) -> OrderOut:
    """Ask WeChat Pay now about the order's open WeChat payments, then answer the order.

    For the mini-program to call when ``wx.requestPayment`` reports success: a payment WeChat
    has taken is applied at once (exactly as its notification would be; the notification,
    when it comes, changes nothing), so the customer sees the order paid without waiting.
    The scheduler does the same by itself for payments left open.  Needs the tenant's
    outbound WeChat Pay configuration (409 otherwise); 502 if WeChat cannot be reached.
    """
    _staff_or_member(caller)
    order = orders.sync_payments(
        caller.tenant_id,
        caller.tenant,
        order_ref,
        member=caller.principal.member if caller.kind == "member" else None,
    )
    return OrderOut.of(order)


@router.post("/tenants/{tenant}/orders/{order_ref}/delivery")
def confirm_delivery(caller: TenantCaller, orders: Orders, order_ref: OrderRef) -> OrderOut:
    """The goods arrived (确认收货): the return window (``settle_days``) starts now."""
    _may_act_on(caller, orders, order_ref)
    return OrderOut.of(orders.confirm_delivery(caller.tenant_id, order_ref))


@router.post("/tenants/{tenant}/orders/{order_ref}/settlement")
def settle_order(caller: OperatorCaller, orders: Orders, order_ref: OrderRef) -> OrderOut:
    """Settle now, without waiting for the return window: the rewards (EP, quota, dividend
    contribution) are granted (R11)."""
    return OrderOut.of(orders.settle_order(caller.tenant_id, order_ref))


@router.post(
    "/tenants/{tenant}/orders/{order_ref}/refunds",
    status_code=201,
    responses={200: {"model": RefundOut, "description": "The same refund id again"}},
)
def refund_order(
    caller: OperatorCaller,
    orders: Orders,
    order_ref: OrderRef,
    body: RefundCreate,
    response: Response,
) -> RefundOut:
    """Refund all or part of a paid order.  Before settlement the money goes back and no
    reward existed; after it the rewards are taken back (R11).  The CNY part returns through
    the provider, the rest as SP.  The same ``refund_id`` with the same amount answers with the
    first refund (200); with another amount it is refused (409)."""
    refund, created = orders.refund(
        caller.tenant_id,
        caller.tenant,
        order_ref,
        refund_id=body.refund_id,
        amount=body.amount,
        reason=body.reason,
    )
    if not created:
        response.status_code = 200
    return RefundOut.of(refund)


@router.get("/tenants/{tenant}/orders/{order_ref}/refunds")
def list_refunds(caller: TenantCaller, orders: Orders, order_ref: OrderRef) -> list[RefundOut]:
    _may_act_on(caller, orders, order_ref)
    return [RefundOut.of(r) for r in orders.list_refunds(caller.tenant_id, order_ref)]


# ----------------------------------------------------------------------------- payments desk


@router.get("/tenants/{tenant}/payments")
def list_payments(
    *,
    caller: OperatorCaller,
    orders: Orders,
    page: Paging,
    status: PaymentStatus | None = None,
    refund_status: ProviderRefundStatus | None = None,
    provider: ProviderName | None = None,
) -> Page[PaymentOut]:
    """Payment attempts of every order, oldest first.  ``?status=voided&refund_status=manual``
    (or ``failed``): money that came for an order that could not take it and that the
    provider did not give back; an operator refunds it by hand."""
    found = orders.list_payments(
        caller.tenant_id,
        limit=page.limit,
        cursor=page.cursor,
        status=status,
        refund_status=refund_status,
        provider=provider,
    )
    return Page(items=[PaymentOut.of(p) for p in found.items], next_cursor=found.next_cursor)


@router.get("/tenants/{tenant}/refunds")
def list_all_refunds(
    caller: OperatorCaller,
    orders: Orders,
    page: Paging,
    provider_status: ProviderRefundStatus | None = None,
) -> Page[RefundOut]:
    """Refunds of every order, oldest first.  ``?provider_status=failed`` (or ``manual``):
    the CNY part did not go back through the provider; an operator settles it by hand."""
    found = orders.list_all_refunds(
        caller.tenant_id, limit=page.limit, cursor=page.cursor, provider_status=provider_status
    )
    return Page(items=[RefundOut.of(r) for r in found.items], next_cursor=found.next_cursor)


@router.get("/tenants/{tenant}/payments/events")
def list_provider_events(
    caller: OperatorCaller,
    orders: Orders,
    page: Paging,
    outcome: Annotated[str | None, Query(max_length=32)] = None,
    provider: Annotated[str | None, Query(max_length=16)] = None,
) -> Page[ProviderEventOut]:
    """Every provider notification applied (or found by a query of the provider), in the
    order received, with what it did.  ``?outcome=amount_mismatch`` (or ``unknown_payment``,
    ``unknown_refund``, ``unknown_payout``, ``conflict``): authentic events that changed
    nothing and need an operator."""
    found = orders.list_provider_events(
        caller.tenant_id,
        limit=page.limit,
        cursor=page.cursor,
        outcome=outcome,
        provider=provider,
    )
    return Page(items=[ProviderEventOut.of(e) for e in found.items], next_cursor=found.next_cursor)


# ----------------------------------------------------------------------------- providers


@router.post("/tenants/{tenant}/payments/sandbox/intents/{intent_id}/complete")
def complete_sandbox_intent(
    caller: TenantCaller, orders: Orders, intent_id: IntentId, body: SandboxComplete | None = None
) -> SandboxCompletionOut:
    """Sandbox only: act as the customer and pay (or fail) an intent.  The sandbox then sends
    its signed notifications, to this service (``deliver``) or back to you to send."""
    _staff_or_member(caller)
    body = body or SandboxComplete()
    done = orders.complete_sandbox(
        caller.tenant_id,
        caller.tenant,
        intent_id,
        succeed=body.result == "succeeded",
        deliver=body.deliver,
        member=caller.principal.member if caller.kind == "member" else None,
    )
    return SandboxCompletionOut.of(done)


_RAW_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
        "description": "The provider's notification, exactly as it sent it.",
    }
}


async def _notify(
    request: Request, ctx: AppContext, orders: OrderService, tenant: str, provider: str
) -> NotificationOut:
    # the event loop runs this: a tenant new to the process is looked up in the thread pool
    tenant_id = ctx.cached_tenant_id(tenant)
    if tenant_id is None:
        tenant_id = await run_in_threadpool(ctx.tenant_id, tenant)  # NotFound: 404
    body = await request.body()
    if len(body) > MAX_NOTIFICATION_BYTES:
        raise ApiError(413, "payload_too_large", "a notification is at most 64 KiB")
    try:
        result = await run_in_threadpool(
            orders.handle_notification, tenant_id, tenant, provider, dict(request.headers), body
        )
    except NotificationRejected as exc:
        raise ApiError(400, exc.code, str(exc)) from None
    return NotificationOut.of(result)


@router.post("/tenants/{tenant}/payments/sandbox/notify", openapi_extra=_RAW_BODY)
async def sandbox_notify(
    request: Request, ctx: Context, orders: Orders, tenant: Annotated[str, Path(max_length=64)]
) -> NotificationOut:
    """The sandbox provider's callback (HMAC-signed).  No credential: the signature is
    checked first; a bad one is answered 400 and changes nothing.  Deliveries of the same event
    after the first answer 200 with ``duplicate: true``."""
    return await _notify(request, ctx, orders, tenant, "sandbox")


@router.post("/tenants/{tenant}/payments/wechat/notify", openapi_extra=_RAW_BODY)
async def wechat_notify(
    request: Request, ctx: Context, orders: Orders, tenant: Annotated[str, Path(max_length=64)]
) -> NotificationOut:
    """WeChat Pay API v3 callback: RSA-SHA256 signature over timestamp, nonce and body with
    the platform key the serial names, then AES-256-GCM decryption with the APIv3 key."""
    return await _notify(request, ctx, orders, tenant, "wechat")


@router.put("/tenants/{tenant}/payments/wechat/config")
def set_wechat_config(
    caller: OperatorCaller, orders: Orders, body: WeChatConfigIn
) -> WeChatConfigOut:
    """The keys that verify this tenant's WeChat Pay notifications and, with the merchant's
    API key, let tokenmall call WeChat Pay (JSAPI prepay, refunds, transfers for withdrawals).
    Every key is checked before anything is stored."""
    done = orders.set_wechat_config(
        caller.tenant_id,
        api_v3_key=body.api_v3_key,
        platform_keys=body.platform_keys,
        mch_id=body.mch_id,
        actor=caller.principal.actor,
        app_id=body.app_id,
        merchant_serial=body.merchant_serial,
        merchant_private_key=body.merchant_private_key,
        notify_url=body.notify_url,
        api_base_url=body.api_base_url,
    )
    return WeChatConfigOut.of(done)


@router.get("/tenants/{tenant}/payments/wechat/config")
def read_wechat_config(caller: OperatorCaller, orders: Orders) -> WeChatConfigOut:
    """Whether WeChat Pay is configured, its merchant id and platform key serials (never the
    APIv3 key)."""
    return WeChatConfigOut.of(orders.get_wechat_config(caller.tenant_id))


class CertificatesOut(BaseModel):
    added: list[str] = Field(description="Serials of the platform certificates just added.")
    config: WeChatConfigOut


@router.post("/tenants/{tenant}/payments/wechat/certificates")
def refresh_wechat_certificates(caller: OperatorCaller, orders: Orders) -> CertificatesOut:
    """Download WeChat Pay's platform certificates now and add those the configuration lacks
    (certificate mode: WeChat rotates them; the scheduler also does this daily).  Needs the
    outbound configuration (409); 502 if WeChat cannot be reached or its list cannot be used."""
    config, added = orders.refresh_wechat_certificates(
        caller.tenant_id, actor=caller.principal.actor
    )
    return CertificatesOut(added=added, config=WeChatConfigOut.of(config))
