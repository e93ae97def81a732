"""排队免单 queue for a free order: a share of every order pays back earlier orders, in turn.

Rule (docs/RULES.md section 5): an order of a qualifying product (``products`` [all], amount >=
``min_amount`` [0]) settles in three steps, in this order:

1. floor4(X x ``rate_back`` [0.10]) goes into the queue's pot (the pot is kept to 4 decimals);
2. the pot pays the queue from its head: each payment is min(floor2(pot), the head's remaining
   target), and the head leaves once its target is reached; this repeats while the pot holds
   at least 0.01 and the queue is not empty;
3. the order joins the back of the queue with target min(floor2(X x ``rate`` [1.0]),
   ``money_max`` [none]).

So an order never pays itself.  A refund of cumulative ratio q lowers the order's target to
min(floor2(X x (1 - q) x rate), money_max); what it was paid beyond that is taken back into the
pot, and it leaves the queue once what it was paid reaches the new target.  Its own contribution
stays in the pot.

Decisions: the pot pays only at a settlement (step 2), never on a refund, so the order of
payments depends on settlements alone; an order whose target is 0 does not join the queue.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal

from pydantic import Field

from tokenmall.domain.marketing.base import (
    Amount,
    Cap,
    Context,
    MarketingModel,
    Multiple,
    OrderRefunded,
    OrderSettled,
    Params,
    Reward,
)
from tokenmall.money import FEN, ZERO, floor_cny, floor_fen, mul

__all__ = ["QueueEntry", "QueueFree", "QueueFreeParams", "QueueFreeState"]


class QueueFreeParams(Params):
    rate_back: Amount = Field(default=Decimal("0.10"), le=1)
    rate: Multiple = Decimal("1.0")
    money_max: Cap | None = None
    min_amount: Cap = Decimal("0")
    products: frozenset[str] | None = None


@dataclass(slots=True)
class QueueEntry:
    order: str
    member: str
    amount: Decimal
    target: Decimal
    paid: Decimal = ZERO
    refunds: list[str] = field(default_factory=list)


@dataclass(slots=True)
class QueueFreeState:
    pot: Decimal = ZERO
    entries: dict[str, QueueEntry] = field(default_factory=dict)  # every qualifying order
    queue: deque[str] = field(default_factory=deque)  # orders still waiting, head first


class QueueFree(MarketingModel[QueueFreeParams, QueueFreeState]):
    name = "queue_free"
    params_schema = QueueFreeParams

    def new_state(self) -> QueueFreeState:
        return QueueFreeState()

    def _target(self, base: Decimal) -> Decimal:
        target = floor_fen(mul(base, self.params.rate))
        cap = self.params.money_max
        return target if cap is None else min(target, cap)

    def on_settled(self, state: QueueFreeState, event: OrderSettled, ctx: Context) -> list[Reward]:
        p = self.params
        if (p.products is not None and event.product not in p.products) or (
            event.amount < p.min_amount or event.order in state.entries
        ):
            return []
        # (1) the order's contribution into the pot
        state.pot = floor_cny(state.pot + mul(event.amount, p.rate_back))
        # (2) the pot pays the queue from its head
        out = []
        while state.pot >= FEN and state.queue:
            head = state.entries[state.queue[0]]
            pay = min(floor_fen(state.pot), head.target - head.paid)
            if pay > 0:
                state.pot -= pay
                head.paid += pay
                step = f"from:{event.order}"
                out.append(Reward(head.order, self.name, head.member, step, pay))
            if head.paid >= head.target:
                state.queue.popleft()
        # (3) the order joins the back of the queue
        entry = QueueEntry(event.order, event.member, event.amount, self._target(event.amount))
        state.entries[event.order] = entry
        if entry.target > 0:
            state.queue.append(event.order)
        return out

    def on_refunded(
        self, state: QueueFreeState, event: OrderRefunded, ctx: Context
    ) -> list[Reward]:
        entry = state.entries.get(event.order)
        if entry is None or event.refund_id in entry.refunds:
            return []
        entry.refunds.append(event.refund_id)
        entry.target = min(entry.target, self._target(entry.amount - event.refunded))
        out = []
        excess = entry.paid - entry.target
        if excess > 0:
            entry.paid = entry.target
            state.pot += excess
            step = f"refund:{event.refund_id}"
            out.append(Reward(entry.order, self.name, entry.member, step, -excess))
        if entry.paid >= entry.target and event.order in state.queue:
            state.queue.remove(event.order)
        return out
