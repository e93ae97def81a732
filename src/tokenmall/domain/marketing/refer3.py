"""推三返一 refer three, get one back: every third qualifying order of a referrer's recruits
refunds the referrer's own latest purchase.

Rule (docs/RULES.md section 5): for products in ``products`` [all].  When an order by member b
settles and b's direct referrer r has at least one settled, not fully refunded qualifying order
of their own, b's order takes a position in r's current cycle of 3 (positions in the order
settlements arrive) and r gets floor2(cycle_rewards[pos-1] x (r's latest such order's amount
less what was refunded of it)); ``cycle_rewards`` [0, 0, 1.0], its length is the cycle's size.
If r has no such order, b's order takes no position and pays nothing.  A fully refunded order
leaves its position: its reward is reversed and the position is free; the next qualifying
order of r's recruits takes the lowest free position of r's oldest incomplete cycle.  A partial
refund keeps the position and takes back floor2(reward x q) in total.

Decisions: a reward already paid is not changed when r's own order is refunded later (that
refund only changes r's eligibility and the base of later rewards); a position that pays 0
(positions 1 and 2 by default) is still taken and still counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from pydantic import field_validator

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
from tokenmall.money import ZERO, floor_fen, mul

__all__ = ["OwnOrder", "Refer3", "Refer3Params", "Refer3State"]


class Refer3Params(Params):
    products: frozenset[str] | None = None  # None = every product qualifies
    cycle_rewards: tuple[Ratio, ...] = (Decimal("0"), Decimal("0"), Decimal("1.0"))

    @field_validator("cycle_rewards")
    @classmethod
    def _cycle(cls, v: tuple[Decimal, ...]) -> tuple[Decimal, ...]:
        if not v:
            raise ValueError("cycle_rewards must give at least one position")
        return v


@dataclass(slots=True)
class OwnOrder:
    order: str
    amount: Decimal
    refunded: Decimal = ZERO

    @property
    def kept(self) -> Decimal:
        return self.amount - self.refunded


@dataclass(slots=True)
class Refer3State:
    book: GrantBook = field(default_factory=GrantBook)
    # each member's own qualifying settled orders, in settlement order
    own: dict[str, list[OwnOrder]] = field(default_factory=dict)
    # referrer -> cycles, each a list of slots holding the order at that position (or None)
    cycles: dict[str, list[list[str | None]]] = field(default_factory=dict)
    # order -> (referrer, cycle index from 0, position from 1)
    positions: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    buyers: dict[str, str] = field(default_factory=dict)  # order -> its buyer


class Refer3(MarketingModel[Refer3Params, Refer3State]):
    name = "refer3"
    params_schema = Refer3Params

    def new_state(self) -> Refer3State:
        return Refer3State()

    def levels(self) -> int:
        return 1

    def _qualifies(self, product: str) -> bool:
        return self.params.products is None or product in self.params.products

    def on_settled(self, state: Refer3State, event: OrderSettled, ctx: Context) -> list[Reward]:
        if not self._qualifies(event.product) or not state.book.settle(event.order, event.amount):
            return []
        state.buyers[event.order] = event.member
        referrer = ctx.referrer_of(event.member)
        base = self._base(state, referrer) if referrer not in (None, event.member) else None
        state.own.setdefault(event.member, []).append(OwnOrder(event.order, event.amount))
        if referrer is None or base is None:
            return []
        cycle, pos = self._take_position(state, referrer, event.order)
        amount = floor_fen(mul(self.params.cycle_rewards[pos - 1], base))
        if amount <= 0:
            return []
        step = f"cycle{cycle + 1}:pos{pos}"
        return [state.book.grant(Reward(event.order, self.name, referrer, step, amount))]

    @staticmethod
    def _base(state: Refer3State, referrer: str | None) -> Decimal | None:
        """The referrer's latest own qualifying order less its refunds; None if they have none."""
        for own in reversed(state.own.get(referrer or "", [])):
            if own.kept > 0:
                return own.kept
        return None

    def _take_position(self, state: Refer3State, referrer: str, order: str) -> tuple[int, int]:
        cycles = state.cycles.setdefault(referrer, [])
        # the oldest incomplete cycle and its lowest free position, or a new cycle
        ci = next((i for i, slots in enumerate(cycles) if None in slots), len(cycles))
        if ci == len(cycles):
            cycles.append([None] * len(self.params.cycle_rewards))
        pos = cycles[ci].index(None) + 1
        cycles[ci][pos - 1] = order
        state.positions[order] = (referrer, ci, pos)
        return ci, pos

    def on_refunded(self, state: Refer3State, event: OrderRefunded, ctx: Context) -> list[Reward]:
        if event.order not in state.book.amounts:
            return []
        buyer = state.buyers[event.order]
        for own in state.own.get(buyer, []):
            if own.order == event.order:
                own.refunded = max(own.refunded, event.refunded)
        out = state.book.take_back(self.name, event)
        if event.full and event.order in state.positions:
            referrer, ci, pos = state.positions.pop(event.order)
            state.cycles[referrer][ci][pos - 1] = None
        return out
