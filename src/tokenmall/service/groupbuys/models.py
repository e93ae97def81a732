"""Read models, errors and limits of group buys (what the service hands to routes and tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from tokenmall.service.errors import Conflict

__all__ = [
    "MAX_SIZE",
    "Campaign",
    "GroupFull",
    "GroupStateError",
    "GroupView",
    "Offer",
    "PlaceView",
    "Task",
]

MAX_SIZE: Final = 1000  # places in one group
MAX_DEADLINE_HOURS: Final = 24 * 30


class GroupStateError(Conflict):
    """The group's state does not allow this (join a group that failed, cancel too late)."""

    code = "group_state"


class GroupFull(Conflict):
    """Every place of the group is taken (paid, or reserved by an order being paid)."""

    code = "group_full"


@dataclass(frozen=True, slots=True)
class Offer:
    code: str
    sku_id: int
    mode: str
    price: Decimal
    size: int
    winners: int
    campaign: str | None
    compensation: Decimal
    subsidy: Decimal
    commission: Decimal
    commission_ratio: Decimal | None
    steps: int
    daily_steps: int
    deadline_hours: Decimal
    active: bool
    created_at: float
    closed_at: float | None = None  # an operator stopped it: no new group opens of it


@dataclass(frozen=True, slots=True)
class Campaign:
    code: str
    public_id: str
    winners: int  # k, groups that win each draw
    commitment: str  # of the next draw's seed
    draws: int
    draw_every_hours: Decimal | None
    next_draw_at: float | None
    waiting: int = 0  # full groups waiting for the next draw


@dataclass(frozen=True, slots=True)
class PlaceView:
    no: int
    member: str
    order: str
    status: str
    joined_at: float
    paid_at: float | None
    ended_at: float | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class GroupView:
    public_id: str
    offer: str
    mode: str
    leader: str
    state: str
    size: int
    price: Decimal
    opened_at: float
    deadline: float
    commitment: str | None  # the group's own (merchant, activity) or its campaign's
    campaign: str | None
    places: list[PlaceView] = field(default_factory=list)
    winners: list[str] = field(default_factory=list)
    filled_at: float | None = None

    @property
    def taken(self) -> int:
        return sum(1 for p in self.places if p.status in ("pending", "held", "confirmed"))


@dataclass(frozen=True, slots=True)
class Task:
    """A task a member did (activity funds): what released, per fund."""

    task: str
    ref: str
    released: list[dict[str, Any]]
