"""The facts other features react to, as plain frozen dataclasses.

An event says what happened to one tenant (the transaction that emits it knows which).  It is
emitted inside the transaction that made it true, through the unit of work
(:meth:`tokenmall.service.uow.TenantTx.emit`), and its handlers run there too: what they write
commits or rolls back with the fact.  So a handler never sees a fact that was later rolled back,
and a fact never commits without what its handlers had to do.

Amounts are CNY ``Decimal`` s in whole fen; times are unix seconds (the service's clock).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

__all__ = [
    "DayClosed",
    "Event",
    "MemberExit",
    "MemberJoined",
    "MembersExited",
    "OrderClosed",
    "OrderPaid",
    "OrderRefunded",
    "OrderSettled",
    "TaskDone",
    "WithdrawalFailed",
    "WithdrawalPaid",
]


@dataclass(frozen=True, slots=True)
class OrderPaid:
    """An order's payment was applied: its money is in escrow, its rewards still pending."""

    order: str
    member: str
    total: Decimal
    cny: Decimal  # through the payment provider
    sp: Decimal  # from the member's wallet
    points_value: Decimal  # CNY of goods paid by redeeming EP
    at: float


@dataclass(frozen=True, slots=True)
class OrderSettled:
    """An order's return window is over (or it settled at payment): its rewards are granted.

    ``amount`` is what is left of the order after refunds so far, the base every reward is
    computed on.
    """

    order: str
    member: str
    amount: Decimal
    at: float


@dataclass(frozen=True, slots=True)
class OrderRefunded:
    """A refund of an order was applied (``settled``: after settlement, so rewards are taken
    back).  ``ratio`` is the cumulative refunded share of the order's total, so a reaction that
    takes back ``floor(reward x ratio)`` in total adds partial refunds up to a full one."""

    order: str
    member: str
    refund_id: str
    amount: Decimal
    refunded: Decimal  # cumulative, this refund included
    total: Decimal
    ratio: Decimal
    settled: bool
    at: float


@dataclass(frozen=True, slots=True)
class OrderClosed:
    """An unpaid order ended without payment: ``status`` is cancelled, expired or failed."""

    order: str
    member: str
    status: str
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class DayClosed:
    """A tenant day was closed: dividends paid, then exits (a replayed close emits nothing)."""

    day: str
    paid: Decimal
    recipients: int
    exits: int


@dataclass(frozen=True, slots=True)
class MemberExit:
    """One forced exit (R7): all of ``points`` sold at the price, ``payout`` (after the sell
    fee) credited to the member's SP wallet."""

    member: str
    points: Decimal
    payout: Decimal


@dataclass(frozen=True, slots=True)
class MembersExited:
    """The exits one ledger command caused (any command can: R7 runs after each), with the
    ledger sequence number of that command, which with the member names each exit for good."""

    seq: int
    exits: tuple[MemberExit, ...]
    at: float


@dataclass(frozen=True, slots=True)
class MemberJoined:
    """A member registered, with the referrer the link names (if any)."""

    member: str
    referrer: str | None
    at: float


@dataclass(frozen=True, slots=True)
class TaskDone:
    """A member did a task the tenant rewards (``invite``, ``sign_in``, ``share``), reported
    once per ``key`` (a key seen again is a replay and emits nothing).  It releases chain21's
    held help money and a step of the member's activity funds.  ``day`` is the tenant's own
    day of the task (ISO date), the one the funds' daily cap counts."""

    member: str
    task: str
    key: str
    day: str
    at: float


@dataclass(frozen=True, slots=True)
class WithdrawalPaid:
    """The provider paid a withdrawal out: ``amount - fee`` reached the member's account."""

    withdrawal: str
    member: str
    amount: Decimal
    fee: Decimal
    at: float


@dataclass(frozen=True, slots=True)
class WithdrawalFailed:
    """The provider could not pay a withdrawal out: its whole amount went back to the wallet."""

    withdrawal: str
    member: str
    amount: Decimal
    fee: Decimal
    at: float


Event = (
    OrderPaid
    | OrderSettled
    | OrderRefunded
    | OrderClosed
    | DayClosed
    | MemberJoined
    | MembersExited
    | TaskDone
    | WithdrawalPaid
    | WithdrawalFailed
)
