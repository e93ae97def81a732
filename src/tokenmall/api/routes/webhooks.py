"""Webhooks of a tenant (operator only): register endpoints, list and replay deliveries."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from tokenmall.api.deps import Context, OperatorCaller, Paging
from tokenmall.api.errors import ERROR_RESPONSES
from tokenmall.api.routes import API_PREFIX
from tokenmall.api.schemas import Page
from tokenmall.api.schemas.webhooks import (
    WebhookCreate,
    WebhookCreated,
    WebhookDeliveryOut,
    WebhookOut,
)
from tokenmall.service import webhooks
from tokenmall.store.db import read_only

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["webhooks"], responses=ERROR_RESPONSES)

EndpointId = Annotated[int, Path(ge=1, le=2_147_483_647, description="The endpoint's id.")]
DeliveryId = Annotated[int, Path(ge=1, le=2_147_483_647, description="The delivery's id.")]


@router.post("/tenants/{tenant}/webhooks", status_code=201)
def create_webhook(caller: OperatorCaller, ctx: Context, body: WebhookCreate) -> WebhookCreated:
    """Register an endpoint for the events named. The signing secret is in this answer only."""
    with ctx.store.tenant_tx(caller.tenant_id, lock=False) as tx:
        endpoint, secret = webhooks.create_endpoint(
            tx.conn,
            caller.tenant_id,
            url=body.url,
            events=list(body.events),
            description=body.description,
            actor=caller.principal.actor,
        )
    return WebhookCreated(**WebhookOut.of(endpoint).model_dump(), secret=secret)


@router.get("/tenants/{tenant}/webhooks")
def list_webhooks(caller: OperatorCaller, ctx: Context, page: Paging) -> Page[WebhookOut]:
    """The tenant's endpoints, disabled ones included, without their secrets."""
    with read_only(ctx.engine).connect() as conn:
        found = webhooks.list_endpoints(
            conn, caller.tenant_id, limit=page.limit, cursor=page.cursor
        )
    return Page(items=[WebhookOut.of(e) for e in found.items], next_cursor=found.next_cursor)


@router.get("/tenants/{tenant}/webhooks/deliveries")
def list_webhook_deliveries(
    caller: OperatorCaller,
    ctx: Context,
    page: Paging,
    status: Literal["pending", "delivered", "failed"] | None = None,
    endpoint_id: Annotated[int | None, Query(ge=1, le=2_147_483_647)] = None,
) -> Page[WebhookDeliveryOut]:
    """Deliveries, oldest first: ``?status=failed`` are those given up, to replay."""
    with read_only(ctx.engine).connect() as conn:
        found = webhooks.list_deliveries(
            conn,
            caller.tenant_id,
            status=status,
            endpoint_id=endpoint_id,
            limit=page.limit,
            cursor=page.cursor,
        )
    return Page(
        items=[WebhookDeliveryOut.of(d) for d in found.items], next_cursor=found.next_cursor
    )


@router.get("/tenants/{tenant}/webhooks/deliveries/{delivery_id}")
def read_webhook_delivery(
    caller: OperatorCaller, ctx: Context, delivery_id: DeliveryId
) -> WebhookDeliveryOut:
    with read_only(ctx.engine).connect() as conn:
        return WebhookDeliveryOut.of(webhooks.get_delivery(conn, caller.tenant_id, delivery_id))


@router.post("/tenants/{tenant}/webhooks/deliveries/{delivery_id}/replay")
def replay_webhook_delivery(
    caller: OperatorCaller, ctx: Context, delivery_id: DeliveryId
) -> WebhookDeliveryOut:
    """Send a delivery again (same event id and body) from its first attempt: the scheduler's
    next round sends it."""
    with ctx.store.tenant_tx(caller.tenant_id, lock=False) as tx:
        found = webhooks.replay_delivery(tx.conn, caller.tenant_id, delivery_id)
    return WebhookDeliveryOut.of(found)


@router.delete("/tenants/{tenant}/webhooks/{endpoint_id}")
def disable_webhook(caller: OperatorCaller, ctx: Context, endpoint_id: EndpointId) -> WebhookOut:
    """Disable an endpoint: nothing new is written for it and nothing pending is sent.
    Disabling twice is harmless."""
    with ctx.store.tenant_tx(caller.tenant_id, lock=False) as tx:
        found = webhooks.disable_endpoint(tx.conn, caller.tenant_id, endpoint_id)
    return WebhookOut.of(found)
