"""The ledger service: applies batches of commands to a tenant, durably and in one total order.

One call to :meth:`Ledger.submit` is one unit of work (one database transaction):

1. take the tenant's write lock (``SELECT ... FOR UPDATE`` on its state row in PostgreSQL,
   ``BEGIN IMMEDIATE`` in SQLite), so every process applies that tenant's events in one order;
2. look up every idempotency key of the batch: a key already committed with the same content
   returns its first result, with other content it is refused (``IdempotencyConflict``);
3. run the new commands through the pure :class:`~tokenmall.domain.economy.Economy`, lending
   it the members it names; a refused command is reported and changes nothing;
4. write the balanced transfers, the changed members, grants and account balances, and one
   hash-chained event-log row per applied command; commit.

Many commands per transaction is how throughput is reached: the cost of a durable commit is
paid once per batch, not per purchase.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import queue
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import compress
from math import isnan
from operator import itemgetter, truediv
from typing import TYPE_CHECKING, Any, cast

import orjson
from sqlalchemy import Connection, Engine, Table, bindparam, insert, select, update

from tokenmall.domain.dividends import water_fill_columns
from tokenmall.domain.economy import (
    Asset,
    CloseDay,
    Command,
    Economy,
    EconomyState,
    Escrow,
    Grant,
    Member,
    PayoutHold,
    SystemAccount,
    Transfer,
)
from tokenmall.domain.exits import ExitCascade
from tokenmall.domain.params import TenantParams
from tokenmall.errors import IdempotencyConflict, InvalidCommand, NotFound, TokenmallError
from tokenmall.money import (
    CNY_PLACES,
    EP_PLACES,
    ZERO,
    atoms,
    atoms_unchecked,
    from_atoms,
    show_price,
)
from tokenmall.service.codec import canonical, dec, to_payload
from tokenmall.store import schema as s
from tokenmall.store.db import is_sqlite, read_only
from tokenmall.store.rows import insert_row, update_by_key

if TYPE_CHECKING:
    import psycopg

__all__ = ["GENESIS", "Ledger", "Outcome"]

GENESIS = "00" * 32
_PLACES = {Asset.CNY: CNY_PLACES, Asset.SP: CNY_PLACES, Asset.EP: EP_PLACES}
_MEMBER_COLS = ("ep", "sp", "quota", "spent", "dividends", "ep_debt")
_MEMBER_PLACES = {
    "ep": EP_PLACES,
    "sp": CNY_PLACES,
    "quota": CNY_PLACES,
    "spent": CNY_PLACES,
    "dividends": CNY_PLACES,
    "ep_debt": EP_PLACES,
}
_CHUNK = 500
_DUE_PAGE = 256
_DUE_PAGE_MAX = 16_384
# "+ep", "+quota": filters, not index ranges, so SQLite walks the primary key and the pay-out
# updates below reach the rows in key order (1M updates: 3.6 s, against 5.6 s in EP order)
_HOLDERS_SQL = (
    "SELECT no, ep, quota, spent, trigger FROM members "
    "WHERE tenant_id = ? AND +ep > 0 AND +quota > 0 ORDER BY no"
)
# A paid holder's stored trigger is rewritten by the close only when it lags the exact one
# by more than this share of the price; a lagging entry is a false candidate of the exit
# query (loaded, checked exactly, passed over), never a missed exit.
_TRIGGER_SLACK = 0.01
_DUE_COLS = "no, code, referrer, ep, sp, quota, spent, dividends, ep_debt, exited, trigger"
# the bulk exit pass needs only these (see _bulk_exits)
_EXIT_COLS = "no, ep, sp, quota, spent, trigger"


def _due_sql(cols: str, *, first: bool) -> str:
    """Members with a stored exit trigger, by (trigger, no): the first page or the next one."""
    # cols is one of this module's constants, never input
    sql = f"SELECT {cols} FROM members WHERE tenant_id = ? AND trigger IS NOT NULL "  # noqa: S608
    if first:
        return sql + "ORDER BY trigger, no LIMIT ?"
    # "trigger >= ?" is the index range; the OR only filters ties inside it
    return sql + "AND trigger >= ? AND (trigger > ? OR no > ?) ORDER BY trigger, no LIMIT ?"


_FUND = (str(SystemAccount.DIVIDEND_FUND), Asset.CNY)
_POOL = (str(SystemAccount.POOL), Asset.CNY)
_BURNED = (str(SystemAccount.BURNED), Asset.EP)
_RESERVE = (str(SystemAccount.SP_RESERVE), Asset.CNY)
_SPI = (str(SystemAccount.SP_ISSUANCE), Asset.SP)


def _dumps(obj: Any) -> str:
    return canonical(obj).decode()


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one submitted command."""

    key: str
    status: str  # "applied" | "replayed" | "rejected"
    seq: int | None = None
    result: dict[str, Any] | None = None
    error_code: str | None = None
    error: str | None = None


def _member_from_row(row: Any) -> Member:
    m = Member(code=row.code, no=row.no, referrer=row.referrer, exited=bool(row.exited))
    m.ep = from_atoms(row.ep, EP_PLACES)
    m.sp = from_atoms(row.sp, CNY_PLACES)
    m.quota = from_atoms(row.quota, CNY_PLACES)
    m.spent = from_atoms(row.spent, CNY_PLACES)
    m.dividends = from_atoms(row.dividends, CNY_PLACES)
    m.ep_debt = from_atoms(row.ep_debt, EP_PLACES)
    return m


_MEMBER_COLS_SQL = "no, code, referrer, ep, sp, quota, spent, dividends, ep_debt, exited"


def _in_query(  # noqa: PLR0917 - an internal hot path
    conn: Connection, table: str, cols: str, column: str, tenant_id: int, values: Sequence[str]
) -> Any:
    """``SELECT cols FROM table WHERE tenant_id = ? AND column IN (values)`` on the driver:
    the hot path skips SQL compilation.

    On SQLite the query names the unique ``(tenant_id, column)`` index: without statistics
    the planner otherwise
    walks the primary key's ``tenant_id`` range and filters it against the list, a scan of
    the tenant's whole table per look-up (measured: 25 ms per 500 keys at 100,000 rows,
    growing with the table; 1.9 ms with the index).
    """
    source = table
    if conn.dialect.name == "sqlite":
        ph = "?"
        index = _unique_index(conn, table, ("tenant_id", column))
        if index is not None:
            source = f"{table} INDEXED BY {index}"
    else:
        ph = "%s"
    sql = (
        f"SELECT {cols} FROM {source} WHERE tenant_id = {ph} "  # noqa: S608 - our own names
        f"AND {column} IN ({', '.join([ph] * len(values))})"
    )
    return conn.exec_driver_sql(sql, (tenant_id, *values))


_UNIQUE_INDEX: dict[tuple[str, str, tuple[str, ...]], str | None] = {}


def _unique_index(conn: Connection, table: str, columns: tuple[str, ...]) -> str | None:
    """The name of the SQLite unique index on exactly ``columns`` (autoindex names depend on
    the DDL's constraint order, so they are read from the database, once per file)."""
    db = str(conn.engine.url.database)
    key = (db, table, columns)
    if key not in _UNIQUE_INDEX:
        found = None
        for row in conn.exec_driver_sql(f"PRAGMA index_list({table})").all():
            if not row.unique or row.origin == "pk":
                continue
            cols = tuple(
                r.name for r in conn.exec_driver_sql(f"PRAGMA index_info({row.name})").all()
            )
            if cols == columns:
                found = str(row.name)
                break
        _UNIQUE_INDEX[key] = found
    return _UNIQUE_INDEX[key]


def _digest_lines(rows: Iterable[tuple[str, str, str, int]]) -> bytes:
    """What a transaction's transfers digest covers: one ``asset|debit|credit|amount`` line
    per transfer, in order (written by the ledger, recomputed by :meth:`Ledger.verify_chain`)."""
    return "".join([f"{a}|{d}|{c}|{m}\n" for a, d, c, m in rows]).encode()


def _grant_from_row(row: Any) -> Grant:
    return Grant(
        order=row.order_ref,
        member=row.member,
        referrer=row.referrer,
        amount=from_atoms(row.amount, CNY_PLACES),
        pool_in=from_atoms(row.pool_in, CNY_PLACES),
        fund_in=from_atoms(row.fund_in, CNY_PLACES),
        ep_member=from_atoms(row.ep_member, EP_PLACES),
        ep_referrer=from_atoms(row.ep_referrer, EP_PLACES),
        quota=from_atoms(row.quota, CNY_PLACES),
        refunded=from_atoms(row.refunded, CNY_PLACES),
        total=from_atoms(row.total, CNY_PLACES),
        cny_part=from_atoms(row.cny_part, CNY_PLACES),
    )


def _escrow_from_row(row: Any) -> Escrow:
    return Escrow(
        order=row.order_ref,
        member=row.member,
        cny=from_atoms(row.cny, CNY_PLACES),
        sp=from_atoms(row.sp, CNY_PLACES),
        ep_points=from_atoms(row.ep_points, EP_PLACES),
        ep_value=from_atoms(row.ep_value, CNY_PLACES),
        refunded=from_atoms(row.refunded, CNY_PLACES),
        settled=bool(row.settled),
    )


def _trigger_float(m: Member, shift: float) -> float | None:
    """The stored trigger: quota/EP (CNY per EP) plus the tenant's shift, or None if never due.

    ``members.trigger`` is a pre-filter for the exit query, which asks for stored triggers at
    or below price + shift.  Invariant: stored - shift <= the member's exact quota/EP, so the
    query may return members that are not due (the domain re-checks exactly) but never misses
    one that is.  A day close raises the shift by at least what any holder's quota/EP fell,
    which keeps the invariant for every entry it does not rewrite.
    """
    if m.spent <= 0 or m.ep <= 0:
        return None
    return float(m.quota / m.ep) + shift


class _SqlSource:
    """Lends the economy members and grants from the database, within the batch's transaction."""

    def __init__(self, conn: Connection, tenant_id: int, shift: float = 0.0) -> None:
        self.conn = conn
        self.tenant_id = tenant_id
        self.shift = shift
        self.members: dict[str, Member | None] = {}
        self.grants: dict[str, Grant | None] = {}
        self.escrows: dict[str, Escrow | None] = {}
        self.holds: dict[str, PayoutHold | None] = {}
        self._due = _DuePages(conn, tenant_id, _DUE_COLS)

    def prefetch(self, codes: Iterable[str], orders: Iterable[str]) -> None:
        orders = set(orders)
        self._load(
            self.members,
            codes,
            lambda part: _in_query(
                self.conn, "members", _MEMBER_COLS_SQL, "code", self.tenant_id, part
            ),
            lambda row: (row.code, _member_from_row(row)),
        )
        self._load(
            self.grants,
            orders,
            lambda part: _in_query(
                self.conn, "grants", _GRANT_COLS_SQL, "order_ref", self.tenant_id, part
            ),
            lambda row: (row.order_ref, _grant_from_row(row)),
        )
        self._load(
            self.escrows,
            orders,
            lambda part: _in_query(
                self.conn, "escrows", _ESCROW_COLS_SQL, "order_ref", self.tenant_id, part
            ),
            lambda row: (row.order_ref, _escrow_from_row(row)),
        )

    @staticmethod
    def _load(
        cache: dict[str, Any],
        keys: Iterable[str],
        rows_for: Callable[[list[str]], Iterable[Any]],
        make: Callable[[Any], tuple[str, Any]],
    ) -> None:
        """Fill ``cache`` for the keys it lacks, in IN-query chunks; missing keys map to None."""
        want = [k for k in set(keys) if k not in cache]
        for i in range(0, len(want), _CHUNK):
            part = want[i : i + _CHUNK]
            cache.update(dict.fromkeys(part))
            for row in rows_for(part):
                key, obj = make(row)
                cache[key] = obj

    def fetch(self, code: str) -> Member | None:
        if code not in self.members:
            self.prefetch([code], [])
        return self.members[code]

    def fetch_grant(self, order: str) -> Grant | None:
        if order not in self.grants:
            self.prefetch([], [order])
        return self.grants[order]

    def fetch_escrow(self, order: str) -> Escrow | None:
        if order not in self.escrows:
            self.prefetch([], [order])
        return self.escrows[order]

    def fetch_hold(self, request: str) -> PayoutHold | None:
        if request not in self.holds:
            h = s.payout_holds.c
            row = self.conn.execute(
                select(s.payout_holds).where(
                    h.tenant_id == self.tenant_id, h.request_ref == request
                )
            ).one_or_none()
            self.holds[request] = (
                None
                if row is None
                else PayoutHold(
                    request=row.request_ref,
                    member=row.member,
                    amount=from_atoms(row.amount, CNY_PLACES),
                    fee=from_atoms(row.fee, CNY_PLACES),
                    status=row.status,
                )
            )
        return self.holds[request]

    def due(self, pool: Decimal, circulating: Decimal, exclude: Container[str]) -> Iterable[Member]:
        """Members not yet lent whose stored trigger is at or below the price (a pre-filter).

        Reads the trigger index a page at a time in ascending order, so a batch in which the
        price passes many triggers costs one query per page, not one per event.  Triggers of
        members not lent to the economy do not change during the batch, so the order holds.
        """
        if circulating <= 0:
            return []
        out = []
        for row in self._due.upto(_exit_bound(float(pool) / float(circulating), self.shift)):
            if row.code in exclude:
                continue
            m = _member_from_row(row)
            self.members[m.code] = m
            out.append(m)
        return out


def _exit_bound(price: float, shift: float) -> float:
    """The stored trigger up to which members may be due at ``price`` (generous: the domain
    re-checks exactly; see :func:`_trigger_float` for why the shift is added)."""
    return (price + shift) * (1 + 1e-9) + 1e-12


class _DuePages:
    """Members by ascending stored trigger, read a page at a time, each row handed out once."""

    def __init__(self, conn: Connection, tenant_id: int, cols: str) -> None:
        self.conn = conn
        self.tenant_id = tenant_id
        pg = conn.dialect.name != "sqlite"
        self._first = _due_sql(cols, first=True)
        self._next = _due_sql(cols, first=False)
        if pg:
            self._first, self._next = self._first.replace("?", "%s"), self._next.replace("?", "%s")
        self._buf: deque[Any] = deque()  # rows by ascending trigger, not yet handed out
        self._after: tuple[float, int] | None = None
        self._exhausted = False
        self._page = _DUE_PAGE

    def _fill(self) -> None:
        """The next page of members by (trigger, no), after the last one already seen."""
        args: tuple[Any, ...]
        if self._after is None:
            sql, args = self._first, (self.tenant_id, self._page)
        else:
            sql = self._next
            args = (self.tenant_id, self._after[0], self._after[0], self._after[1], self._page)
        rows = self.conn.exec_driver_sql(sql, args).all()
        if len(rows) < self._page:
            self._exhausted = True
        # a day close can make a hundred thousand members due at once: grow the page
        self._page = min(self._page * 2, _DUE_PAGE_MAX)
        if rows:
            self._after = (rows[-1].trigger, rows[-1].no)
        self._buf.extend(rows)

    def upto(self, bound: float) -> list[Any]:
        """The rows not yet handed out whose stored trigger is at or below ``bound``."""
        buf = self._buf
        out = []
        while True:
            if not buf:
                if self._exhausted:
                    break
                self._fill()
                if not buf:
                    break
            if buf[0].trigger > bound:
                break
            out.append(buf.popleft())
        return out


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

    def __init__(self, ledger: Ledger, conn: Connection, tenant_id: int, seq: int) -> None:
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
_MEMBER_VALUE_COLS = (*_MEMBER_COLS, "exited", "trigger", "referrer")
_MEMBER_INSERT_COLS = ("tenant_id", "no", "code", *_MEMBER_VALUE_COLS)
_UPDATE_MEMBERS = (
    f"UPDATE members SET {', '.join(f'{c} = ?' for c in _MEMBER_VALUE_COLS)} "  # noqa: S608
    "WHERE tenant_id = ? AND no = ?"
)
_UPDATE_MEMBERS_FROM = (
    f"UPDATE members AS m SET {', '.join(f'{c} = t.{c}' for c in _MEMBER_VALUE_COLS)} "  # noqa: S608
    "FROM tm_member_upd AS t WHERE m.tenant_id = %s AND m.no = t.no"
)
# members kept warm between batches per tenant (about 0.5 KB each); more: read them again
_WARM_MAX = 200_000
_LOCK_SQL = (
    "SELECT ts.seq, ts.head, ts.member_count, ts.empty_pool, ts.empty_circulating, "
    "ts.trigger_shift, t.params FROM tenant_state AS ts JOIN tenants AS t ON t.id = ts.tenant_id "
    "WHERE ts.tenant_id = ?"
)
_LOCK_SQL_PG = _LOCK_SQL.replace("?", "%s") + " FOR UPDATE OF ts"
_UPDATE_STATE = (
    "UPDATE tenant_state SET seq = ?, head = ?, member_count = ?, empty_pool = ?, "
    "empty_circulating = ? WHERE tenant_id = ?"
)
_UPDATE_ACCOUNT = (
    "UPDATE accounts SET balance = ? WHERE tenant_id = ? AND account = ? AND asset = ?"
)
_BALANCES = select(s.accounts.c.account, s.accounts.c.asset, s.accounts.c.balance).where(
    s.accounts.c.tenant_id == bindparam("t")
)
_GRANT_COLS_SQL = ", ".join(s.grants.c.keys())
_ESCROW_COLS_SQL = ", ".join(s.escrows.c.keys())


@dataclass(frozen=True, slots=True)
class _Warm:
    """What a tenant's last committed batch left in the database, kept by this process: its
    sequence number after the commit, the members it read or wrote and every account balance.
    Valid only while the tenant's sequence number is still ``seq`` (see :meth:`Ledger.submit`).
    """

    seq: int
    members: dict[str, Member]
    balances: dict[tuple[str, Asset], Decimal]


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


class Ledger:
    """The service every entry point (CLI, scenario runner, API, benchmarks) goes through."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sqlite = is_sqlite(engine)
        # Members as the last batch committed them, per tenant, with the tenant's sequence
        # number after that commit (see :meth:`submit`).
        self._warm: dict[int, _Warm] = {}

    # ------------------------------------------------------------------ tenants

    def create_tenant(
        self,
        code: str,
        params: TenantParams | None = None,
        *,
        name: str | None = None,
        timezone: str = "Asia/Shanghai",
    ) -> int:
        params = params or TenantParams()
        with self.engine.begin() as conn:
            existing = conn.execute(select(s.tenants.c.id).where(s.tenants.c.code == code)).scalar()
            if existing is not None:
                raise InvalidCommand(f"tenant {code!r} already exists")
            tid = conn.execute(
                insert(s.tenants).values(
                    code=code,
                    name=name or code,
                    timezone=timezone,
                    params=json.dumps(params.to_mapping(), sort_keys=True),
                    created_at=time.time(),
                )
            ).inserted_primary_key
            assert tid is not None
            tid = tid[0]
            conn.execute(
                insert(s.tenant_state).values(
                    tenant_id=tid,
                    seq=0,
                    head=GENESIS,
                    member_count=0,
                    empty_pool=0,
                    empty_circulating=0,
                )
            )
            conn.execute(
                insert(s.accounts),
                [
                    {"tenant_id": tid, "account": str(acct), "asset": str(asset), "balance": 0}
                    for acct, asset in _SYSTEM_ACCOUNTS
                ],
            )
        return int(tid)

    def tenant_id(self, code: str) -> int:
        with read_only(self.engine).connect() as conn:
            tid = conn.execute(select(s.tenants.c.id).where(s.tenants.c.code == code)).scalar()
        if tid is None:
            raise NotFound(f"no tenant {code!r}")
        return int(tid)

    def ensure_tenant(self, code: str, params: TenantParams | None = None) -> int:
        try:
            return self.tenant_id(code)
        except NotFound:
            return self.create_tenant(code, params)

    # ------------------------------------------------------------------ the unit of work

    def _lock(self, conn: Connection, tenant_id: int) -> tuple[Any, TenantParams]:
        """The tenant's state row, locked (PostgreSQL), and its parameters: one statement.

        On the driver: a one-command transaction (a payment notification, a wallet action)
        otherwise spends more CPU building and compiling its few statements than running them.
        """
        row = conn.exec_driver_sql(
            _LOCK_SQL if self._sqlite else _LOCK_SQL_PG, (tenant_id,)
        ).first()
        if row is None:
            raise NotFound(f"no tenant {tenant_id}")
        return row, TenantParams.from_json(row.params)

    def _load_state(self, conn: Connection, tenant_id: int, st: Any) -> EconomyState:
        balances: dict[tuple[str, Asset], Decimal] = {}
        for row in conn.execute(_BALANCES, {"t": tenant_id}):
            asset = Asset(row.asset)
            balances[(row.account, asset)] = from_atoms(row.balance, _PLACES[asset])
        return EconomyState(
            balances=balances,
            member_count=st.member_count,
            empty_pool=from_atoms(st.empty_pool, CNY_PLACES),
            empty_circulating=from_atoms(st.empty_circulating, EP_PLACES),
        )

    def submit(
        self,
        tenant_id: int,
        items: Sequence[tuple[str, Command]],
        *,
        stop_on_reject: bool = False,
    ) -> list[Outcome]:
        """Apply ``(idempotency key, command)`` pairs in order, in one transaction.

        ``stop_on_reject``: stop at the first rejected command (commands before it are still
        committed, none after it is applied), so a scenario stops where its bad event is.
        """
        # Members stay warm between this process's batches of a tenant: the next batch takes
        # them instead of reading and converting their rows again, if the tenant's sequence
        # number is still the one this batch committed (every write to ``members`` is a ledger
        # transaction, which moves it; another process's batch in between invalidates them).
        # Taken out while the batch runs (it mutates them) and put back only after the commit.
        warm = self._warm.pop(tenant_id, None)
        keep: list[_Warm] = []
        with self.engine.begin() as conn:
            out = self._submit(
                conn, tenant_id, items, stop_on_reject=stop_on_reject, warm=warm, keep=keep
            )
        if keep:
            self._warm[tenant_id] = keep[0]
        return out

    def _submit(
        self,
        conn: Connection,
        tenant_id: int,
        items: Sequence[tuple[str, Command]],
        *,
        stop_on_reject: bool = False,
        warm: _Warm | None = None,
        keep: list[_Warm] | None = None,
    ) -> list[Outcome]:
        st, params = self._lock(conn, tenant_id)
        payloads = [to_payload(cmd) for _, cmd in items]
        encoded = [canonical(p) for p in payloads]
        hashes = [hashlib.sha256(b).hexdigest() for b in encoded]
        seen = self._existing(conn, tenant_id, [k for k, _ in items])

        if warm is not None and warm.seq != st.seq:
            warm = None  # another writer moved the tenant on since this process's last batch
        if warm is not None:
            state = EconomyState(
                balances=dict(warm.balances),
                member_count=st.member_count,
                empty_pool=from_atoms(st.empty_pool, CNY_PLACES),
                empty_circulating=from_atoms(st.empty_circulating, EP_PLACES),
            )
        else:
            state = self._load_state(conn, tenant_id, st)
        before = dict(state.balances)
        shift = float(st.trigger_shift)
        source = _SqlSource(conn, tenant_id, shift)
        codes: list[str] = []
        orders: list[str] = []
        for _, cmd in items:
            for name in ("member", "referrer"):
                v = getattr(cmd, name, None)
                if v:
                    codes.append(v)
            o = getattr(cmd, "order", None)
            if o:
                orders.append(o)
        if warm is not None:
            source.members.update(warm.members)
        source.prefetch(codes, orders)
        eco = Economy(params, state, source)

        seq: int = st.seq
        head: str = st.head
        tx_rows: list[tuple[Any, ...]] = []
        tr_rows: list[tuple[Any, ...]] = []
        outcomes: list[Outcome] = []
        batch_keys: dict[str, tuple[str, int]] = {}
        now = time.time()
        for i, (key, cmd) in enumerate(items):
            if stop_on_reject and outcomes and outcomes[-1].status == "rejected":
                break
            h = hashes[i]
            prior = seen.get(key)
            if prior is None and key in batch_keys:
                prior = (batch_keys[key][0], batch_keys[key][1], None)
            if prior is not None:
                if prior[0] != h:
                    outcomes.append(
                        Outcome(
                            key,
                            "rejected",
                            error_code=IdempotencyConflict.code,
                            error=f"key {key!r} was used for different content",
                        )
                    )
                else:
                    outcomes.append(Outcome(key, "replayed", seq=prior[1], result=prior[2]))
                continue
            if isinstance(cmd, CloseDay):
                # The bulk path works in SQL: write what is pending first, then start afresh.
                self._flush(conn, tenant_id, eco, before, shift)
                tx_rows, tr_rows = self._write_log(conn, tx_rows, tr_rows)
                try:
                    seq, head, result = self._close_day(
                        conn, tenant_id, eco, key, h, payloads[i], seq, head, now, shift
                    )
                except TokenmallError as exc:  # pragma: no cover - close day refuses nothing
                    outcomes.append(Outcome(key, "rejected", error_code=exc.code, error=str(exc)))
                    continue
                st = self._state_row(conn, tenant_id, seq)
                state = self._load_state(conn, tenant_id, st)
                before = dict(state.balances)
                shift = float(st.trigger_shift)
                source = _SqlSource(conn, tenant_id, shift)
                eco = Economy(params, state, source)
                batch_keys[key] = (h, seq)
                outcomes.append(Outcome(key, "applied", seq=seq, result=result))
                continue
            try:
                figures = eco.apply(cmd)
            except (InvalidCommand, NotFound, IdempotencyConflict) as exc:
                outcomes.append(Outcome(key, "rejected", error_code=exc.code, error=str(exc)))
                continue
            seq += 1
            result = self._result(eco, figures)
            journal = eco.take_journal()
            head = self._log(
                tx_rows,
                tr_rows,
                tenant_id,
                seq,
                key,
                h,
                payloads[i],
                result,
                journal,
                head,
                now,
                encoded[i].decode(),
            )
            batch_keys[key] = (h, seq)
            outcomes.append(Outcome(key, "applied", seq=seq, result=result))
        self._flush(conn, tenant_id, eco, before, shift)
        self._write_log(conn, tx_rows, tr_rows)
        self._many(
            conn,
            _UPDATE_STATE,
            [
                (
                    seq,
                    head,
                    eco.state.member_count,
                    atoms(eco.state.empty_pool, CNY_PLACES),
                    atoms(eco.state.empty_circulating, EP_PLACES),
                    tenant_id,
                )
            ],
        )
        if keep is not None and all(o.status != "rejected" for o in outcomes):
            # what this transaction leaves in ``members`` for every member it read or wrote
            # (after a close: only those read since, the close rewrote the others' rows)
            members = {c: m for c, m in source.members.items() if m is not None}
            members.update(eco.members)
            if len(members) <= _WARM_MAX:
                keep.append(_Warm(seq, members, dict(eco.state.balances)))
        return outcomes

    @staticmethod
    def _state_row(conn: Connection, tenant_id: int, seq: int) -> Any:
        return conn.execute(
            select(s.tenant_state).where(s.tenant_state.c.tenant_id == tenant_id)
        ).one()

    def _existing(
        self, conn: Connection, tenant_id: int, keys: list[str]
    ) -> dict[str, tuple[str, int, dict[str, Any] | None]]:
        out: dict[str, tuple[str, int, dict[str, Any] | None]] = {}
        uniq = list(dict.fromkeys(keys))
        for i in range(0, len(uniq), _CHUNK):
            part = uniq[i : i + _CHUNK]
            for row in _in_query(
                conn,
                "ledger_tx",
                "key, content_hash, seq, result",
                "key",
                tenant_id,
                part,
            ):
                out[row.key] = (row.content_hash, row.seq, orjson.loads(row.result))
        return out

    @staticmethod
    def _result(eco: Economy, figures: dict[str, Decimal]) -> dict[str, Any]:
        num, den = eco.price_ratio()
        return {
            "price": show_price(num, den, eco.params.initial_price),
            "pool": dec(eco.pool),
            "circulating": dec(eco.circulating),
            "burned": dec(eco.burned),
            "treasury": dec(eco.treasury),
            "dividend_fund": dec(eco.dividend_fund),
            "figures": {k: dec(v) for k, v in figures.items()},
        }

    @staticmethod
    def _log(  # noqa: PLR0917 - an internal hot path; a parameter object would cost a dict
        tx_rows: list[tuple[Any, ...]],
        tr_rows: list[tuple[Any, ...]],
        tenant_id: int,
        seq: int,
        key: str,
        h: str,
        payload: dict[str, str],
        result: dict[str, Any],
        journal: Iterable[Transfer],
        head: str,
        now: float,
        payload_json: str | None = None,
    ) -> str:
        """Queue one event-log row and its transfers; return the new chain head.

        Leaf hash per RFC 6962: SHA-256(0x00 || entry), where the entry commits to the sequence
        number, key, payload, result and a digest of the transfers; the chain hash links each
        leaf to the previous head, so changing any committed row breaks every later hash.
        """
        rows = [
            (tr.asset.value, tr.debit, tr.credit, atoms_unchecked(tr.amount, _PLACES[tr.asset]))
            for tr in journal
        ]
        tr_rows.extend([(tenant_id, seq, n, *row) for n, row in enumerate(rows, 1)])
        return Ledger._entry(
            tx_rows,
            tenant_id,
            seq,
            key,
            h,
            payload,
            result,
            hashlib.sha256(_digest_lines(rows)).hexdigest(),
            head,
            now,
            payload_json,
        )

    @staticmethod
    def _entry(  # noqa: PLR0917 - the hot path; a parameter object would cost a dict
        tx_rows: list[tuple[Any, ...]],
        tenant_id: int,
        seq: int,
        key: str,
        h: str,
        payload: dict[str, str],
        result: dict[str, Any],
        transfers_digest: str,
        head: str,
        now: float,
        payload_json: str | None = None,
    ) -> str:
        """Queue the event-log row of one transaction whose transfers hash to the digest."""
        if payload_json is None:
            payload_json = _dumps(payload)
        result_json = _dumps(result)
        # canonical JSON of {key, payload, result, seq, transfers}, keys sorted, built by hand so
        # the payload and result are encoded once
        entry = (
            f'{{"key":{_dumps(key)},"payload":{payload_json},"result":{result_json},'
            f'"seq":{seq},"transfers":"{transfers_digest}"}}'
        ).encode()
        leaf = hashlib.sha256(b"\x00" + entry).hexdigest()
        chain = hashlib.sha256(bytes.fromhex(head) + bytes.fromhex(leaf)).hexdigest()
        tx_rows.append(
            (tenant_id, seq, key, payload["type"], h, payload_json, result_json, leaf, chain, now)
        )
        return chain

    def _many(self, conn: Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """executemany on the driver, skipping per-row parameter processing (the hot path)."""
        if rows:
            conn.exec_driver_sql(sql if self._sqlite else sql.replace("?", "%s"), rows)

    @staticmethod
    def _many_by_shape(
        put: Callable[[str, list[tuple[Any, ...]]], None],
        sql: dict[str, str],
        rows: Iterable[tuple[str, tuple[Any, ...]]],
        size: int = 50_000,
    ) -> None:
        """Rows tagged with one of several statements, handed to ``put`` in chunks."""
        chunks: dict[str, list[tuple[Any, ...]]] = {k: [] for k in sql}
        for shape, row in rows:
            chunk = chunks[shape]
            chunk.append(row)
            if len(chunk) >= size:
                put(sql[shape], chunk)
                chunks[shape] = []
        for shape, chunk in chunks.items():
            put(sql[shape], chunk)

    @staticmethod
    def _chunks(
        rows: Iterable[tuple[str, str, str, int]], size: int = 50_000
    ) -> Iterator[list[tuple[str, str, str, int]]]:
        chunk: list[tuple[str, str, str, int]] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    @staticmethod
    def _stream_transfers(
        pipe: _TransferPipe, digest: Any, n: int, journal: Iterable[list[tuple[str, str, str, int]]]
    ) -> int:
        """Number, digest and hand over transfer rows, chunk by chunk; return the last number.

        The digest gets the same lines as :meth:`_log` feeds it, so the log entry of a bulk
        transaction is verified like any other (:meth:`verify_chain`).
        """
        for part in journal:
            pipe.put(part, n + 1)
            digest.update(_digest_lines(part))
            n += len(part)
        return n

    def _write_log(
        self, conn: Connection, tx_rows: list[tuple[Any, ...]], tr_rows: list[tuple[Any, ...]]
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        self._insert(conn, s.ledger_tx, tx_rows)
        self._insert(conn, s.transfers, tr_rows)
        return [], []

    def _insert(
        self,
        conn: Connection,
        table: Table,
        rows: Sequence[tuple[Any, ...]],
        cols: Sequence[str] | None = None,
    ) -> None:
        """New rows (all of the table's columns in its order, unless ``cols``): ``executemany``
        on SQLite, ``COPY`` on PostgreSQL.

        psycopg's ``executemany`` is a round of protocol messages and a planned statement per
        row (35 us a row here: 46 s for a 1M-holder close's 1.3M transfers); ``COPY`` streams
        them.  Column names come from the schema or this module's constants, never input.
        """
        if not rows:
            return
        cols = tuple(table.c.keys()) if cols is None else cols
        if self._sqlite:
            marks = ", ".join("?" * len(cols))
            sql = f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({marks})"  # noqa: S608
            self._many(conn, sql, rows)
        else:
            _copy(conn, table.name, cols, rows)

    def _flush(
        self,
        conn: Connection,
        tenant_id: int,
        eco: Economy,
        before: dict[tuple[str, Asset], Decimal],
        shift: float,
    ) -> None:
        """Write the members, grants and balances the economy changed."""
        new_rows = []
        upd_rows = []
        for code in eco.dirty:
            m = eco.members[code]
            vals = (
                atoms_unchecked(m.ep, EP_PLACES),
                atoms_unchecked(m.sp, CNY_PLACES),
                atoms_unchecked(m.quota, CNY_PLACES),
                atoms_unchecked(m.spent, CNY_PLACES),
                atoms_unchecked(m.dividends, CNY_PLACES),
                atoms_unchecked(m.ep_debt, EP_PLACES),
                m.exited,
                _trigger_float(m, shift),
                m.referrer,
            )
            if m.new:
                new_rows.append((tenant_id, m.no, m.code, *vals))
                m.new = False
            else:
                upd_rows.append((*vals, tenant_id, m.no))
        eco.dirty.clear()
        # in key order: B-tree pages are visited once each, not at random (100,404 exit
        # updates after a 1M-holder close: 3.3 s in set order)
        upd_rows.sort(key=itemgetter(-1))
        self._insert(conn, s.members, new_rows, _MEMBER_INSERT_COLS)
        if self._sqlite or len(upd_rows) < _PG_BULK_UPDATE:
            self._many(conn, _UPDATE_MEMBERS, upd_rows)
        else:
            _pg_update_from(
                conn,
                "tm_member_upd",
                "ep bigint, sp bigint, quota bigint, spent bigint, dividends bigint, "
                'ep_debt bigint, exited boolean, "trigger" double precision, '
                "referrer varchar(64), no bigint",
                (*_MEMBER_VALUE_COLS, "no"),
                (row[:-2] + row[-1:] for row in upd_rows),  # without tenant_id
                _UPDATE_MEMBERS_FROM,
                (tenant_id,),
            )
        g_new: list[tuple[Any, ...]] = []
        g_upd = []
        for order in eco.dirty_grants:
            g = eco.grants[order]
            if g.new:
                g_new.append(
                    (
                        tenant_id,
                        g.order,
                        g.member,
                        g.referrer,
                        atoms_unchecked(g.amount, CNY_PLACES),
                        atoms_unchecked(g.pool_in, CNY_PLACES),
                        atoms_unchecked(g.fund_in, CNY_PLACES),
                        atoms_unchecked(g.ep_member, EP_PLACES),
                        atoms_unchecked(g.ep_referrer, EP_PLACES),
                        atoms_unchecked(g.quota, CNY_PLACES),
                        atoms_unchecked(g.refunded, CNY_PLACES),
                        atoms_unchecked(g.total if g.total is not None else g.amount, CNY_PLACES),
                        atoms_unchecked(
                            g.cny_part if g.cny_part is not None else g.amount, CNY_PLACES
                        ),
                    )
                )
                g.new = False
            else:
                g_upd.append({"b_order": g.order, "refunded": atoms(g.refunded, CNY_PLACES)})
        eco.dirty_grants.clear()
        self._insert(conn, s.grants, g_new)
        self._flush_orders(conn, tenant_id, eco)
        if g_upd:
            gt = s.grants.c
            conn.execute(
                update(s.grants)
                .where(gt.tenant_id == tenant_id, gt.order_ref == bindparam("b_order"))
                .values(refunded=bindparam("refunded")),
                g_upd,
            )
        self._many(
            conn,
            _UPDATE_ACCOUNT,
            [
                (atoms(v, _PLACES[asset]), tenant_id, acct, asset.value)
                for (acct, asset), v in eco.state.balances.items()
                if before.get((acct, asset), ZERO) != v
            ],
        )
        before.clear()
        before.update(eco.state.balances)

    def _flush_orders(self, conn: Connection, tenant_id: int, eco: Economy) -> None:
        """Escrows and payout holds: few per batch, so plain upserts by key."""
        for order in eco.dirty_escrows:
            esc = eco.escrows[order]
            vals = {
                "refunded": atoms(esc.refunded, CNY_PLACES),
                "settled": esc.settled,
            }
            if esc.new:
                insert_row(
                    conn,
                    s.escrows,
                    {
                        "tenant_id": tenant_id,
                        "order_ref": esc.order,
                        "member": esc.member,
                        "cny": atoms(esc.cny, CNY_PLACES),
                        "sp": atoms(esc.sp, CNY_PLACES),
                        "ep_points": atoms(esc.ep_points, EP_PLACES),
                        "ep_value": atoms(esc.ep_value, CNY_PLACES),
                        **vals,
                    },
                )
                esc.new = False
            else:
                update_by_key(
                    conn, s.escrows, {"tenant_id": tenant_id, "order_ref": esc.order}, vals
                )
        eco.dirty_escrows.clear()
        for request in eco.dirty_holds:
            hold = eco.holds[request]
            if hold.new:
                insert_row(
                    conn,
                    s.payout_holds,
                    {
                        "tenant_id": tenant_id,
                        "request_ref": hold.request,
                        "member": hold.member,
                        "amount": atoms(hold.amount, CNY_PLACES),
                        "fee": atoms(hold.fee, CNY_PLACES),
                        "status": hold.status,
                    },
                )
                hold.new = False
            else:
                update_by_key(
                    conn,
                    s.payout_holds,
                    {"tenant_id": tenant_id, "request_ref": hold.request},
                    {"status": hold.status},
                )
        eco.dirty_holds.clear()

    # ------------------------------------------------------------------ day close (bulk)

    def _close_day(  # noqa: PLR0917 - called once, from _submit, with its loop state
        self,
        conn: Connection,
        tenant_id: int,
        eco: Economy,
        key: str,
        h: str,
        payload: dict[str, str],
        seq: int,
        head: str,
        now: float,
        shift: float,
    ) -> tuple[int, str, dict[str, Any]]:
        """R9 over every holder straight from the table, then exits; one ledger transaction.

        Streams (no, weight, quota, stored trigger) as columns so a million holders fit in a
        few hundred MB; the split itself is the domain's :func:`water_fill_columns`.

        The stored exit triggers are mostly left alone (see :func:`_trigger_float`): under
        ``points`` weighting no paid holder's quota/EP falls by more than the largest
        pay/EP, so raising the tenant's shift by that much keeps every untouched entry a
        valid pre-filter.  Only entries that would lag the exact value by more than
        ``_TRIGGER_SLACK`` of the price are rewritten.  That spares SQLite the index
        maintenance of a million entries, the largest single cost of the close.
        """
        params = eco.params
        by_points = params.dividend_weight == "points"
        unit = atoms(params.share_unit, CNY_PLACES)
        nos, eps, quotas, weights = array("q"), array("q"), array("q"), array("q")
        trigs = array("d")
        nan = float("nan")
        cur = conn.connection.cursor()
        try:
            cur.execute(
                _HOLDERS_SQL if self._sqlite else _HOLDERS_SQL.replace("?", "%s"), (tenant_id,)
            )
            while rows := cur.fetchmany(20_000):
                # columns by transposition (C loops), not an append per value
                c_no, c_ep, c_quota, c_spent, c_trig = zip(*rows, strict=True)
                nos.extend(c_no)
                eps.extend(c_ep)
                quotas.extend(c_quota)
                trigs.extend([nan if t is None else t for t in c_trig])
                if not by_points:
                    weights.extend([sp // unit for sp in c_spent])
        finally:
            cur.close()
        fund = atoms(eco.dividend_fund, CNY_PLACES)
        pays, paid = water_fill_columns(
            fund, eps if by_points else weights, quotas, 10 ** (CNY_PLACES - 2)
        )
        del weights
        # pay atoms per EP atom -> CNY per EP
        per_ep = 10**EP_PLACES / 10**CNY_PLACES
        paid_idx = list(compress(range(len(pays)), pays))
        # the largest fall of quota/EP among the paid (every holder has EP > 0)
        fall = max(map(truediv, pays, eps), default=0.0) if by_points else 0.0
        new_shift = shift + fall * per_ep * (1 + 1e-12) if by_points else shift
        num, den = eco.price_ratio()
        price = float(num / den)
        slack = _TRIGGER_SLACK * price

        def updates() -> Iterator[tuple[str, tuple[Any, ...]]]:
            for i in paid_idx:
                pay, ep, old = pays[i], eps[i], trigs[i]
                if isnan(old):  # NULL (never bought) stays NULL: a pay-out changes neither cause
                    yield "pay", (pay, pay, pay, tenant_id, nos[i])
                    continue
                exact = (quotas[i] - pay) / ep * per_ep
                if by_points and (exact <= price or exact + new_shift - old <= slack):
                    # due now (the exit pass writes it) or close enough: the shift covers it
                    yield "pay", (pay, pay, pay, tenant_id, nos[i])
                else:
                    yield "both", (pay, pay, pay, exact + new_shift, tenant_id, nos[i])
            if by_points and len(paid_idx) < len(pays):
                # holders paid nothing (a share under one fen) drift by the whole fall
                for i in range(len(pays)):
                    old = trigs[i]
                    if pays[i] or isnan(old):
                        continue
                    exact = quotas[i] / eps[i] * per_ep
                    if exact + new_shift - old > slack:
                        yield "trigger", (exact + new_shift, tenant_id, nos[i])

        paid_d = from_atoms(paid, CNY_PLACES)
        bal = eco.state.balances
        # what the store holds now: _flush writes every balance that differs from it, one
        # that the pay-out brings to zero included (an empty "before" would skip those)
        stored = dict(bal)
        bal[_FUND] = bal.get(_FUND, ZERO) - paid_d
        bal[_RESERVE] = bal.get(_RESERVE, ZERO) + paid_d
        bal[_SPI] = bal.get(_SPI, ZERO) - paid_d

        def journal() -> Iterator[list[tuple[str, str, str, int]]]:
            """The pay-out's transfers, a chunk at a time (built by comprehensions: 1M rows)."""
            if paid:
                yield [
                    ("CNY", str(SystemAccount.DIVIDEND_FUND), str(SystemAccount.SP_RESERVE), paid)
                ]
            spi = str(SystemAccount.SP_ISSUANCE)
            for start in range(0, len(paid_idx), 50_000):
                part = paid_idx[start : start + 50_000]
                yield [("SP", spi, f"m:{nos[i]}", pays[i]) for i in part]

        seq += 1
        digest = hashlib.sha256()
        if self._sqlite:
            self._many_by_shape(
                lambda sql, rows: self._many(conn, sql, rows),
                {
                    "pay": "UPDATE members SET sp = sp + ?, quota = quota - ?, "
                    "dividends = dividends + ? WHERE tenant_id = ? AND no = ?",
                    "both": "UPDATE members SET sp = sp + ?, quota = quota - ?, "
                    "dividends = dividends + ?, trigger = ? WHERE tenant_id = ? AND no = ?",
                    "trigger": "UPDATE members SET trigger = ? WHERE tenant_id = ? AND no = ?",
                },
                updates(),
            )
        else:
            # one (no, pay, new trigger or NULL to keep it) row per holder, one joined UPDATE
            _pg_update_from(
                conn,
                "tm_close_pay",
                "no bigint NOT NULL, pay bigint NOT NULL, trig double precision",
                ("no", "pay", "trig"),
                (
                    (row[-1], row[0], None)
                    if shape == "pay"
                    else (row[-1], row[0], row[3])
                    if shape == "both"
                    else (row[-1], 0, row[0])
                    for shape, row in updates()
                ),
                "UPDATE members AS m SET sp = m.sp + t.pay, quota = m.quota - t.pay, "
                "dividends = m.dividends + t.pay, trigger = COALESCE(t.trig, m.trigger) "
                "FROM tm_close_pay AS t WHERE m.tenant_id = %s AND m.no = t.no",
                (tenant_id,),
            )
        pipe = _TransferPipe(self, conn, tenant_id, seq)
        try:
            n = self._stream_transfers(pipe, digest, 0, journal())
            pipe.drain()  # the exit pass reads through the same connection

            # Exits after the pay-out (R9 "Then exits (R7) run"), same transaction and log row.
            exits, exit_rows = self._bulk_exits(conn, tenant_id, eco, new_shift)
            self._stream_transfers(pipe, digest, n, self._chunks(exit_rows))
            pipe.drain()
        finally:
            with contextlib.suppress(Exception):  # already failing: the first error wins
                pipe.drain()
        exit_eco = Economy(params, eco.state)

        figures = {"paid": paid_d, "recipients": Decimal(len(paid_idx)), "exits": Decimal(exits)}
        result = self._result(exit_eco, figures)
        tx_rows: list[tuple[Any, ...]] = []
        head = self._entry(
            tx_rows, tenant_id, seq, key, h, payload, result, digest.hexdigest(), head, now
        )
        self._write_log(conn, tx_rows, [])
        # the balances changed by the pay-out are written with the exits' own changes
        self._flush(conn, tenant_id, exit_eco, stored, new_shift)
        conn.execute(
            update(s.tenant_state)
            .where(s.tenant_state.c.tenant_id == tenant_id)
            .values(
                seq=seq,
                head=head,
                trigger_shift=new_shift,
                member_count=exit_eco.state.member_count,
                empty_pool=atoms(exit_eco.state.empty_pool, CNY_PLACES),
                empty_circulating=atoms(exit_eco.state.empty_circulating, EP_PLACES),
            )
        )
        return seq, head, result

    def _bulk_exits(
        self,
        conn: Connection,
        tenant_id: int,
        eco: Economy,
        shift: float,
    ) -> tuple[int, list[tuple[str, str, str, int]]]:
        """The close's forced exits through :class:`ExitCascade`, in atoms; return the count
        and the transfers, in the order ``Economy.run_exits`` would journal them.

        Candidates come from the trigger index as in :meth:`_SqlSource.due`; exited members
        are written here (sorted by key) and the system balances in ``eco.state`` are updated
        for the caller's ``_flush``.
        """
        state = eco.state
        bal = state.balances
        cascade = ExitCascade(
            atoms(eco.pool, CNY_PLACES),
            atoms(eco.circulating, EP_PLACES),
            atoms(state.empty_pool, CNY_PLACES),
            atoms(state.empty_circulating, EP_PLACES),
            eco.params.initial_price,
            eco.params.sell_fee,
        )
        pages = _DuePages(conn, tenant_id, _EXIT_COLS)
        burned, pool, reserve, spi = _BURNED[0], _POOL[0], _RESERVE[0], _SPI[0]
        offer, next_exit, hint = cascade.offer, cascade.next_exit, cascade.price_hint
        transfers: list[tuple[str, str, str, int]] = []
        updates: list[tuple[int, bool, int, int]] = []
        while True:
            price = hint()
            if price is not None:
                for no, ep, sp, quota, spent, _ in pages.upto(_exit_bound(price, shift)):
                    offer(no, ep, quota, spent, sp)
            ex = next_exit()
            if ex is None:
                break
            acct = f"m:{ex.no}"
            transfers.append(("EP", acct, burned, ex.ep))
            if ex.payout:
                transfers.append(("CNY", pool, reserve, ex.payout))
                transfers.append(("SP", spi, acct, ex.payout))
            updates.append((ex.sp_after, True, tenant_id, ex.no))
        if not updates:
            return 0, transfers
        updates.sort(key=itemgetter(-1))  # in key order: each B-tree page visited once
        if self._sqlite:
            for i in range(0, len(updates), 50_000):
                self._many(
                    conn,
                    "UPDATE members SET ep = 0, sp = ?, quota = 0, exited = ?, trigger = NULL "
                    "WHERE tenant_id = ? AND no = ?",
                    updates[i : i + 50_000],
                )
        else:
            _pg_update_from(
                conn,
                "tm_close_exit",
                "no bigint NOT NULL, sp bigint NOT NULL",
                ("no", "sp"),
                ((no, sp) for sp, _, _, no in updates),
                "UPDATE members AS m SET ep = 0, sp = t.sp, quota = 0, exited = true, "
                "trigger = NULL FROM tm_close_exit AS t WHERE m.tenant_id = %s AND m.no = t.no",
                (tenant_id,),
            )
        paid = from_atoms(cascade.paid, CNY_PLACES)
        bal[_POOL] = from_atoms(cascade.pool, CNY_PLACES)
        bal[_BURNED] = bal.get(_BURNED, ZERO) + from_atoms(cascade.burned, EP_PLACES)
        bal[_RESERVE] = bal.get(_RESERVE, ZERO) + paid
        bal[_SPI] = bal.get(_SPI, ZERO) - paid
        state.empty_pool = from_atoms(cascade.empty_pool, CNY_PLACES)
        state.empty_circulating = from_atoms(cascade.empty_circulating, EP_PLACES)
        return len(updates), transfers

    # ------------------------------------------------------------------ reads

    def members(
        self, tenant_id: int, codes: Iterable[str] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Member figures as SPEC.md section 7 prints them."""
        t = s.members.c
        q = select(s.members).where(t.tenant_id == tenant_id)
        if codes is not None:
            q = q.where(t.code.in_(list(codes)))
        out = {}
        with read_only(self.engine).connect() as conn:
            for row in conn.execute(q.order_by(t.no)):
                m = _member_from_row(row)
                out[m.code] = {
                    "points": dec(m.ep),
                    "stable": dec(m.sp),
                    "quota_remaining": dec(m.quota),
                    "spent": dec(m.spent),
                    "dividends": dec(m.dividends),
                    "exited": m.exited,
                }
        return out

    def verify_chain(self, tenant_id: int) -> int | None:
        """Recompute every leaf and chain hash of the tenant's log from the stored rows.

        Returns None when the whole log and the tenant's head agree, else the first sequence
        number whose row does not match (a changed payload, result, transfer or hash).
        """
        t = s.ledger_tx.c
        tr = s.transfers.c
        head = GENESIS
        expected = 1
        with read_only(self.engine).connect() as conn:
            rows = conn.execute(
                select(t.seq, t.key, t.payload, t.result, t.leaf_hash, t.chain_hash)
                .where(t.tenant_id == tenant_id)
                .order_by(t.seq)
            )
            for row in rows:
                if row.seq != expected:
                    return expected
                expected += 1
                moves = conn.execute(
                    select(tr.asset, tr.debit, tr.credit, tr.amount)
                    .where(tr.tenant_id == tenant_id, tr.seq == row.seq)
                    .order_by(tr.n)
                ).all()
                digest = hashlib.sha256(_digest_lines(moves)).hexdigest()
                entry = (
                    f'{{"key":{_dumps(row.key)},"payload":{row.payload},"result":{row.result},'
                    f'"seq":{row.seq},"transfers":"{digest}"}}'
                ).encode()
                leaf = hashlib.sha256(b"\x00" + entry).hexdigest()
                chain = hashlib.sha256(bytes.fromhex(head) + bytes.fromhex(leaf)).hexdigest()
                if leaf != row.leaf_hash or chain != row.chain_hash:
                    return int(row.seq)
                head = chain
            st = conn.execute(
                select(s.tenant_state.c.head, s.tenant_state.c.seq).where(
                    s.tenant_state.c.tenant_id == tenant_id
                )
            ).one()
        if st.seq != expected - 1 or st.head != head:
            return expected
        return None

    def balances(self, tenant_id: int) -> dict[tuple[str, str], Decimal]:
        """Every account's balance (system and members), from the stored balances."""
        out: dict[tuple[str, str], Decimal] = {}
        with read_only(self.engine).connect() as conn:
            a = s.accounts.c
            for row in conn.execute(
                select(a.account, a.asset, a.balance).where(a.tenant_id == tenant_id)
            ):
                out[(row.account, row.asset)] = from_atoms(row.balance, _PLACES[Asset(row.asset)])
            t = s.members.c
            for row in conn.execute(select(t.no, t.ep, t.sp).where(t.tenant_id == tenant_id)):
                out[(f"m:{row.no}", "EP")] = from_atoms(row.ep, EP_PLACES)
                out[(f"m:{row.no}", "SP")] = from_atoms(row.sp, CNY_PLACES)
        return out


_SYSTEM_ACCOUNTS: tuple[tuple[SystemAccount, Asset], ...] = (
    (SystemAccount.WORLD, Asset.CNY),
    (SystemAccount.REVENUE, Asset.CNY),
    (SystemAccount.POOL, Asset.CNY),
    (SystemAccount.DIVIDEND_FUND, Asset.CNY),
    (SystemAccount.SP_RESERVE, Asset.CNY),
    (SystemAccount.ISSUANCE, Asset.EP),
    (SystemAccount.BURNED, Asset.EP),
    (SystemAccount.TREASURY, Asset.EP),
    (SystemAccount.SP_ISSUANCE, Asset.SP),
    (SystemAccount.ESCROW, Asset.CNY),
    (SystemAccount.PAYOUT_HOLD, Asset.CNY),
)
