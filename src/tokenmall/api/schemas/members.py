"""Members and their tokens."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field

from tokenmall.api.schemas.common import (
    Code,
    InputModel,
    InviteCode,
    MemberCode,
    MoneyOut,
    Name,
    money,
    utc,
)
from tokenmall.service.codec import dec
from tokenmall.service.members import MemberProfile
from tokenmall.service.tasks import TaskRecord

__all__ = [
    "MemberCreate",
    "MemberFigures",
    "MemberOut",
    "MemberTaskIn",
    "MemberTaskOut",
    "MemberTokenCreate",
    "MemberTokenOut",
    "MemberUpdate",
    "TaskReleaseOut",
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


class MemberTaskIn(InputModel):
    task: Literal["invite", "sign_in", "share"]
    key: Code = Field(
        description="Your idempotency key of the task (the invitee, the day, the share's "
        "id): reported again with the same key, nothing more is released."
    )


class TaskReleaseOut(BaseModel):
    source: str = Field(description='The model that released it ("chain21") or "groupbuy".')
    order: str = Field(description="The order whose held reward or activity fund it was.")
    amount: MoneyOut


class MemberTaskOut(BaseModel):
    member: str
    task: str
    key: str
    day: str = Field(description="The tenant's local day of the task (daily caps count it).")
    at: datetime
    released: list[TaskReleaseOut]
    replayed: bool = Field(description="The key was reported before: this is its record.")

    @classmethod
    def of(cls, t: TaskRecord) -> MemberTaskOut:
        return cls(
            member=t.member,
            task=t.task,
            key=t.key,
            day=t.day,
            at=utc(t.at),
            released=[
                TaskReleaseOut(source=r.source, order=r.order, amount=r.amount) for r in t.released
            ],
            replayed=t.replayed,
        )
