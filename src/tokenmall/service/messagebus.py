"""The table from event type to its handlers, and how an event is handed to them.

No signals and no discovery: the table is built in one place (:mod:`tokenmall.bootstrap`), so
reading that one function tells what reacts to what, and in which order.

Order (documented in docs/DESIGN.md, "Events"):

* handlers of one event type run in the order they were registered;
* a handler runs inside the emitting transaction (``tx``), so it may apply ledger commands,
  write rows and emit further events; an event emitted by a handler is handled at once, depth
  first, before the next handler of the outer event;
* a handler that raises aborts the emit, and the exception leaves the unit of work, which rolls
  the whole transaction back: the fact and everything its handlers did are undone together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from tokenmall.service.uow import TenantTx

__all__ = ["EventBus", "Handler"]

E = TypeVar("E")
Handler = Callable[["TenantTx", Any], None]


class EventBus:
    """Event type -> handlers, run in registration order inside the emitting transaction."""

    def __init__(self, table: Mapping[type, Iterable[Handler]] | None = None) -> None:
        self._table: dict[type, list[Handler]] = {
            kind: list(handlers) for kind, handlers in (table or {}).items()
        }

    def register(self, kind: type[E], handler: Callable[[TenantTx, E], None]) -> None:
        """Run ``handler`` for every event of type ``kind``, after those registered before."""
        self._table.setdefault(kind, []).append(handler)

    def unregister(self, kind: type[E], handler: Callable[[TenantTx, E], None]) -> None:
        self._table[kind].remove(handler)

    def handlers(self, kind: type) -> tuple[Handler, ...]:
        return tuple(self._table.get(kind, ()))

    def handle(self, tx: TenantTx, event: object) -> None:
        for handler in self._table.get(type(event), ()):
            handler(tx, event)
