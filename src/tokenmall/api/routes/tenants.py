"""Tenants: created and listed by the platform admin; read and re-parametrised per tenant."""

from __future__ import annotations

from fastapi import APIRouter

from tokenmall.api.deps import AdminCaller, AnyCaller, Context, OperatorCaller, Paging
from tokenmall.api.errors import ERROR_RESPONSES
from tokenmall.api.routes import API_PREFIX
from tokenmall.api.schemas import (
    Page,
    ParamChangeCreate,
    ParamChangeOut,
    TenantCreate,
    TenantOut,
)
from tokenmall.service import tenants
from tokenmall.store.db import read_only

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["tenants"], responses=ERROR_RESPONSES)


@router.post("/tenants", status_code=201)
def create_tenant(_admin: AdminCaller, ctx: Context, body: TenantCreate) -> TenantOut:
    """Create a tenant (one mall) with its parameters; those not given take their defaults."""
    record = tenants.create_tenant(
        ctx.ledger, body.code, name=body.name, timezone=body.timezone, params=body.params
    )
    return TenantOut.of(record)


@router.get("/tenants")
def list_tenants(_admin: AdminCaller, ctx: Context, page: Paging) -> Page[TenantOut]:
    """Every tenant of the platform."""
    with read_only(ctx.engine).connect() as conn:
        found = tenants.list_tenants(conn, limit=page.limit, cursor=page.cursor)
    return Page(items=[TenantOut.of(t) for t in found.items], next_cursor=found.next_cursor)


@router.get("/tenants/{tenant}")
def read_tenant(caller: AnyCaller, ctx: Context) -> TenantOut:
    """The tenant, its time zone and its current parameters (the rules members play by)."""
    with read_only(ctx.engine).connect() as conn:
        return TenantOut.of(tenants.get_tenant(conn, caller.tenant))


@router.post("/tenants/{tenant}/param-changes", status_code=201)
def change_params(caller: OperatorCaller, ctx: Context, body: ParamChangeCreate) -> ParamChangeOut:
    """Change parameters: effective from the tenant's next event, recorded with who and when."""
    with ctx.store.tenant_tx(caller.tenant_id) as tx:
        change = tenants.change_params(tx, body.params, actor=caller.principal.actor)
    return ParamChangeOut.of(change)


@router.get("/tenants/{tenant}/param-changes")
def list_param_changes(caller: OperatorCaller, ctx: Context, page: Paging) -> Page[ParamChangeOut]:
    """The audit trail of parameter changes, oldest first."""
    with read_only(ctx.engine).connect() as conn:
        found = tenants.list_param_changes(
            conn, caller.tenant_id, limit=page.limit, cursor=page.cursor
        )
    return Page(items=[ParamChangeOut.of(c) for c in found.items], next_cursor=found.next_cursor)
