"""After-sales: refund requests over HTTP.

Who may do what:

* a member token: ask for a refund of its own order, read and list its own requests, cancel
  an open one (another member's order or request: 404);
* a merchant key: list and read the requests on orders with its lines; accept or refuse
  those on orders wholly its own (a mixed order's: 403, an operator decides);
* operators and the platform admin: everything, for any member and merchant.

Accepting refunds through the order's refund flow, with the request id as the refund id, in
the same transaction: the request is ``refunded`` with the money, or nothing changed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from tokenmall.api.deps import Caller, Paging, TenantCaller
from tokenmall.api.errors import ERROR_RESPONSES
from tokenmall.api.routes import API_PREFIX
from tokenmall.api.routes.orders import OrderRef, Orders
from tokenmall.api.schemas import Page
from tokenmall.api.schemas.aftersales import (
    AfterSalesCreate,
    AfterSalesOut,
    AfterSalesRefuse,
    AfterSalesStatus,
)
from tokenmall.service.orders import Viewer

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["after-sales"], responses=ERROR_RESPONSES)

RequestId = Annotated[str, Path(max_length=64, description="The request's id (request_id).")]


def _viewer(caller: Caller) -> Viewer:
    if caller.kind == "member":
        return Viewer(member=caller.principal.member)
    if caller.kind == "merchant":
        return Viewer(merchant_id=caller.principal.merchant_id)
    return Viewer()


@router.post("/tenants/{tenant}/orders/{order_ref}/aftersales", status_code=201)
def request_refund(
    caller: TenantCaller, orders: Orders, order_ref: OrderRef, body: AfterSalesCreate
) -> AfterSalesOut:
    """Ask for ``amount`` back, with a reason and photos: for a paid order, or a delivered one
    inside its return window; at most what is left; one open request per order (409
    ``duplicate_request``).  A member asks for its own orders; an operator for the buyer."""
    done = orders.aftersales.request_refund(
        caller.tenant_id,
        order_ref,
        viewer=_viewer(caller),
        amount=body.amount,
        reason=body.reason,
        photos=body.photos,
        actor=caller.principal.actor,
    )
    return AfterSalesOut.of(done)


@router.get("/tenants/{tenant}/aftersales")
def list_requests(  # noqa: PLR0917 - FastAPI passes them by name: the filters of the list
    caller: TenantCaller,
    orders: Orders,
    page: Paging,
    status: AfterSalesStatus | None = None,
    order_ref: Annotated[str | None, Query(max_length=64)] = None,
    merchant_id: Annotated[int | None, Query(ge=1, le=2_147_483_647)] = None,
) -> Page[AfterSalesOut]:
    """Requests the credential may see, oldest first, each with its history: a member's own,
    a merchant's orders', or (operators) all; ``?status=requested`` is what waits for a
    decision."""
    found = orders.aftersales.list(
        caller.tenant_id,
        _viewer(caller),
        limit=page.limit,
        cursor=page.cursor,
        status=status,
        order_ref=order_ref,
        merchant_id=merchant_id,
    )
    return Page(items=[AfterSalesOut.of(r) for r in found.items], next_cursor=found.next_cursor)


@router.get("/tenants/{tenant}/aftersales/{request_id}")
def read_request(caller: TenantCaller, orders: Orders, request_id: RequestId) -> AfterSalesOut:
    return AfterSalesOut.of(orders.aftersales.get(caller.tenant_id, request_id, _viewer(caller)))


@router.post("/tenants/{tenant}/aftersales/{request_id}/accept")
def accept_request(caller: TenantCaller, orders: Orders, request_id: RequestId) -> AfterSalesOut:
    """Accept and refund the amount (before settlement the money goes back; after it the
    rewards are taken back too, R11).  Accepting a refunded request again answers it."""
    done, _ = orders.aftersales.accept(
        caller.tenant_id,
        caller.tenant,
        request_id,
        viewer=_viewer(caller),
        actor=caller.principal.actor,
    )
    return AfterSalesOut.of(done)


@router.post("/tenants/{tenant}/aftersales/{request_id}/refuse")
def refuse_request(
    caller: TenantCaller, orders: Orders, request_id: RequestId, body: AfterSalesRefuse
) -> AfterSalesOut:
    """Refuse, saying why (the member sees the reason).  Refusing a refused request again
    answers it unchanged."""
    done, _ = orders.aftersales.refuse(
        caller.tenant_id,
        request_id,
        viewer=_viewer(caller),
        actor=caller.principal.actor,
        reason=body.reason,
    )
    return AfterSalesOut.of(done)


@router.post("/tenants/{tenant}/aftersales/{request_id}/cancel")
def cancel_request(caller: TenantCaller, orders: Orders, request_id: RequestId) -> AfterSalesOut:
    """The member withdraws an open request (an operator may, for them); again: unchanged."""
    done, _ = orders.aftersales.cancel(
        caller.tenant_id, request_id, viewer=_viewer(caller), actor=caller.principal.actor
    )
    return AfterSalesOut.of(done)
