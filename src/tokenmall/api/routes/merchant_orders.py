"""A merchant's orders: list, read and ship its own lines.

Who may do what: a merchant key, for its own merchant only (another merchant's id in the path:
403, as for the catalog; an order without a line of its merchant: 404, as if it did not
exist); operators and the platform admin, for any merchant (an operator ships for a merchant
that has no system of its own).  Member tokens: 403.  What a merchant sees of an order is its
own lines, their amount, the shipping address and its own shipment: not the other merchants'
goods, nor the payments.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from tokenmall.api.deps import Caller, CatalogWriter, Paging
from tokenmall.api.errors import ERROR_RESPONSES, ApiError
from tokenmall.api.routes import API_PREFIX
from tokenmall.api.routes.orders import OrderRef, Orders
from tokenmall.api.schemas import Page
from tokenmall.api.schemas.orders import OrderStatus
from tokenmall.api.schemas.shipping import MerchantOrderOut, ShipmentIn

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["merchant orders"], responses=ERROR_RESPONSES)

MerchantId = Annotated[int, Path(ge=1, le=2_147_483_647, description="The merchant's id.")]


def _own(caller: Caller, merchant_id: int) -> None:
    if caller.kind == "merchant" and caller.principal.merchant_id != merchant_id:
        raise ApiError(403, "forbidden", "a merchant key reaches its own merchant's orders only")


def _ts(at: datetime | None, what: str) -> float | None:
    if at is None:
        return None
    if at.tzinfo is None:
        raise ApiError(422, "validation_error", f"{what} needs a time zone (e.g. Z or +08:00)")
    return at.timestamp()


@router.get("/tenants/{tenant}/merchants/{merchant_id}/orders")
def list_merchant_orders(  # noqa: PLR0917 - FastAPI passes them by name: the filters of the list
    caller: CatalogWriter,
    orders: Orders,
    page: Paging,
    merchant_id: MerchantId,
    status: OrderStatus | None = None,
    created_from: Annotated[
        datetime | None, Query(description="Created at or after (ISO 8601 with a zone).")
    ] = None,
    created_to: Annotated[datetime | None, Query(description="Created before.")] = None,
) -> Page[MerchantOrderOut]:
    """Orders with at least one line of this merchant, oldest first, each showing only the
    merchant's own lines.  ``?status=paid`` is what is waiting to ship."""
    _own(caller, merchant_id)
    found = orders.merchants.list_orders(
        caller.tenant_id,
        merchant_id,
        limit=page.limit,
        cursor=page.cursor,
        status=status,
        created_from=_ts(created_from, "created_from"),
        created_to=_ts(created_to, "created_to"),
    )
    return Page(items=[MerchantOrderOut.of(o) for o in found.items], next_cursor=found.next_cursor)


@router.get("/tenants/{tenant}/merchants/{merchant_id}/orders/{order_ref}")
def read_merchant_order(
    caller: CatalogWriter, orders: Orders, merchant_id: MerchantId, order_ref: OrderRef
) -> MerchantOrderOut:
    """The order as this merchant sees it (404 if none of its lines is the merchant's)."""
    _own(caller, merchant_id)
    return MerchantOrderOut.of(orders.merchants.get_order(caller.tenant_id, merchant_id, order_ref))


@router.post(
    "/tenants/{tenant}/merchants/{merchant_id}/orders/{order_ref}/shipment",
    status_code=201,
    responses={200: {"model": MerchantOrderOut, "description": "Shipped before"}},
)
def ship_order(  # noqa: PLR0917 - FastAPI passes them by name
    caller: CatalogWriter,
    orders: Orders,
    merchant_id: MerchantId,
    order_ref: OrderRef,
    body: ShipmentIn,
    response: Response,
) -> MerchantOrderOut:
    """The merchant's lines of a paid order left with ``carrier`` under ``tracking_no`` (201).
    Again (200): the same values change nothing, others correct them (who and when kept).
    The order stays ``paid``: the buyer or an operator confirms delivery, which starts the
    return window."""
    _own(caller, merchant_id)
    order, created = orders.merchants.ship(
        caller.tenant_id,
        merchant_id,
        order_ref,
        carrier=body.carrier,
        tracking_no=body.tracking_no,
        actor=caller.principal.actor,
    )
    if not created:
        response.status_code = 200
    return MerchantOrderOut.of(order)
