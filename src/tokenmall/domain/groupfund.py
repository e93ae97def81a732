"""The activity group's locked shopping fund (活动团, G4 of docs/RULES.md section 4).

Why a class of its own: the fund lives long after its group (days or weeks of tasks), is owned
by one winner's order, and its only inputs are tasks and refunds of that order.  A store keeps
one row per fund (its fields below); the wiring feeds it tasks and refunds and pays the
:class:`~tokenmall.domain.groupbuy.PaySP` moves it returns.

Rules: a winner gets a fund equal to what they paid, locked.  Each task done (invite a new
member, daily sign-in, share) releases one step of ``amount / steps`` (whole fen, rounded
down; the last step releases what is left, so the steps add up to the amount), at most
``daily_steps`` a day.  A refund of the winner's order forfeits what is still locked: the fund
is entitled to what the member still paid (``amount - refunded``), releasing goes on in the
same steps until what was released reaches that, and what was already released is kept.

Decision: a task is identified by its ``ref`` (e.g. the invited member, or the sign-in day); a
ref already used releases nothing, so a replayed task event is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from tokenmall.domain.groupbuy import LockFund, PaySP
from tokenmall.errors import InvalidCommand
from tokenmall.money import FEN, ZERO, floor_fen, ratio_floor

__all__ = ["TASKS", "ShoppingFund"]

TASKS = frozenset({"invite", "sign_in", "share"})


@dataclass(slots=True)
class ShoppingFund:
    group: str
    order: str  # the winner's confirmed place ref
    member: str
    amount: Decimal
    steps: int = 10
    daily_steps: int = 1
    released: Decimal = ZERO
    released_steps: int = 0
    refunded: Decimal = ZERO  # of the winner's order, cumulative
    day: date | None = None  # the last day a step was released
    steps_today: int = 0  # steps released on ``day``
    task_refs: list[str] = field(default_factory=list)

    @classmethod
    def from_lock(cls, move: LockFund) -> ShoppingFund:
        return cls(move.group, move.ref, move.member, move.amount, move.steps, move.daily_steps)

    @property
    def step_amount(self) -> Decimal:
        return ratio_floor(self.amount, Decimal(self.steps), FEN)

    @property
    def entitled(self) -> Decimal:
        """What the fund may release in all: the amount less what was refunded of the order."""
        return max(ZERO, self.amount - self.refunded)

    @property
    def locked(self) -> Decimal:
        return max(ZERO, self.entitled - self.released)

    def on_task(self, task: str, day: date, ref: str) -> list[PaySP]:
        """A task done by the fund's owner: release one step unless today's cap is reached."""
        if task not in TASKS:
            raise InvalidCommand(f"unknown task {task!r}: one of {', '.join(sorted(TASKS))}")
        if ref in self.task_refs or self.locked <= 0:
            return []
        if self.day is not None and day < self.day:
            raise InvalidCommand(f"task day {day} is before the fund's last release on {self.day}")
        today = self.steps_today if day == self.day else 0
        if today >= self.daily_steps:
            return []
        last = self.released_steps + 1 >= self.steps
        pay = self.locked if last else min(self.step_amount, self.locked)
        if pay <= 0:
            return []
        self.task_refs.append(ref)
        self.released += pay
        self.released_steps += 1
        self.day = day
        self.steps_today = today + 1
        key = f"fund:{self.order}:step:{self.released_steps}"
        return [PaySP(self.group, self.member, pay, "fund_release", key)]

    def on_refund(self, refunded_total: Decimal) -> Decimal:
        """The winner's order was refunded (cumulative amount); return what is forfeited now."""
        if refunded_total > self.amount:
            raise InvalidCommand(f"refunded {refunded_total} exceeds the order's {self.amount}")
        before = self.locked
        self.refunded = max(self.refunded, floor_fen(refunded_total))
        return before - self.locked
