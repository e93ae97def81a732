"""After-sales: a member's refund request, its decision and its history."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from tokenmall.api.schemas.common import FenIn, InputModel, MoneyOut, utc
from tokenmall.service.orders import (
    MAX_PHOTO_URL,
    MAX_PHOTOS,
    AfterSalesEvent,
    AfterSalesRequest,
)

__all__ = [
    "AfterSalesCreate",
    "AfterSalesEventOut",
    "AfterSalesOut",
    "AfterSalesRefuse",
    "AfterSalesStatus",
]

AfterSalesStatus = Literal["requested", "accepted", "refunded", "refused", "cancelled"]
_TEXT = r"^[^\x00]*$"
Reason = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_TEXT)]
PhotoUrl = Annotated[
    str, StringConstraints(min_length=9, max_length=MAX_PHOTO_URL, pattern=r"^https://\S+$")
]


class AfterSalesCreate(InputModel):
    amount: FenIn = Field(description="How much back: more than 0, at most what is left.")
    reason: Reason
    photos: list[PhotoUrl] = Field(
        default_factory=list,
        max_length=MAX_PHOTOS,
        description=f"Up to {MAX_PHOTOS} https URLs of photos (uploaded elsewhere).",
    )


class AfterSalesRefuse(InputModel):
    reason: Reason = Field(description="Why; the member sees it.")


class AfterSalesEventOut(BaseModel):
    status: AfterSalesStatus
    actor: str = Field(description="Who moved it: member:<code>, merchant-key:<id>, ...")
    note: str | None
    at: datetime

    @classmethod
    def of(cls, e: AfterSalesEvent) -> AfterSalesEventOut:
        return cls(status=e.status, actor=e.actor, note=e.note, at=utc(e.at))  # type: ignore[arg-type]


class AfterSalesOut(BaseModel):
    request_id: str
    order_ref: str
    member: str
    amount: MoneyOut
    reason: str
    photos: list[str]
    status: AfterSalesStatus
    decision_note: str | None = Field(description="Why it was refused.")
    refund_id: str | None = Field(description="The order's refund, once refunded.")
    created_at: datetime
    updated_at: datetime
    history: list[AfterSalesEventOut] = Field(description="Every state, oldest first.")

    @classmethod
    def of(cls, r: AfterSalesRequest) -> AfterSalesOut:
        return cls(
            request_id=r.ref,
            order_ref=r.order_ref,
            member=r.member,
            amount=r.amount,
            reason=r.reason,
            photos=r.photos,
            status=r.status,  # type: ignore[arg-type]
            decision_note=r.decision_note,
            refund_id=r.refund_id,
            created_at=utc(r.created_at),
            updated_at=utc(r.updated_at),
            history=[AfterSalesEventOut.of(e) for e in r.history],
        )
