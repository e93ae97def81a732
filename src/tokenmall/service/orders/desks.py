"""The facades of the merchants' desk and of after-sales, reached from the order service
(``OrderService.merchants``, ``OrderService.aftersales``) so routes, jobs and tests build
nothing of their own: the same context (store, providers, clock) as the rest of the flow."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from tokenmall.service.orders import aftersales, merchant_desk
from tokenmall.service.orders.aftersales import AfterSalesRequest, Viewer
from tokenmall.service.orders.context import OrderContext
from tokenmall.service.orders.merchant_desk import MerchantOrder
from tokenmall.service.pages import Page

__all__ = ["AfterSalesDesk", "MerchantDesk"]


class MerchantDesk:
    """A merchant's orders: each call names the merchant it acts for; an order without a
    line of that merchant is answered as absent."""

    def __init__(self, ctx: OrderContext) -> None:
        self.ctx = ctx

    def list_orders(
        self,
        tenant_id: int,
        merchant_id: int,
        *,
        limit: int,
        cursor: str | None,
        status: str | None = None,
        created_from: float | None = None,
        created_to: float | None = None,
    ) -> Page[MerchantOrder]:
        return merchant_desk.list_orders(
            self.ctx,
            tenant_id,
            merchant_id,
            limit=limit,
            cursor=cursor,
            status=status,
            created_from=created_from,
            created_to=created_to,
        )

    def get_order(self, tenant_id: int, merchant_id: int, ref: str) -> MerchantOrder:
        return merchant_desk.get_order(self.ctx, tenant_id, merchant_id, ref)

    def ship(
        self,
        tenant_id: int,
        merchant_id: int,
        ref: str,
        *,
        carrier: str,
        tracking_no: str,
        actor: str,
    ) -> tuple[MerchantOrder, bool]:
        """The merchant's lines left with ``carrier`` under ``tracking_no``; the same again
        changes nothing, another number corrects it; (order, first time)."""
        return merchant_desk.ship(
            self.ctx,
            tenant_id,
            merchant_id,
            ref,
            carrier=carrier,
            tracking_no=tracking_no,
            actor=actor,
        )


class AfterSalesDesk:
    """Refund requests: a member asks, the merchant or an operator accepts or refuses."""

    def __init__(self, ctx: OrderContext) -> None:
        self.ctx = ctx

    def request_refund(
        self,
        tenant_id: int,
        order_ref: str,
        *,
        viewer: Viewer,
        amount: Decimal,
        reason: str,
        photos: Sequence[str] = (),
        actor: str,
    ) -> AfterSalesRequest:
        return aftersales.request_refund(
            self.ctx,
            tenant_id,
            order_ref,
            viewer=viewer,
            amount=amount,
            reason=reason,
            photos=photos,
            actor=actor,
        )

    def get(self, tenant_id: int, ref: str, viewer: Viewer) -> AfterSalesRequest:
        return aftersales.get_request(self.ctx, tenant_id, ref, viewer)

    def list(
        self,
        tenant_id: int,
        viewer: Viewer,
        *,
        limit: int,
        cursor: str | None,
        status: str | None = None,
        order_ref: str | None = None,
        merchant_id: int | None = None,
    ) -> Page[AfterSalesRequest]:
        return aftersales.list_requests(
            self.ctx,
            tenant_id,
            viewer,
            limit=limit,
            cursor=cursor,
            status=status,
            order_ref=order_ref,
            merchant_id=merchant_id,
        )

    def accept(
        self, tenant_id: int, tenant: str, ref: str, *, viewer: Viewer, actor: str
    ) -> tuple[AfterSalesRequest, bool]:
        """Accept and refund (one unit of work); accepting a refunded request again answers
        it unchanged; (request, whether this call accepted it)."""
        return aftersales.accept(self.ctx, tenant_id, tenant, ref, viewer=viewer, actor=actor)

    def refuse(
        self, tenant_id: int, ref: str, *, viewer: Viewer, actor: str, reason: str
    ) -> tuple[AfterSalesRequest, bool]:
        return aftersales.refuse(
            self.ctx, tenant_id, ref, viewer=viewer, actor=actor, reason=reason
        )

    def cancel(
        self, tenant_id: int, ref: str, *, viewer: Viewer, actor: str
    ) -> tuple[AfterSalesRequest, bool]:
        return aftersales.cancel(self.ctx, tenant_id, ref, viewer=viewer, actor=actor)
