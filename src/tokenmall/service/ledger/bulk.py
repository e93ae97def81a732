"""Bulk writes: the day close's transfer pipe on SQLite, COPY and joined updates on PostgreSQL."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

import orjson
from sqlalchemy import Connection

from tokenmall.store import schema as s

if TYPE_CHECKING:
    import psycopg

if TYPE_CHECKING:
    from tokenmall.service.ledger.writes import LedgerWrites


class _TransferPipe:
    """Stores one transaction's transfer rows on a second thread while this one builds the next
    chunk (SQLite).

    The day close is half Python (building a million rows and their digest) and half SQLite
    (storing them).  Each chunk goes to SQLite as one JSON array of ``(asset, debit, credit,
    amount)`` in one ``INSERT ... SELECT FROM json_each(?)``, with the tenant, the sequence
    number and the first row number bound once (numbered by the array index), so SQLite
    extracts four values per row, not seven (1M rows: 2.2 s against 3.2 s of SQLite time, and
    a quarter of the JSON to build).  The driver releases the GIL for the whole statement, so
    on two cores the two halves overlap.  (``executemany`` on a second thread does not: it
    takes the GIL back for every row and waits behind this busy thread, which was measured
    slower than no thread at all.)  Statements run on the batch's own connection, inside its
    transaction, in the order given; :meth:`drain` must be called before this thread uses the
    connection again.  A failed chunk is raised by the next :meth:`put` or :meth:`drain`, and the
    transaction then rolls back as usual.  On PostgreSQL :meth:`put` writes at once.
    """

    def __init__(self, ledger: LedgerWrites, conn: Connection, tenant_id: int, seq: int) -> None:
        self._ledger = ledger
        self._conn = conn
        self._tenant_id = tenant_id
        self._seq = seq
        self._raw = conn.connection.dbapi_connection if ledger._sqlite else None
        # bounded: at most a few chunks wait, so memory stays flat however many rows pass
        self._queue: queue.Queue[tuple[int, bytes] | None] = queue.Queue(4)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        assert self._raw is not None
        cur = self._raw.cursor()
        try:
            while (item := self._queue.get()) is not None:
                if self._error is None:
                    try:
                        first, rows = item
                        cur.execute(
                            _INSERT_TRANSFERS_JSON,
                            (self._tenant_id, self._seq, first, rows.decode()),
                        )
                    except BaseException as exc:  # noqa: BLE001 - handed to the owner thread
                        self._error = exc
        finally:
            cur.close()

    def put(self, rows: list[tuple[str, str, str, int]], first: int) -> None:
        """Store ``rows`` (asset, debit, credit, amount) as transfers ``first``, ``first + 1``..."""
        if self._error is not None:
            self.drain()
        if not rows:
            return
        if self._raw is None:
            t, q = self._tenant_id, self._seq
            self._ledger._insert(
                self._conn, s.transfers, [(t, q, k, *row) for k, row in enumerate(rows, first)]
            )
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ledger-pipe", daemon=True)
            self._thread.start()
        self._queue.put((first, orjson.dumps(rows)))

    def drain(self) -> None:
        """Wait until every chunk put so far is stored; raise the first failure."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._error is not None:
            err, self._error = self._error, None
            raise err


# members' value columns, in the order _flush builds its rows (no and tenant_id around them)
# PostgreSQL: from this many member updates in one batch, COPY + one joined UPDATE; below it,
# executemany (the temporary table's round trips cost more than a few rows' statements)
_PG_BULK_UPDATE = 1000


def _pg_raw(conn: Connection) -> psycopg.Connection[Any]:
    """The psycopg connection under a PostgreSQL engine's connection (same transaction)."""
    return cast("psycopg.Connection[Any]", conn.connection.dbapi_connection)


def _copy(conn: Connection, table: str, cols: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """PostgreSQL ``COPY table (cols) FROM STDIN`` on the batch's own connection (and so in
    its transaction).  ``table`` and ``cols`` are this module's constants, never input."""
    raw = _pg_raw(conn)
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp:
        for row in rows:
            cp.write_row(row)


def _pg_update_from(  # noqa: PLR0917 - an internal bulk path
    conn: Connection,
    temp: str,
    ddl: str,
    cols: Sequence[str],
    rows: Iterable[Sequence[Any]],
    update_sql: str,
    params: tuple[Any, ...],
) -> None:
    """Many rows updated by key on PostgreSQL: ``COPY`` them into a temporary table, then one
    ``UPDATE ... FROM`` join, instead of a planned statement and a round of messages per row
    (76 us a row with ``executemany``: 67 s for a 1M-holder close's pay-out).  The table is
    the session's, emptied before use and at commit; a rollback drops it with the rest."""
    raw = _pg_raw(conn)
    with raw.cursor() as cur:
        cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {temp} ({ddl}) ON COMMIT DELETE ROWS")
        cur.execute(f"TRUNCATE {temp}")
    _copy(conn, temp, cols, rows)
    with raw.cursor() as cur:
        cur.execute(f"ANALYZE {temp}")  # row count and spread for the join's plan
        cur.execute(update_sql, params)


_INSERT_TRANSFERS_JSON = (
    "INSERT INTO transfers (tenant_id, seq, n, asset, debit, credit, amount) SELECT ?, ?, ? + key, "
    "json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), "
    "json_extract(value, '$[3]') FROM json_each(?)"
)
