"""The mall's catalog: merchants, products and SKUs.

Any credential of the tenant reads the catalog (members browse it).  The operator writes all
of it; a merchant key writes its own merchant's products and SKUs only (403 for others', which
it can see anyway).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from tokenmall.api.deps import AnyCaller, Caller, CatalogWriter, Context, OperatorCaller, Paging
from tokenmall.api.errors import ERROR_RESPONSES, ApiError
from tokenmall.api.routes import API_PREFIX
from tokenmall.api.schemas import (
    MerchantCreate,
    MerchantOut,
    MerchantUpdate,
    Page,
    ProductCreate,
    ProductOut,
    ProductUpdate,
    SkuCreate,
    SkuOut,
    SkuUpdate,
)
from tokenmall.service import catalog
from tokenmall.store.db import read_only

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["catalog"], responses=ERROR_RESPONSES)

_ID = {"ge": 1, "le": 2_147_483_647}
MerchantId = Annotated[int, Path(**_ID)]
ProductId = Annotated[int, Path(**_ID)]
SkuId = Annotated[int, Path(**_ID)]


def _own(caller: Caller, merchant_id: int) -> None:
    if caller.kind == "merchant" and caller.principal.merchant_id != merchant_id:
        raise ApiError(403, "forbidden", "a merchant key manages its own merchant's catalog only")


# ----------------------------------------------------------------------------- merchants


@router.post("/tenants/{tenant}/merchants", status_code=201)
def create_merchant(caller: OperatorCaller, ctx: Context, body: MerchantCreate) -> MerchantOut:
    """Add a merchant to the mall; ``accepts_sp``: it takes stable points as payment."""
    with ctx.store.tenant_tx(caller.tenant_id, lock=False) as tx:
        conn = tx.conn
        merchant = catalog.create_merchant(
            conn, caller.tenant_id, code=body.code, name=body.name, accepts_sp=body.accepts_sp
        )
    return MerchantOut.of(merchant)


@router.get("/tenants/{tenant}/merchants")
def list_merchants(caller: AnyCaller, ctx: Context, page: Paging) -> Page[MerchantOut]:
    """The mall's merchants, in order of creation."""
    with read_only(ctx.engine).connect() as conn:
        found = catalog.list_merchants(conn, caller.tenant_id, limit=page.limit, cursor=page.cursor)
    return Page(items=[MerchantOut.of(m) for m in found.items], next_cursor=found.next_cursor)


@router.get("/tenants/{tenant}/merchants/{merchant_id}")
def read_merchant(caller: AnyCaller, ctx: Context, merchant_id: MerchantId) -> MerchantOut:
    """One merchant."""
    with read_only(ctx.engine).connect() as conn:
        return MerchantOut.of(catalog.get_merchant(conn, caller.tenant_id, merchant_id))


@router.patch("/tenants/{tenant}/merchants/{merchant_id}")
def update_merchant(
    caller: OperatorCaller, ctx: Context, merchant_id: MerchantId, body: MerchantUpdate
) -> MerchantOut:
    """Rename a merchant, or change whether it accepts SP."""
    with ctx.store.tenant_tx(caller.tenant_id, lock=False) as tx:
        conn = tx.conn
        merchant = catalog.update_merchant(
            conn, caller.tenant_id, merchant_id, name=body.name, accepts_sp=body.accepts_sp
        )
    return MerchantOut.of(merchant)


# ----------------------------------------------------------------------------- products


@router.post("/tenants/{tenant}/products", status_code=201)
def create_product(caller: CatalogWriter, ctx: Context, body: ProductCreate) -> ProductOut:
    """A product, optionally with its SKUs, in one transaction."""
    merchant_id = body.merchant_id
    if merchant_id is None:
        if caller.kind != "merchant":
            raise ApiError(422, "validation_error", "merchant_id is required with this credential")
        merchant_id = caller.principal.merchant_id
    assert merchant_id is not None
    _own(caller, merchant_id)
    with ctx.store.tenant_tx(caller.tenant_id, lock=False) as tx:
        conn = tx.conn
        product = catalog.create_product(
            conn,
            caller.tenant_id,
            merchant_id=merchant_id,
            name=body.name,
            description=body.description,
            pool_amount=body.pool_amount,
            fund_amount=body.fund_amount,
        )
        for sku in body.skus:
            catalog.create_sku(
                conn,
                caller.tenant_id,
                product_id=product.id,
                name=sku.name,
                price=sku.price,
                stock=sku.stock,
            )
        product = catalog.get_product(conn, caller.tenant_id, product.id)
    return ProductOut.of(product)


@router.get("/tenants/{tenant}/products")
def list_products(
    caller: AnyCaller,
    ctx: Context,
    page: Paging,
    merchant_id: Annotated[int | None, Query(**_ID)] = None,
    on_shelf: Annotated[
        bool | None, Query(description="true: only products on the shelf; false: only off it.")
    ] = None,
) -> Page[ProductOut]:
    """Products with their SKUs, prices and stock, optionally of one merchant or by shelf."""
    with read_only(ctx.engine).connect() as conn:
        found = catalog.list_products(
            conn,
            caller.tenant_id,
            limit=page.limit,
            cursor=page.cursor,
            merchant_id=merchant_id,
            on_shelf=on_shelf,
        )
    return Page(items=[ProductOut.of(p) for p in found.items], next_cursor=found.next_cursor)


@router.get("/tenants/{tenant}/products/{product_id}")
def read_product(caller: AnyCaller, ctx: Context, product_id: ProductId) -> ProductOut:
    """A product with all its SKUs, prices and stock."""
    with read_only(ctx.engine).connect() as conn:
        return ProductOut.of(catalog.get_product(conn, caller.tenant_id, product_id))


@router.patch("/tenants/{tenant}/products/{product_id}")
def update_product(
    caller: CatalogWriter, ctx: Context, product_id: ProductId, body: ProductUpdate
) -> ProductOut:
    """Change name, description, the per-unit pool/fund amounts (null clears them), or take
    the product off the shelf (``on_shelf`` false: new orders of its SKUs are refused)."""
    given = body.model_fields_set
    with ctx.store.tenant_tx(caller.tenant_id, lock=False) as tx:
        conn = tx.conn
        _own(caller, catalog.product_merchant(conn, caller.tenant_id, product_id))
        product = catalog.update_product(
            conn,
            caller.tenant_id,
            product_id,
            name=body.name,
            description=body.description,
            pool_amount=body.pool_amount if "pool_amount" in given else catalog.UNSET,
            fund_amount=body.fund_amount if "fund_amount" in given else catalog.UNSET,
            on_shelf=body.on_shelf,
        )
    return ProductOut.of(product)


@router.post("/tenants/{tenant}/products/{product_id}/skus", status_code=201)
def create_sku(
    caller: CatalogWriter, ctx: Context, product_id: ProductId, body: SkuCreate
) -> SkuOut:
    """Add a SKU (a variant with its own price and stock) to a product."""
    with ctx.store.tenant_tx(caller.tenant_id, lock=False) as tx:
        conn = tx.conn
        _own(caller, catalog.product_merchant(conn, caller.tenant_id, product_id))
        sku = catalog.create_sku(
            conn,
            caller.tenant_id,
            product_id=product_id,
            name=body.name,
            price=body.price,
            stock=body.stock,
        )
    return SkuOut.of(sku)


# ----------------------------------------------------------------------------- SKUs


@router.get("/tenants/{tenant}/skus")
def list_skus(
    caller: AnyCaller,
    ctx: Context,
    page: Paging,
    product_id: Annotated[int | None, Query(**_ID)] = None,
) -> Page[SkuOut]:
    """SKUs, optionally of one product."""
    with read_only(ctx.engine).connect() as conn:
        found = catalog.list_skus(
            conn, caller.tenant_id, limit=page.limit, cursor=page.cursor, product_id=product_id
        )
    return Page(items=[SkuOut.of(k) for k in found.items], next_cursor=found.next_cursor)


@router.get("/tenants/{tenant}/skus/{sku_id}")
def read_sku(caller: AnyCaller, ctx: Context, sku_id: SkuId) -> SkuOut:
    """One SKU with its price and current stock."""
    with read_only(ctx.engine).connect() as conn:
        return SkuOut.of(catalog.get_sku(conn, caller.tenant_id, sku_id))


@router.patch("/tenants/{tenant}/skus/{sku_id}")
def update_sku(caller: CatalogWriter, ctx: Context, sku_id: SkuId, body: SkuUpdate) -> SkuOut:
    """Set the price or the stock count, or add/remove stock with ``stock_delta``."""
    if body.stock is not None and body.stock_delta is not None:
        raise ApiError(422, "validation_error", "give stock or stock_delta, not both")
    with ctx.store.tenant_tx(caller.tenant_id, lock=False) as tx:
        conn = tx.conn
        _own(caller, catalog.sku_merchant(conn, caller.tenant_id, sku_id))
        sku = catalog.update_sku(
            conn, caller.tenant_id, sku_id, name=body.name, price=body.price, stock=body.stock
        )
        if body.stock_delta is not None:
            sku = catalog.adjust_stock(conn, caller.tenant_id, sku_id, body.stock_delta)
    return SkuOut.of(sku)
