"""Orders and payments: the order life cycle over HTTP, and the providers' callbacks.

Who may do what:

* the tenant's back end (operator key) and the platform admin: everything, for any member;
* a member token: create, read, pay, cancel and confirm delivery of the member's *own* orders
  (another member's order answers 404, as if it did not exist), and play the customer at the
  sandbox for them;
* refunds, settling now and provider settings: operators only;
* merchant keys: none of it (403): an order may mix several merchants' goods, so a merchant
  reads and ships its own lines through ``/merchants/{merchant_id}/orders``
  (:mod:`tokenmall.api.routes.merchant_orders`).

The provider callbacks (``.../payments/sandbox/notify``, ``.../payments/wechat/notify``) take
no credential: the provider's signature is the authentication, checked before anything else;
a delivery that fails it is answered 400 and changes nothing.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from tokenmall.api.deps import AppContext, Caller, Context, OperatorCaller, Paging, TenantCaller
from tokenmall.api.errors import ERROR_RESPONSES, ApiError
from tokenmall.api.routes import API_PREFIX
from tokenmall.api.schemas import Page
from tokenmall.api.schemas.orders import (
    CancelIn,
    CertificatesOut,
    NotificationOut,
    OrderCreate,
    OrderOut,
    OrderStatus,
    OrderSummary,
    PaymentCreate,
    PaymentOut,
    ProviderEventOut,
    RefundCreate,
    RefundOut,
    SandboxComplete,
    SandboxCompletionOut,
    WeChatConfigIn,
    WeChatConfigOut,
)
from tokenmall.errors import NotFound
from tokenmall.payments import NotificationRejected
from tokenmall.service.orders import (
    Order,
    OrderService,
)

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["orders"], responses=ERROR_RESPONSES)

MAX_NOTIFICATION_BYTES = 64 * 1024
OrderRef = Annotated[str, Path(max_length=64, description="The order's number (``ref``).")]
IntentId = Annotated[str, Path(max_length=64, description="The sandbox intent id.")]
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
        address=None if body.shipping_address is None else body.shipping_address.to_address(),
    )
    return OrderOut.of(order)


@router.get("/tenants/{tenant}/orders")
def list_orders(
    caller: TenantCaller,
    orders: Orders,
    page: Paging,
    member: Annotated[str | None, Query(max_length=64)] = None,
    status: OrderStatus | None = None,
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


@router.post("/tenants/{tenant}/payments/wechat/certificates")
def refresh_wechat_certificates(caller: OperatorCaller, orders: Orders) -> CertificatesOut:
    """Download WeChat Pay's platform certificates now and add those the configuration lacks
    (certificate mode: WeChat rotates them; the scheduler also does this daily).  Needs the
    outbound configuration (409); 502 if WeChat cannot be reached or its list cannot be used."""
    config, added = orders.refresh_wechat_certificates(
        caller.tenant_id, actor=caller.principal.actor
    )
    return CertificatesOut(added=added, config=WeChatConfigOut.of(config))
