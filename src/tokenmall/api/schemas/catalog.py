"""The catalog: merchants, products and their SKUs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from tokenmall.api.schemas.common import Code, DbId, FenIn, InputModel, MoneyOut, Name, Text, utc
from tokenmall.service.catalog import MAX_SKUS_PER_PRODUCT, MAX_STOCK, Merchant, Product, Sku

__all__ = [
    "MerchantCreate",
    "MerchantOut",
    "MerchantUpdate",
    "ProductCreate",
    "ProductOut",
    "ProductSummary",
    "ProductUpdate",
    "SkuCreate",
    "SkuOut",
    "SkuUpdate",
    "Stock",
]

Stock = Annotated[int, Field(ge=0, le=MAX_STOCK, strict=True)]


class MerchantCreate(InputModel):
    code: Code
    name: Name
    accepts_sp: bool = False


class MerchantUpdate(InputModel):
    name: Name | None = None
    accepts_sp: bool | None = None


class MerchantOut(BaseModel):
    id: int
    code: str
    name: str
    accepts_sp: bool
    created_at: datetime

    @classmethod
    def of(cls, m: Merchant) -> MerchantOut:
        return cls(
            id=m.id,
            code=m.code,
            name=m.name,
            accepts_sp=m.accepts_sp,
            created_at=utc(m.created_at),
        )


class SkuCreate(InputModel):
    name: Name
    price: FenIn = Field(description="CNY per unit, whole fen, greater than 0.")
    stock: Stock = 0


class SkuUpdate(InputModel):
    name: Name | None = None
    price: FenIn | None = None
    stock: Stock | None = Field(default=None, description="Set the stock to this count.")
    stock_delta: Annotated[int, Field(ge=-MAX_STOCK, le=MAX_STOCK, strict=True)] | None = Field(
        default=None, description="Add (or, negative, remove) units; never below zero (409)."
    )


class SkuOut(BaseModel):
    id: int
    product_id: int
    name: str
    price: MoneyOut
    stock: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, k: Sku) -> SkuOut:
        return cls(
            id=k.id,
            product_id=k.product_id,
            name=k.name,
            price=k.price,
            stock=k.stock,
            created_at=utc(k.created_at),
            updated_at=utc(k.updated_at),
        )


class ProductCreate(InputModel):
    merchant_id: DbId | None = Field(
        default=None, description="Required with an operator key; a merchant key's own if omitted."
    )
    name: Name
    description: Text = ""
    pool_amount: FenIn | None = Field(
        default=None, description="CNY per unit into the pool, instead of pool_rate."
    )
    fund_amount: FenIn | None = Field(
        default=None, description="CNY per unit into the dividend fund, instead of dividend_rate."
    )
    skus: list[SkuCreate] = Field(default_factory=list, max_length=MAX_SKUS_PER_PRODUCT)


class ProductUpdate(InputModel):
    name: Name | None = None
    description: Text | None = None
    pool_amount: FenIn | None = Field(default=None, description="null clears the override.")
    fund_amount: FenIn | None = Field(default=None, description="null clears the override.")
    on_shelf: bool | None = Field(
        default=None,
        description="false takes the product off the shelf (its SKUs cannot be ordered), "
        "true puts it back.",
    )


class ProductSummary(BaseModel):
    id: int
    merchant_id: int
    name: str
    description: str
    pool_amount: MoneyOut | None
    fund_amount: MoneyOut | None
    on_shelf: bool = Field(description="false: listed, but its SKUs cannot be ordered.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, p: Product) -> ProductSummary:
        return cls(**_product_fields(p))


def _product_fields(p: Product) -> dict[str, Any]:
    return {
        "id": p.id,
        "merchant_id": p.merchant_id,
        "name": p.name,
        "description": p.description,
        "pool_amount": p.pool_amount,
        "fund_amount": p.fund_amount,
        "on_shelf": p.on_shelf,
        "created_at": utc(p.created_at),
        "updated_at": utc(p.updated_at),
    }


class ProductOut(ProductSummary):
    skus: list[SkuOut]

    @classmethod
    def of(cls, p: Product) -> ProductOut:
        return cls(**_product_fields(p), skus=[SkuOut.of(k) for k in p.skus])
