"""API keys of a tenant: created by the platform admin or an operator, shown once, revocable."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from tokenmall.api.deps import Context, OperatorCaller, Paging
from tokenmall.api.errors import ERROR_RESPONSES
from tokenmall.api.routes import API_PREFIX
from tokenmall.api.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut, Page
from tokenmall.service import credentials
from tokenmall.store.db import read_only

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["api keys"], responses=ERROR_RESPONSES)

KeyId = Annotated[str, Path(max_length=32, description="The id part of the key.")]


@router.post("/tenants/{tenant}/api-keys", status_code=201)
def create_api_key(caller: OperatorCaller, ctx: Context, body: ApiKeyCreate) -> ApiKeyCreated:
    """A new key. Its full text is in this answer only: store it now."""
    with ctx.store.tenant_tx(caller.tenant_id, lock=False) as tx:
        conn = tx.conn
        record, key = credentials.create_api_key(
            conn,
            caller.tenant_id,
            scope=body.scope,
            name=body.name,
            actor=caller.principal.actor,
            merchant_id=body.merchant_id,
        )
    return ApiKeyCreated(**ApiKeyOut.of(record).model_dump(), key=key)


@router.get("/tenants/{tenant}/api-keys")
def list_api_keys(caller: OperatorCaller, ctx: Context, page: Paging) -> Page[ApiKeyOut]:
    """The tenant's keys, revoked ones included, without their secrets."""
    with read_only(ctx.engine).connect() as conn:
        found = credentials.list_api_keys(
            conn, caller.tenant_id, limit=page.limit, cursor=page.cursor
        )
    return Page(items=[ApiKeyOut.of(k) for k in found.items], next_cursor=found.next_cursor)


@router.delete("/tenants/{tenant}/api-keys/{key_id}")
def revoke_api_key(caller: OperatorCaller, ctx: Context, key_id: KeyId) -> ApiKeyOut:
    """Revoke a key: it is refused from the next request on. Revoking twice is harmless."""
    with ctx.store.tenant_tx(caller.tenant_id, lock=False) as tx:
        conn = tx.conn
        record = credentials.revoke_api_key(conn, caller.tenant_id, key_id)
    ctx.forget_key(record.key_id)
    return ApiKeyOut.of(record)
