"""Tenants and their parameter changes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from tokenmall.api.schemas.common import Code, InputModel, Name, utc
from tokenmall.service.tenants import ParamChange, TenantRecord

__all__ = ["ParamChangeCreate", "ParamChangeOut", "TenantCreate", "TenantOut"]


class TenantCreate(InputModel):
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
            created_at=utc(t.created_at),
        )


class ParamChangeCreate(InputModel):
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
            at=utc(c.at),
            actor=c.actor,
            changed=changed,
            before=c.before,
            after=c.after,
        )
