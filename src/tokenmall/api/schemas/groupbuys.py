"""Group buys: offers, lottery campaigns, groups and places, tasks, public draw records
(docs/GROUPBUY.md)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from tokenmall.api.schemas.common import (
    Code,
    DbId,
    FenIn,
    InputModel,
    MemberCode,
    MoneyOut,
    utc,
    utc_or_none,
)
from tokenmall.service.codec import dec
from tokenmall.service.groupbuys import Campaign, GroupView, Offer

__all__ = [
    "CampaignCreate",
    "CampaignOut",
    "DrawRecordOut",
    "FundOut",
    "GroupOpen",
    "GroupOut",
    "MemberIn",
    "OfferCreate",
    "OfferOut",
    "PlaceOut",
    "TaskIn",
    "TaskOut",
]

Mode = Literal["multi", "lottery", "merchant", "activity"]
GroupState = Literal["open", "full", "succeeded", "failed", "lost"]

_RATIO = r"^(0(\.[0-9]{1,6})?|1(\.0{1,6})?)$"
_HOURS = r"^[0-9]{1,3}(\.[0-9]{1,4})?$"


def _parser(pattern: str, example: str) -> Callable[[object], object]:
    rx = re.compile(pattern)

    def parse(value: object) -> object:
        if isinstance(value, Decimal):
            return value
        if not isinstance(value, str) or not rx.fullmatch(value):
            raise PydanticCustomError(
                "decimal_string", f'a decimal string such as "{example}" is expected'
            )
        return Decimal(value)

    return parse


RatioIn = Annotated[
    Decimal,
    BeforeValidator(_parser(_RATIO, "0.05")),
    WithJsonSchema({"type": "string", "pattern": _RATIO, "examples": ["0.05"]}),
]
HoursIn = Annotated[
    Decimal,
    BeforeValidator(_parser(_HOURS, "24")),
    WithJsonSchema({"type": "string", "pattern": _HOURS, "examples": ["24"]}),
]
Count = Annotated[int, Field(ge=1, le=1000, strict=True)]


class CampaignCreate(InputModel):
    code: Code = Field(description="Your name for the campaign (unique in the tenant).")
    winners: Annotated[int, Field(ge=0, le=1_000_000, strict=True)] = Field(
        description="k: how many full groups win each draw."
    )
    draw_every_hours: HoursIn | None = Field(
        default=None, description="Draw on a schedule (the first after this long); none: on demand."
    )


class CampaignOut(BaseModel):
    code: str
    public_id: str
    winners: int
    commitment: str = Field(description="sha256 of the next draw's secret seed (hex).")
    draws: int
    draw_every_hours: MoneyOut | None
    next_draw_at: datetime | None
    waiting: int = Field(description="Full groups waiting for the next draw.")

    @classmethod
    def of(cls, c: Campaign) -> CampaignOut:
        return cls(
            code=c.code,
            public_id=c.public_id,
            winners=c.winners,
            commitment=c.commitment,
            draws=c.draws,
            draw_every_hours=c.draw_every_hours,
            next_draw_at=utc_or_none(c.next_draw_at),
            waiting=c.waiting,
        )


class OfferCreate(InputModel):
    code: Code
    sku_id: DbId
    mode: Mode
    price: FenIn = Field(description="The group price of one place.")
    size: Annotated[int, Field(ge=2, le=1000, strict=True)]
    winners: Count = Field(default=1, description="merchant, activity: places drawn to win.")
    campaign: Code | None = Field(
        default=None,
        description="lottery: its campaign's code; activity (optional): the campaign it belongs "
        "to (its groups still draw among their own members).",
    )
    compensation: FenIn = Field(default=Decimal(0), description="lottery: SP to each loser.")
    subsidy: FenIn = Field(default=Decimal(0), description="merchant: SP to each non-winner.")
    commission: FenIn = Field(default=Decimal(0), description="merchant: fixed SP to the leader.")
    commission_ratio: RatioIn | None = Field(
        default=None, description="merchant: instead, this ratio of price x size."
    )
    steps: Count = Field(default=10, description="activity: steps of the shopping fund.")
    daily_steps: Count = Field(default=1, description="activity: steps released a day at most.")
    deadline_hours: HoursIn = Field(default=Decimal(24))


class OfferOut(BaseModel):
    code: str
    sku_id: int
    mode: str
    price: MoneyOut
    size: int
    winners: int
    campaign: str | None
    compensation: MoneyOut
    subsidy: MoneyOut
    commission: MoneyOut
    commission_ratio: str | None = Field(description='A ratio, plain ("0.05").')
    steps: int
    daily_steps: int
    deadline_hours: str = Field(description='Hours, plain ("24", "0.5").')
    active: bool = Field(description="False once an operator closed it: no new groups.")
    created_at: datetime
    closed_at: datetime | None = None

    @classmethod
    def of(cls, o: Offer) -> OfferOut:
        return cls(
            code=o.code,
            sku_id=o.sku_id,
            mode=o.mode,
            price=o.price,
            size=o.size,
            winners=o.winners,
            campaign=o.campaign,
            compensation=o.compensation,
            subsidy=o.subsidy,
            commission=o.commission,
            commission_ratio=None if o.commission_ratio is None else dec(o.commission_ratio),
            steps=o.steps,
            daily_steps=o.daily_steps,
            deadline_hours=dec(o.deadline_hours),
            active=o.active,
            created_at=utc(o.created_at),
            closed_at=utc_or_none(o.closed_at),
        )


class GroupOpen(InputModel):
    offer: Code
    member: MemberCode | None = Field(
        default=None, description="The leader; required with an operator key, implied by a token."
    )


class MemberIn(InputModel):
    member: MemberCode | None = Field(
        default=None, description="Required with an operator key, implied by a token."
    )


class PlaceOut(BaseModel):
    no: int
    member: str
    order: str | None = Field(description="The place's order (to pay); yours or staff only.")
    status: Literal["pending", "held", "confirmed", "refunded", "released"]
    joined_at: datetime
    paid_at: datetime | None
    ended_at: datetime | None
    reason: str | None


class GroupOut(BaseModel):
    public_id: str
    offer: str
    mode: str
    leader: str
    state: GroupState
    size: int
    taken: int = Field(description="Places paid or being paid.")
    price: MoneyOut
    opened_at: datetime
    deadline: datetime
    filled_at: datetime | None
    commitment: str | None
    campaign: str | None
    winners: list[str]
    places: list[PlaceOut]

    @classmethod
    def of(cls, g: GroupView, viewer: str | None = None) -> GroupOut:
        """``viewer``: a member sees the order numbers of their own places only."""
        return cls(
            public_id=g.public_id,
            offer=g.offer,
            mode=g.mode,
            leader=g.leader,
            state=g.state,  # type: ignore[arg-type]
            size=g.size,
            taken=g.taken,
            price=g.price,
            opened_at=utc(g.opened_at),
            deadline=utc(g.deadline),
            filled_at=utc_or_none(g.filled_at),
            commitment=g.commitment,
            campaign=g.campaign,
            winners=g.winners,
            places=[
                PlaceOut(
                    no=p.no,
                    member=p.member,
                    order=p.order if viewer is None or viewer == p.member else None,
                    status=p.status,  # type: ignore[arg-type]
                    joined_at=utc(p.joined_at),
                    paid_at=utc_or_none(p.paid_at),
                    ended_at=utc_or_none(p.ended_at),
                    reason=p.reason,
                )
                for p in g.places
            ],
        )


class TaskIn(InputModel):
    task: Literal["invite", "sign_in", "share"]
    ref: Code = Field(description="Names the task done (the invitee, the day): once per fund.")
    member: MemberCode | None = None


class FundOut(BaseModel):
    order: str
    amount: MoneyOut
    released: MoneyOut
    locked: MoneyOut
    steps: int
    released_steps: int


class TaskOut(BaseModel):
    task: str
    released: list[dict[str, str]]
    funds: list[FundOut]


class DrawRecordOut(BaseModel):
    """A draw's public record: ``tokenmall groupbuy verify`` recomputes it from this alone."""

    group: str | None = None
    campaign: str | None = None
    draw: int | None = None
    mode: str | None = None
    state: str | None = None
    commitment: str | None = Field(description="sha256(seed), published before anyone joined.")
    seed: str | None = Field(description="The seed (hex), revealed at the draw; null before.")
    candidates: list[str]
    k: int
    winners: list[str] = Field(description="The k smallest tickets, ascending.")
