"""Request and response bodies, one module per area; the routes hold no models of their own.

``common`` has what every area shares: money is a decimal *string* both ways (``"99.00"``), a
JSON number is refused; times are ISO 8601 in UTC; lists are :class:`Page`.  The names below are
those of the former single ``tokenmall.api.schemas`` module; the newer areas (orders, wallet,
reads, imports, platform) are imported from their own modules.
"""

from __future__ import annotations

from tokenmall.api.schemas.catalog import (
    MerchantCreate,
    MerchantOut,
    MerchantUpdate,
    ProductCreate,
    ProductOut,
    ProductSummary,
    ProductUpdate,
    SkuCreate,
    SkuOut,
    SkuUpdate,
    Stock,
)
from tokenmall.api.schemas.common import (
    Code,
    DbId,
    FenIn,
    InviteCode,
    MemberCode,
    MoneyOut,
    Name,
    Page,
    Text,
)
from tokenmall.api.schemas.keys import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from tokenmall.api.schemas.members import (
    MemberCreate,
    MemberFigures,
    MemberOut,
    MemberTokenCreate,
    MemberTokenOut,
    MemberUpdate,
)
from tokenmall.api.schemas.tenants import (
    ParamChangeCreate,
    ParamChangeOut,
    TenantCreate,
    TenantOut,
)

__all__ = [
    "ApiKeyCreate",
    "ApiKeyCreated",
    "ApiKeyOut",
    "Code",
    "DbId",
    "FenIn",
    "InviteCode",
    "MemberCode",
    "MemberCreate",
    "MemberFigures",
    "MemberOut",
    "MemberTokenCreate",
    "MemberTokenOut",
    "MemberUpdate",
    "MerchantCreate",
    "MerchantOut",
    "MerchantUpdate",
    "MoneyOut",
    "Name",
    "Page",
    "ParamChangeCreate",
    "ParamChangeOut",
    "ProductCreate",
    "ProductOut",
    "ProductSummary",
    "ProductUpdate",
    "SkuCreate",
    "SkuOut",
    "SkuUpdate",
    "Stock",
    "TenantCreate",
    "TenantOut",
    "Text",
]
