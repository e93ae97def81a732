"""Request and response bodies.

Money is a decimal *string* both ways (``"99.00"``): a JSON number is refused, because a client
that sends ``0.1`` as a number has usually already turned it into a binary float.  Catalog
amounts have at most 2 decimal places (whole fen); a value with more is refused, not rounded.
Counts (stock, quantities) are JSON integers.  Times are ISO 8601 in UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from tokenmall.service.catalog import MAX_SKUS_PER_PRODUCT, MAX_STOCK, Merchant, Product, Sku
from tokenmall.service.credentials import ApiKeyRecord
from tokenmall.service.members import MemberProfile
from tokenmall.service.tenants import ParamChange, TenantRecord

__all__ = [
    "ApiKeyCreate",
    "ApiKeyCreated",
    "ApiKeyOut",
    "FenIn",
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
    "TenantCreate",
    "TenantOut",
]

T = TypeVar("T")

_FEN_PATTERN = r"^(0|[1-9][0-9]{0,8})(\.[0-9]{1,2})?$"
_FEN_RE = re.compile(_FEN_PATTERN)


def _fen_string(value: object) -> object:
    if isinstance(value, Decimal):  # constructed in Python (tests, seeding): already exact
        return value
    if not isinstance(value, str):
        raise PydanticCustomError(
            "decimal_string", 'an amount is a decimal string such as "12.50", not a JSON number'
        )
    if not _FEN_RE.fullmatch(value):
        raise PydanticCustomError(
            "decimal_string",
            'an amount is a decimal string with at most 2 decimal places, e.g. "12.50"',
        )
    return Decimal(value)


def _show(d: Decimal) -> str:
    return format(d, "f")


_MONEY_SCHEMA = {"type": "string", "pattern": _FEN_PATTERN, "examples": ["99.00"]}

# a CNY amount in whole fen, in a request
FenIn = Annotated[Decimal, BeforeValidator(_fen_string), WithJsonSchema(_MONEY_SCHEMA)]
# a CNY (or EP) amount in a response
MoneyOut = Annotated[
    Decimal,
    PlainSerializer(_show, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["99.00"]}),
]
# codes appear in URLs: the same rules as the services check (scenario.check_tenant_code,
# members.check_member_code), here so the OpenAPI schema states them
Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
MemberCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}$")]
# text a person typed; NUL is refused (PostgreSQL cannot store it in text, SQLite would)
_TEXT = r"^[^\x00]*$"
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_TEXT)]
Text = Annotated[str, StringConstraints(max_length=20_000, pattern=_TEXT)]
InviteCode = Annotated[str, StringConstraints(max_length=16, pattern=r"^[A-Za-z0-9]*$")]
Stock = Annotated[int, Field(ge=0, le=MAX_STOCK, strict=True)]
DbId = Annotated[int, Field(ge=1, le=2_147_483_647, strict=True)]


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not ignored


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null on the last page."
    )


# ----------------------------------------------------------------------------- tenants


class TenantCreate(_In):
    code: Code = Field(description="Letters, digits and _.:- ; appears in every URL.")
    name: Name | None = None
    timezone: str = Field(default="Asia/Shanghai", max_length=64, description="IANA name")
    params: dict[str, Annotated[str, StringConstraints(max_length=40)]] = Field(
        default_factory=dict,
        description="Tenant parameters (docs/RULES.md section 1) as decimal strings; others "
        "default.",
        examples=[{"referral_ratio": "0.05"}],
    )


class TenantOut(BaseModel):
    code: str
    name: str
    timezone: str
    currency: Literal["CNY"] = "CNY"
    params: dict[str, str]
    created_at: datetime

    @classmethod
    def of(cls, t: TenantRecord) -> TenantOut:
        return cls(
            code=t.code,
            name=t.name,
            timezone=t.timezone,
            params=t.params,
            created_at=_utc(t.created_at),
        )


class ParamChangeCreate(_In):
    params: dict[str, Annotated[str, StringConstraints(max_length=40)]] = Field(
        min_length=1, examples=[{"referral_ratio": "0.05"}]
    )


class ParamChangeOut(BaseModel):
    id: int
    at: datetime
    actor: str
    changed: list[str]
    before: dict[str, str]
    after: dict[str, str]

    @classmethod
    def of(cls, c: ParamChange) -> ParamChangeOut:
        changed = sorted(k for k in c.after if c.before.get(k) != c.after[k])
        return cls(
            id=c.id,
            at=_utc(c.at),
            actor=c.actor,
            changed=changed,
            before=c.before,
            after=c.after,
        )


# ----------------------------------------------------------------------------- API keys


class ApiKeyCreate(_In):
    scope: Literal["operator", "merchant"]
    name: Name
    merchant_id: DbId | None = Field(default=None, description="Required for a merchant key.")


class ApiKeyOut(BaseModel):
    id: str = Field(description="The public part of the key (tmk_<id>_...).")
    scope: Literal["operator", "merchant"]
    merchant_id: int | None
    name: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None

    @classmethod
    def of(cls, k: ApiKeyRecord) -> ApiKeyOut:
        return cls(
            id=k.key_id,
            scope=k.scope,
            merchant_id=k.merchant_id,
            name=k.name,
            created_at=_utc(k.created_at),
            created_by=k.created_by,
            revoked_at=None if k.revoked_at is None else _utc(k.revoked_at),
        )


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The whole key. Shown this once; only its hash is stored.")


# ----------------------------------------------------------------------------- members


class MemberCreate(_In):
    code: MemberCode = Field(description="The tenant's own id of the member.")
    display_name: Name | None = None
    invite_code: InviteCode | None = Field(default=None, description="The referrer's invite code.")


class MemberUpdate(_In):
    display_name: Name | None = None
    referrer_invite_code: InviteCode | None = Field(
        default=None, description="Bind a referrer, once, to a member who has none."
    )


class MemberFigures(BaseModel):
    """The member's ledger figures (docs/RULES.md section 7); all zero before any movement."""

    points: str
    stable: str
    quota_remaining: str
    spent: str
    dividends: str
    exited: bool


class MemberOut(BaseModel):
    code: str
    display_name: str | None
    invite_code: str
    referrer: str | None
    created_at: datetime
    ledger: MemberFigures

    @classmethod
    def of(cls, p: MemberProfile, figures: dict[str, Any]) -> MemberOut:
        return cls(
            code=p.code,
            display_name=p.display_name,
            invite_code=p.invite_code,
            referrer=p.referrer,
            created_at=_utc(p.created_at),
            ledger=MemberFigures(**figures),
        )


class MemberTokenCreate(_In):
    ttl_seconds: int | None = Field(
        default=None, ge=60, strict=True, description="Lifetime; default from settings."
    )


class MemberTokenOut(BaseModel):
    token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth token type name
    member: str
    expires_at: datetime


# ----------------------------------------------------------------------------- catalog


class MerchantCreate(_In):
    code: Code
    name: Name
    accepts_sp: bool = False


class MerchantUpdate(_In):
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
            created_at=_utc(m.created_at),
        )


class SkuCreate(_In):
    name: Name
    price: FenIn = Field(description="CNY per unit, whole fen, greater than 0.")
    stock: Stock = 0


class SkuUpdate(_In):
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
            created_at=_utc(k.created_at),
            updated_at=_utc(k.updated_at),
        )


class ProductCreate(_In):
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


class ProductUpdate(_In):
    name: Name | None = None
    description: Text | None = None
    pool_amount: FenIn | None = Field(default=None, description="null clears the override.")
    fund_amount: FenIn | None = Field(default=None, description="null clears the override.")


class ProductSummary(BaseModel):
    id: int
    merchant_id: int
    name: str
    description: str
    pool_amount: MoneyOut | None
    fund_amount: MoneyOut | None
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
        "created_at": _utc(p.created_at),
        "updated_at": _utc(p.updated_at),
    }


class ProductOut(ProductSummary):
    skus: list[SkuOut]

    @classmethod
    def of(cls, p: Product) -> ProductOut:
        return cls(**_product_fields(p), skus=[SkuOut.of(k) for k in p.skus])
