"""循环购 consumption rebate: an order's value comes back slowly, a little at every day close.

Rule (docs/RULES.md section 5): on settlement an order of amount X grants R = floor2(X x
``rebate_ratio`` [1.0]).  Each day close (after dividends) pays every active grant floor2(R x
``release_rate`` [0.005]), the last payment capped at what remains, until R is paid.  A refund of
cumulative ratio q shrinks the grant to R - floor2(R x q) and takes back floor2(released x q)
in total of what was released; releasing goes on (same daily amount) until what the member
keeps reaches the shrunk grant.  A full refund therefore stops it and takes everything back.

Decisions: a day is closed once (a repeated or earlier day pays nothing); grants are paid in the
order they settled; a grant whose daily amount rounds down to 0 (R < 2.00 at 0.005) never pays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from tokenmall.domain.marketing.base import (
    Context,
    DayClosed,
    MarketingModel,
    Multiple,
    OrderRefunded,
    OrderSettled,
    Params,
    Ratio,
    Reward,
)
from tokenmall.money import FEN, ZERO, floor_fen, mul, ratio_floor

__all__ = ["Rebate", "RebateGrant", "RebateParams", "RebateState"]


class RebateParams(Params):
    rebate_ratio: Multiple = Decimal("1.0")
    release_rate: Ratio = Decimal("0.005")


@dataclass(slots=True)
class RebateGrant:
    order: str
    member: str
    amount: Decimal  # the order's X
    grant: Decimal  # R
    daily: Decimal
    released: Decimal = ZERO
    taken: Decimal = ZERO
    refunded: Decimal = ZERO  # of the order, cumulative
    active: bool = True
    refunds: list[str] = field(default_factory=list)

    @property
    def shrunk(self) -> Decimal:
        """R - floor2(R x q): what the member may keep in the end."""
        return self.grant - ratio_floor(mul(self.grant, self.refunded), self.amount, FEN)

    @property
    def kept(self) -> Decimal:
        return self.released - self.taken


@dataclass(slots=True)
class RebateState:
    grants: dict[str, RebateGrant] = field(default_factory=dict)  # in settlement order
    last_day: date | None = None


class Rebate(MarketingModel[RebateParams, RebateState]):
    name = "rebate"
    params_schema = RebateParams

    def new_state(self) -> RebateState:
        return RebateState()

    def on_settled(self, state: RebateState, event: OrderSettled, ctx: Context) -> list[Reward]:
        if event.order in state.grants:
            return []
        r = floor_fen(mul(event.amount, self.params.rebate_ratio))
        daily = floor_fen(mul(r, self.params.release_rate))
        state.grants[event.order] = RebateGrant(
            event.order, event.member, event.amount, r, daily, active=r > 0 and daily > 0
        )
        return []

    def on_day_closed(self, state: RebateState, event: DayClosed, ctx: Context) -> list[Reward]:
        if state.last_day is not None and event.day <= state.last_day:
            return []
        state.last_day = event.day
        out = []
        step = f"day:{event.day.isoformat()}"
        for g in state.grants.values():
            if not g.active:
                continue
            pay = min(g.daily, g.shrunk - g.kept)
            if pay > 0:
                g.released += pay
                out.append(Reward(g.order, self.name, g.member, step, pay))
            g.active = g.kept < g.shrunk
        return out

    def on_refunded(self, state: RebateState, event: OrderRefunded, ctx: Context) -> list[Reward]:
        g = state.grants.get(event.order)
        if g is None or event.refund_id in g.refunds:
            return []
        g.refunds.append(event.refund_id)
        g.refunded = max(g.refunded, event.refunded)
        target = ratio_floor(mul(g.released, g.refunded), g.amount, FEN)
        out = []
        if target > g.taken:
            delta = target - g.taken
            g.taken = target
            step = f"refund:{event.refund_id}"
            out.append(Reward(g.order, self.name, g.member, step, -delta))
        if g.kept >= g.shrunk:
            g.active = False
        return out
