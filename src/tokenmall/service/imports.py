"""Bulk import of orders an integrator's own system has already taken payment for.

An integrator (an offline shop's till, another storefront, a back office that batches the
day's sales) sends up to :data:`MAX_IMPORT` paid orders at once.  Each becomes one core
:class:`~tokenmall.domain.economy.Purchase`: paid *and settled* on import, whatever the
tenant's ``settle_days`` (the integrator imports an order once it is final; the mall's own
orders are the ones with a return window).  Why it is built this way:

* **One ledger unit of work per request.**  Every item goes through a single
  :meth:`Ledger.submit <tokenmall.service.ledger.Ledger.submit>`, so the durable commit, the
  tenant lock and the member look-ups are paid once per batch, not per order: that is where
  bulk throughput comes from (bench/http_import.py).
* **Validate everything, then apply.**  :func:`check_items` refuses the whole batch, naming
  the item's index, before anything is written (the scenario runner's rule), so a client never
  has to work out which half of a bad batch went in.
* **Idempotent per external order id.**  The ledger key is ``import:<external id>`` and the
  purchase's order reference ``imp:<external id>``: a replay of the same item returns the
  first result (``replayed``), the same id with other content is reported per item
  (``conflict``) and changes nothing.  The ``imp:`` prefix keeps imported references apart
  from the mall's own order numbers.
* **Referral links stay the registry's.**  A member registered with a referrer whose link the
  ledger does not hold yet gets a ``Join`` first (the key the order flow uses), so the link is
  the registered one; an item naming a *different* referrer is then refused per item by the
  ledger's permanent-link rule.  An item's referrer is part of its content, never derived, so
  its idempotency does not depend on what was registered meanwhile.

Imported orders are ledger orders only: they carry no stock, no row in the mall's ``orders``
table and no provider payment; they show in member figures, rewards and the economy.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, Literal

from sqlalchemy import select

from tokenmall.domain.economy import Command, Join, Purchase
from tokenmall.domain.events import OrderSettled
from tokenmall.errors import IdempotencyConflict, InvalidCommand
from tokenmall.money import floor_fen
from tokenmall.service import members
from tokenmall.service.ledger import Ledger, Outcome
from tokenmall.service.uow import Store, as_store
from tokenmall.store import schema as s

__all__ = [
    "EXTERNAL_ID_PATTERN",
    "KEY_PREFIX",
    "MAX_IMPORT",
    "MAX_IMPORT_AMOUNT",
    "ORDER_PREFIX",
    "ImportItem",
    "ImportReport",
    "ImportResult",
    "check_items",
    "import_orders",
]

MAX_IMPORT: Final = 5_000
# the mall's own ceiling for one order (service.orders.MAX_ORDER_TOTAL), far below the ledger's
MAX_IMPORT_AMOUNT: Final = Decimal("1000000000")
KEY_PREFIX: Final = "import:"
ORDER_PREFIX: Final = "imp:"
# 60 characters, so "imp:" + id fits the ledger's 64-character order reference
EXTERNAL_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,59}$"
_EXTERNAL_ID = re.compile(EXTERNAL_ID_PATTERN)
_CHUNK: Final = 500

Status = Literal["applied", "replayed", "conflict", "rejected"]


@dataclass(frozen=True, slots=True)
class ImportItem:
    """One paid order as the integrator's system knows it."""

    external_id: str
    member: str
    amount: Decimal
    referrer: str | None = None
    pool_amount: Decimal | None = None
    fund_amount: Decimal | None = None

    def command(self) -> Purchase:
        return Purchase(
            order=ORDER_PREFIX + self.external_id,
            member=self.member,
            amount=self.amount,
            referrer=self.referrer,
            pool_amount=self.pool_amount,
            fund_amount=self.fund_amount,
        )


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What became of one item; ``figures`` are the purchase's (points, referral points,
    quota), the same on a replay as when it was applied."""

    index: int
    external_id: str
    status: Status
    seq: int | None = None
    figures: dict[str, str] = field(default_factory=dict)
    error_code: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ImportReport:
    results: list[ImportResult]
    counts: dict[Status, int]
    # the economy after the batch, from the last item applied (None: nothing was applied)
    economy: dict[str, str] | None


def _fen_amount(value: Decimal, what: str, *, positive: bool) -> str | None:
    if not value.is_finite():
        return f"{what} must be a number"
    if value < 0 or (positive and value == 0):
        return f"{what} must be {'greater than zero' if positive else 'zero or more'}"
    if value >= MAX_IMPORT_AMOUNT:
        return f"{what} must be below {MAX_IMPORT_AMOUNT} CNY"
    if floor_fen(value) != value:
        return f"{what} must be whole fen (at most 2 decimal places)"
    return None


def _problem(item: ImportItem) -> str | None:
    if not _EXTERNAL_ID.fullmatch(item.external_id):
        return "external_id must be 1-60 letters, digits or _.:- (starting with a letter or digit)"
    try:
        members.check_member_code(item.member)
        if item.referrer is not None:
            members.check_member_code(item.referrer)
    except InvalidCommand as exc:
        return str(exc)
    if item.referrer == item.member:
        return "a member cannot refer themselves"
    problem = _fen_amount(item.amount, "amount", positive=True)
    parts = Decimal(0)
    for name in ("pool_amount", "fund_amount"):
        value = getattr(item, name)
        if problem is None and value is not None:
            problem = _fen_amount(value, name, positive=False)
            parts += value
    if problem is None and parts > item.amount:
        problem = "pool_amount and fund_amount together exceed amount"
    return problem


def check_items(items: Sequence[ImportItem]) -> None:
    """Refuse the whole batch (:class:`InvalidCommand` naming ``orders[i]``) if any item is
    invalid or an external id appears twice; nothing has been applied when this raises."""
    if not 1 <= len(items) <= MAX_IMPORT:
        raise InvalidCommand(f"an import has 1 to {MAX_IMPORT} orders")
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        problem = _problem(item)
        if problem is not None:
            raise InvalidCommand(f"orders[{i}]: {problem}")
        j = first.setdefault(item.external_id, i)
        if j != i:
            raise InvalidCommand(
                f"orders[{i}]: external_id {item.external_id!r} is also orders[{j}] "
                "(send each order once per batch)"
            )


def _registered_referrers(store: Store, tenant_id: int, codes: list[str]) -> dict[str, str]:
    """member -> registered referrer, for the members of the batch who have one."""
    p = s.member_profiles.c
    out: dict[str, str] = {}
    # a read: on SQLite it must not take a writer's turn (store.db.read_only)
    with store.read() as conn:
        for i in range(0, len(codes), _CHUNK):
            part = codes[i : i + _CHUNK]
            rows = conn.execute(
                select(p.code, p.referrer).where(
                    p.tenant_id == tenant_id, p.code.in_(part), p.referrer.is_not(None)
                )
            )
            out.update({row.code: row.referrer for row in rows})
    return out


def _result(index: int, item: ImportItem, outcome: Outcome) -> ImportResult:
    if outcome.status in ("applied", "replayed"):
        figures: dict[str, Any] = (outcome.result or {}).get("figures", {})
        return ImportResult(
            index,
            item.external_id,
            outcome.status,  # type: ignore[arg-type]
            seq=outcome.seq,
            figures={k: str(v) for k, v in figures.items() if k != "exits"},
        )
    status: Status = "conflict" if outcome.error_code == IdempotencyConflict.code else "rejected"
    return ImportResult(
        index,
        item.external_id,
        status,
        error_code=outcome.error_code,
        error=outcome.error,
    )


def import_orders(
    ledger: Ledger | Store, tenant_id: int, items: Sequence[ImportItem]
) -> ImportReport:
    """Validate ``items`` (all or nothing), then apply them in one ledger transaction."""
    check_items(items)
    store = as_store(ledger)
    codes = list(dict.fromkeys(item.member for item in items))
    joins: list[tuple[str, Command]] = [
        (f"join:{code}:{ref}", Join(code, ref))
        for code, ref in _registered_referrers(store, tenant_id, codes).items()
    ]
    batch: list[tuple[str, Command]] = [*joins]
    batch.extend((KEY_PREFIX + item.external_id, item.command()) for item in items)
    # A Join refused (the ledger holds another link) is not an item's outcome: the purchase
    # after it meets the same permanent-link rule and reports it.
    with store.tenant_tx(tenant_id) as tx:
        outcomes = tx.apply(batch)[len(joins) :]
        now = time.time()
        for item, o in zip(items, outcomes, strict=True):
            if o.status == "applied":  # an imported order is paid and settled: say so
                tx.emit(
                    OrderSettled(ORDER_PREFIX + item.external_id, item.member, item.amount, now)
                )
    results = [_result(i, item, o) for i, (item, o) in enumerate(zip(items, outcomes, strict=True))]
    counts: dict[Status, int] = {"applied": 0, "replayed": 0, "conflict": 0, "rejected": 0}
    for r in results:
        counts[r.status] += 1
    economy = None
    for o in reversed(outcomes):
        if o.status == "applied" and o.result is not None:
            economy = {k: str(v) for k, v in o.result.items() if k != "figures"}
            break
    return ImportReport(results, counts, economy)
