"""Where the sandbox gateway keeps its payment intents.

In memory by default (:class:`MemoryIntents`: a test, a demo, one process).  A server with
several worker processes needs every worker to know every intent, whichever opened it, and a
restart to lose none: it passes a store backed by its database (the service's
``sandbox_intents`` table).  The gateway never mutates a record: it reads one, builds the next
and asks the store to swap them (:meth:`IntentStore.replace`, a compare-and-set on
``version``), so two processes paying the same intent at once cannot both succeed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from tokenmall.payments.base import PaymentIntent, RefundResult

__all__ = ["IntentRecord", "IntentStore", "MemoryIntents"]


@dataclass(frozen=True, slots=True)
class IntentRecord:
    """An intent as the provider knows it: its state, its transaction, its refunds."""

    intent: PaymentIntent
    transaction_id: str | None = None
    refunds: tuple[RefundResult, ...] = ()
    version: int = 0

    @property
    def refunded(self) -> Decimal:
        return sum((r.amount for r in self.refunds), Decimal(0))

    def refund(self, refund_id: str) -> RefundResult | None:
        return next((r for r in self.refunds if r.refund_id == refund_id), None)


class IntentStore(Protocol):
    """The gateway's intents of one tenant."""

    def get(self, intent_id: str) -> IntentRecord | None: ...

    def of_order(self, order_id: str) -> IntentRecord | None:
        """The intent of the provider order id ``order_id`` (one per order id)."""
        ...

    def add(self, record: IntentRecord) -> IntentRecord:
        """Keep a new intent and return it, or the one kept for the same order id first
        (two processes opening the same order's intent at once get the same one)."""
        ...

    def replace(self, old: IntentRecord, new: IntentRecord) -> bool:
        """Swap ``old`` for ``new`` (``new.version`` is ``old.version + 1``) unless it changed
        since ``old`` was read; whether it was swapped."""
        ...


class MemoryIntents:
    """:class:`IntentStore` in this process's memory."""

    def __init__(self) -> None:
        self._intents: dict[str, IntentRecord] = {}
        self._by_order: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, intent_id: str) -> IntentRecord | None:
        return self._intents.get(intent_id)

    def of_order(self, order_id: str) -> IntentRecord | None:
        intent_id = self._by_order.get(order_id)
        return None if intent_id is None else self._intents[intent_id]

    def add(self, record: IntentRecord) -> IntentRecord:
        with self._lock:
            existing = self.of_order(record.intent.order_id)
            if existing is not None:
                return existing
            self._intents[record.intent.intent_id] = record
            self._by_order[record.intent.order_id] = record.intent.intent_id
            return record

    def replace(self, old: IntentRecord, new: IntentRecord) -> bool:
        with self._lock:
            current = self._intents.get(old.intent.intent_id)
            if current is None or current.version != old.version:
                return False
            self._intents[new.intent.intent_id] = new
            return True
