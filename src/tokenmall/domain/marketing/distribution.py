"""分销 distribution: the buyer's referrers earn a share of the order, level by level.

Rule (docs/RULES.md section 5): on settlement of an order of amount X by member m, m's direct
referrer gets floor2(X x ratios[0]), that referrer's referrer floor2(X x ratios[1]), and so on
for as many ratios as configured ([0.10, 0.05]).  The reward can be spent at once but not
withdrawn before ``freeze_days`` [0] days.  A refund takes back floor2(reward x q) in total.

Decision: the walk up the referral chain stops at a member already visited (a loop in bad data
must not pay anyone twice for one order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from pydantic import Field, field_validator

from tokenmall.domain.marketing.base import (
    Context,
    GrantBook,
    MarketingModel,
    OrderRefunded,
    OrderSettled,
    Params,
    Ratio,
    Reward,
)
from tokenmall.money import floor_fen, mul

__all__ = ["Distribution", "DistributionParams", "DistributionState"]


MAX_FREEZE_DAYS = 3650  # ten years; beyond that a date no longer makes sense


class DistributionParams(Params):
    ratios: tuple[Ratio, ...] = (Decimal("0.10"), Decimal("0.05"))
    freeze_days: int = Field(default=0, ge=0, le=MAX_FREEZE_DAYS)

    @field_validator("ratios")
    @classmethod
    def _ratios(cls, v: tuple[Decimal, ...]) -> tuple[Decimal, ...]:
        if not v:
            raise ValueError("ratios must list at least one level")
        if sum(v) > 1:
            raise ValueError(f"ratios must not add up to more than 1, got {sum(v)}")
        return v


@dataclass(slots=True)
class DistributionState:
    book: GrantBook = field(default_factory=GrantBook)


class Distribution(MarketingModel[DistributionParams, DistributionState]):
    name = "distribution"
    params_schema = DistributionParams

    def new_state(self) -> DistributionState:
        return DistributionState()

    def levels(self) -> int:
        return len(self.params.ratios)

    def on_settled(
        self, state: DistributionState, event: OrderSettled, ctx: Context
    ) -> list[Reward]:
        if not state.book.settle(event.order, event.amount):
            return []
        until = event.at + timedelta(days=self.params.freeze_days)
        out = []
        seen = {event.member}
        who: str | None = event.member
        for level, r in enumerate(self.params.ratios, start=1):
            who = ctx.referrer_of(who) if who is not None else None
            if who is None or who in seen:
                break
            seen.add(who)
            amount = floor_fen(mul(event.amount, r))
            if amount > 0:
                reward = Reward(event.order, self.name, who, f"level{level}", amount, until)
                out.append(state.book.grant(reward))
        return out

    def on_refunded(
        self, state: DistributionState, event: OrderRefunded, ctx: Context
    ) -> list[Reward]:
        return state.book.take_back(self.name, event)
