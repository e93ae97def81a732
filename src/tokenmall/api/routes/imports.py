"""Bulk import of already-paid orders for integrators (operator scope); see service.imports.

One request of up to 5,000 orders is one ledger transaction: the batch is validated first
(422 naming the item, nothing applied), then every order gets a per-item status.  A retry of
the same request is safe: each order is idempotent by its ``external_id``.
"""

from __future__ import annotations

from fastapi import APIRouter

from tokenmall.api.deps import Context, OperatorCaller
from tokenmall.api.errors import ERROR_RESPONSES
from tokenmall.api.routes import API_PREFIX
from tokenmall.api.schemas.imports import ImportOut, OrderImport
from tokenmall.service.imports import import_orders

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["orders"], responses=ERROR_RESPONSES)


@router.post("/tenants/{tenant}/orders/import")
def import_paid_orders(caller: OperatorCaller, ctx: Context, body: OrderImport) -> ImportOut:
    """Import up to 5,000 orders your system has already been paid for, in one transaction.

    Each order is a settled purchase at once (EP, referral EP, quota and the pool and fund
    shares are granted now), whatever the tenant's ``settle_days``.  The whole batch is
    validated first: an invalid order is a 422 naming ``orders[i]`` and nothing is applied.
    Then each order gets its own status; ``external_id`` makes each one idempotent.
    """
    report = import_orders(ctx.ledger, caller.tenant_id, [o.item() for o in body.orders])
    return ImportOut.of(report)
