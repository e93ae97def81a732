"""What every marketing model shares: events, rewards, the parameter base and the hook interface.

Why this shape (a typed plug-in, as Saleor's plugins but with one event type per hook): the
operator enables several models per tenant, each with its own validated parameters; the runner
feeds all of them the same small events in a fixed order and collects explicit rewards.  A model
keeps its memory in a plain state dataclass the store persists; it never reads a clock or a
database (time comes in the events, referral links through :class:`Context`).

Rewards are SP paid from the platform's revenue share, in whole fen rounded down.  Each carries
its idempotency key ``(order, model, beneficiary, step)``: the wiring pays a key at most once, and
a negative amount takes SP back (a refund).  A take-back has its own step (``...:refund:<id>``),
so the grant and every take-back are distinct keys.

Partial refunds (the rules, docs/RULES.md section 5): a refund of cumulative ratio
``q = refunded / amount`` reverses ``floor2(reward x q)`` *in total*, so partial refunds add up to
a full one.  :class:`GrantBook` does exactly that for models whose rewards are fixed at
settlement; it computes ``q`` exactly from the two amounts, never from a rounded ratio.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Generic, Protocol, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from tokenmall.errors import InvalidCommand
from tokenmall.money import FEN, ZERO, mul, ratio, ratio_floor

__all__ = [
    "Amount",
    "Cap",
    "Context",
    "DayClosed",
    "Event",
    "Grant",
    "GrantBook",
    "MarketingModel",
    "MemberJoined",
    "Multiple",
    "OrderRefunded",
    "OrderSettled",
    "Params",
    "Ratio",
    "Reward",
    "TaskDone",
    "implements",
    "reward_key",
]


def _no_float(value: object) -> object:
    if isinstance(value, float):
        raise ValueError("must be a decimal string such as '0.10', not a float")
    return value


Amount = Annotated[Decimal, BeforeValidator(_no_float), Field(ge=0, allow_inf_nan=False)]
Ratio = Annotated[Decimal, BeforeValidator(_no_float), Field(ge=0, le=1, allow_inf_nan=False)]
# A multiple of an order's amount (rebate_ratio, queue_free's rate): at most 100 times, so a
# typo cannot make one order's reward larger than any amount the ledger can hold.
Multiple = Annotated[Decimal, BeforeValidator(_no_float), Field(ge=0, le=100, allow_inf_nan=False)]
# A CNY amount in a model's parameters (caps, thresholds): at most 10^9.
Cap = Annotated[Decimal, BeforeValidator(_no_float), Field(ge=0, le=10**9, allow_inf_nan=False)]


class Params(BaseModel):
    """Base of every model's parameters: immutable, unknown names refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# --- events: the minimum each model needs; the wiring maps the real domain events onto them ----


@dataclass(frozen=True, slots=True)
class OrderSettled:
    order: str
    member: str
    amount: Decimal
    product: str
    at: datetime


@dataclass(frozen=True, slots=True)
class OrderRefunded:
    """A refund of a settled order; ``refunded`` is the cumulative amount refunded so far."""

    order: str
    refund_id: str
    refunded: Decimal
    amount: Decimal  # the order's amount

    def __post_init__(self) -> None:
        if not 0 < self.refunded <= self.amount:
            raise InvalidCommand(
                f"refund {self.refund_id}: cumulative refunded {self.refunded} must be in "
                f"(0, {self.amount}]"
            )

    @property
    def q(self) -> Decimal:
        """The cumulative ratio (for display; amounts use :meth:`part` which is exact)."""
        return ratio(self.refunded, self.amount)

    @property
    def full(self) -> bool:
        return self.refunded == self.amount

    def part(self, reward: Decimal) -> Decimal:
        """floor2(reward x q), with q = refunded / amount computed exactly."""
        return ratio_floor(mul(reward, self.refunded), self.amount, FEN)


@dataclass(frozen=True, slots=True)
class DayClosed:
    day: date


@dataclass(frozen=True, slots=True)
class MemberJoined:
    member: str
    referrer: str | None


@dataclass(frozen=True, slots=True)
class TaskDone:
    member: str
    task: str
    day: date


Event = OrderSettled | OrderRefunded | DayClosed | MemberJoined | TaskDone


class Context(Protocol):
    """Read access the models need outside their own state."""

    def referrer_of(self, member: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Reward:
    order: str
    model: str
    beneficiary: str
    step: str
    amount: Decimal  # whole fen; negative = take back
    withdrawable_at: datetime | None = None  # spendable at once, withdrawable from then

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.order, self.model, self.beneficiary, self.step)

    @property
    def ledger_key(self) -> str:
        """The ledger's idempotency key of this reward (:func:`reward_key`)."""
        return reward_key(self.order, self.model, self.beneficiary, self.step)


_MAX_KEY = 160  # the ledger's key column


def reward_key(order: str, model: str, beneficiary: str, step: str) -> str:
    """``reward:<order>:<model>:<beneficiary>:<step>``, or, when longer than a ledger key,
    ``reward:<model>:<SHA-256 of it>``: one key per (order, model, beneficiary, step)."""
    key = f"reward:{order}:{model}:{beneficiary}:{step}"
    if len(key) <= _MAX_KEY:
        return key
    return f"reward:{model}:{hashlib.sha256(key.encode()).hexdigest()}"


# --- grants fixed at settlement and their cumulative take-back --------------------------------


@dataclass(slots=True)
class Grant:
    beneficiary: str
    step: str
    amount: Decimal
    taken: Decimal = ZERO  # taken back so far, cumulative


@dataclass(slots=True)
class GrantBook:
    """Per order: its amount, what it granted, the refunds seen; take-backs by cumulative q."""

    amounts: dict[str, Decimal] = field(default_factory=dict)
    grants: dict[str, list[Grant]] = field(default_factory=dict)
    refunds: dict[str, list[str]] = field(default_factory=dict)

    def settle(self, order: str, amount: Decimal) -> bool:
        """Record an order once; False if it was already settled (a replayed event)."""
        if order in self.amounts:
            return False
        self.amounts[order] = amount
        return True

    def grant(self, reward: Reward) -> Reward:
        """Remember a reward fixed at settlement, so refunds can take it back."""
        self.grants.setdefault(reward.order, []).append(
            Grant(reward.beneficiary, reward.step, reward.amount)
        )
        return reward

    def new_refund(self, event: OrderRefunded) -> bool:
        """True the first time this refund of a known order is seen."""
        if event.order not in self.amounts:
            return False
        seen = self.refunds.setdefault(event.order, [])
        if event.refund_id in seen:
            return False
        seen.append(event.refund_id)
        return True

    def take_back(self, model: str, event: OrderRefunded) -> list[Reward]:
        """Bring what each grant of the order has lost to floor2(grant x q), cumulative."""
        if not self.new_refund(event):
            return []
        out = []
        for g in self.grants.get(event.order, []):
            target = event.part(g.amount)
            delta = target - g.taken
            if delta > 0:
                g.taken = target
                step = f"{g.step}:refund:{event.refund_id}"
                out.append(Reward(event.order, model, g.beneficiary, step, -delta))
        return out


# --- the model interface ---------------------------------------------------------------------

P = TypeVar("P", bound=Params)
S = TypeVar("S")


class MarketingModel(ABC, Generic[P, S]):
    """One marketing model bound to its parameters.  Hooks not overridden are skipped."""

    name: ClassVar[str]
    params_schema: ClassVar[type[Params]]

    def __init__(self, params: P) -> None:
        self.params = params

    @abstractmethod
    def new_state(self) -> S:
        """An empty state for a tenant that just enabled the model."""

    def levels(self) -> int | None:
        """Referral levels this configuration pays through; None = unbounded."""
        return 0

    def on_settled(self, state: S, event: OrderSettled, ctx: Context) -> list[Reward]:
        return []

    def on_refunded(self, state: S, event: OrderRefunded, ctx: Context) -> list[Reward]:
        return []

    def on_day_closed(self, state: S, event: DayClosed, ctx: Context) -> list[Reward]:
        return []

    def on_member_joined(self, state: S, event: MemberJoined, ctx: Context) -> list[Reward]:
        return []

    def on_task_done(self, state: S, event: TaskDone, ctx: Context) -> list[Reward]:
        return []


def implements(model: MarketingModel[Any, Any], hook: str) -> bool:
    """Whether ``model`` overrides ``hook`` (the runner skips the ones it does not)."""
    return getattr(type(model), hook) is not getattr(MarketingModel, hook)
