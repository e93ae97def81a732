"""The unit of work: the one way a service opens a writing transaction on a tenant.

::

    with store.tenant_tx(tenant_id) as tx:      # the tenant's lock, taken first
        out = tx.apply_one("settle:o1", Settle("o1"))   # ledger commands, same transaction
        ... write the service's own rows on tx.conn ...
        tx.emit(OrderSettled(...))               # handlers run here, in this transaction
        tx.after_commit(lambda: provider.refund(...))   # I/O once the commit is durable

Leaving the block normally commits; leaving it by an exception rolls everything back (the
ledger's commands, the rows, what handlers wrote) and no after-commit call runs.  After the
commit the after-commit calls run in the order they were added; the first that raises stops
the rest and reaches the caller (what they do is idempotent and retried by the scheduler, as a
provider call must be, so a crash between commit and call loses nothing).

Why one object: before it, routes, service functions and the order service each opened their
own transactions, and orders and the wallet reached into the ledger's private methods to share
one.  Locks: a transaction that moves value takes the tenant's lock before any other row
(``lock=True``, the default), so there is one lock order and no cycle on PostgreSQL.  One that
moves no value (creating an order, a catalog change) passes ``lock=False``: it never waits
behind the tenant's ledger batches; if it later applies a ledger command, the ledger takes the
lock then.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine

from tokenmall.domain.economy import Command
from tokenmall.domain.events import MembersExited
from tokenmall.domain.params import TenantParams
from tokenmall.service.ledger import Ledger, Outcome
from tokenmall.service.messagebus import EventBus
from tokenmall.store.db import read_only

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

__all__ = ["Store", "TenantTx", "as_store"]


class TenantTx:
    """An open transaction on one tenant: its connection, the ledger and the event bus."""

    __slots__ = ("_after", "_bus", "_ledger", "_params", "conn", "tenant_id")

    def __init__(self, conn: Connection, tenant_id: int, ledger: Ledger, bus: EventBus) -> None:
        self.conn = conn
        self.tenant_id = tenant_id
        self._ledger = ledger
        self._bus = bus
        self._params: TenantParams | None = None
        self._after: list[Callable[[], object]] = []

    def lock(self) -> TenantParams:
        """The tenant's lock (once per transaction) and its parameters as of this turn."""
        if self._params is None:
            self._params = self._ledger.lock(self.conn, self.tenant_id)
        return self._params

    @property
    def params(self) -> TenantParams:
        """The tenant's parameters, read under its lock (taking it if not taken yet)."""
        return self.lock()

    def apply(self, items: Sequence[tuple[str, Command]]) -> list[Outcome]:
        """Ledger commands ``(idempotency key, command)`` in this transaction, in order; a
        refused one is an outcome, not an exception (see :meth:`apply_one`)."""
        outcomes = self._ledger.submit_in(self.conn, self.tenant_id, items)
        for outcome in outcomes:
            # any command can force exits (R7): they are facts of their own for handlers
            if outcome.exits and outcome.seq is not None:
                self.emit(MembersExited(outcome.seq, outcome.exits, time.time()))
        return outcomes

    def apply_one(self, key: str, command: Command) -> Outcome:
        """One ledger command; its refusal raises the error it was refused with."""
        return self.apply([(key, command)])[0].raise_if_rejected()

    def price_ratio(self) -> tuple[Decimal, Decimal]:
        """The EP price the next command will use, as an exact (numerator, denominator)."""
        return self._ledger.price_in(self.conn, self.tenant_id, self.params)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested transaction: an exception inside undoes only what was done inside (the
        ledger's batches included), and is raised on."""
        with self.conn.begin_nested():
            yield

    def emit(self, event: object) -> None:
        """Run the handlers registered for ``type(event)`` now, in this transaction."""
        self._bus.handle(self, event)

    def after_commit(self, fn: Callable[[], object]) -> None:
        """Call ``fn`` once this transaction has committed (never if it rolls back)."""
        self._after.append(fn)


class Store:
    """The database with its ledger and event bus: where units of work come from.

    One per process and engine (the composition root, :mod:`tokenmall.bootstrap`, builds it):
    the ledger keeps warm members per tenant, and the bus is the process's handler table.
    """

    def __init__(
        self, engine: Engine, *, ledger: Ledger | None = None, bus: EventBus | None = None
    ) -> None:
        self.engine = engine
        self.ledger = ledger if ledger is not None else Ledger(engine)
        self.bus = bus if bus is not None else EventBus()

    @contextmanager
    def tenant_tx(self, tenant_id: int, *, lock: bool = True) -> Iterator[TenantTx]:
        """A writing transaction on ``tenant_id``; see the module docstring."""
        with self.engine.begin() as conn:
            tx = TenantTx(conn, tenant_id, self.ledger, self.bus)
            if lock:
                tx.lock()
            yield tx
        for fn in tx._after:
            fn()

    def read(self) -> AbstractContextManager[Connection]:
        """A read-only connection: no writer lock, nothing it runs can write."""
        return read_only(self.engine).connect()


def as_store(db: Engine | Ledger | Store) -> Store:
    """The composition root's :class:`Store` as given, or one around a bare engine or ledger
    (tests, scripts, one-off commands): a store whose bus has no handlers."""
    if isinstance(db, Store):
        return db
    if isinstance(db, Ledger):
        return Store(db.engine, ledger=db)
    return Store(db)
