"""Members and their tokens."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field

from tokenmall.api.schemas.common import InputModel, InviteCode, MemberCode, Name, money, utc
from tokenmall.service.codec import dec
from tokenmall.service.members import MemberProfile

__all__ = [
    "MemberCreate",
    "MemberFigures",
    "MemberOut",
    "MemberTokenCreate",
    "MemberTokenOut",
    "MemberUpdate",
]


class MemberCreate(InputModel):
    code: MemberCode = Field(description="The tenant's own id of the member.")
    display_name: Name | None = None
    invite_code: InviteCode | None = Field(default=None, description="The referrer's invite code.")


class MemberUpdate(InputModel):
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

    @classmethod
    def of(cls, figures: dict[str, Any]) -> MemberFigures:
        """The ledger's figures (each in its own scale) in the API's one format per field."""
        return cls(
            points=dec(Decimal(str(figures["points"]))),
            stable=money(Decimal(str(figures["stable"]))),
            quota_remaining=money(Decimal(str(figures["quota_remaining"]))),
            spent=money(Decimal(str(figures["spent"]))),
            dividends=money(Decimal(str(figures["dividends"]))),
            exited=bool(figures["exited"]),
        )


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
            created_at=utc(p.created_at),
            ledger=MemberFigures.of(figures),
        )


class MemberTokenCreate(InputModel):
    ttl_seconds: int | None = Field(
        default=None, ge=60, strict=True, description="Lifetime; default from settings."
    )


class MemberTokenOut(BaseModel):
    token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth token type name
    member: str
    expires_at: datetime
