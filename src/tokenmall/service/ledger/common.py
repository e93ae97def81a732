"""The ledger's shared parts: constants, the outcome of a command, row mapping, and the
source that lends members to the domain (with the exit pre-filter's paging)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, select

from tokenmall.domain.economy import (
    Asset,
    Escrow,
    Grant,
    Member,
    PayoutHold,
    SystemAccount,
)
from tokenmall.domain.events import MemberExit
from tokenmall.errors import (
    IdempotencyConflict,
    InsufficientBalance,
    InvalidCommand,
    InvalidParameter,
    NotFound,
    SupplyExhausted,
    TokenmallError,
    UnknownMember,
)
from tokenmall.money import (
    CNY_PLACES,
    EP_PLACES,
    from_atoms,
)
from tokenmall.service.codec import canonical
from tokenmall.store import schema as s

if TYPE_CHECKING:
    pass


GENESIS = "00" * 32
_PLACES = {Asset.CNY: CNY_PLACES, Asset.SP: CNY_PLACES, Asset.EP: EP_PLACES}
_MEMBER_COLS = ("ep", "sp", "quota", "spent", "dividends", "ep_debt", "sp_debt")
_MEMBER_PLACES = {
    "ep": EP_PLACES,
    "sp": CNY_PLACES,
    "quota": CNY_PLACES,
    "spent": CNY_PLACES,
    "dividends": CNY_PLACES,
    "ep_debt": EP_PLACES,
    "sp_debt": CNY_PLACES,
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
_DUE_COLS = "no, code, referrer, ep, sp, quota, spent, dividends, ep_debt, sp_debt, exited, trigger"
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
    # the forced exits (R7) the command caused; a replay reports none (they were reported)
    exits: tuple[MemberExit, ...] = ()

    def raise_if_rejected(self) -> Outcome:
        """This outcome, or the error the ledger refused the command with, as its own class
        (the one mapping of a refusal's code to an exception: callers never repeat it)."""
        if self.status == "rejected":
            cls = _REJECTED.get(self.error_code or "", InvalidCommand)
            raise cls(self.error or "refused by the ledger")
        return self


# A refused command's code -> the exception that says it (codes the economy refuses with).
_REJECTED: dict[str, type[TokenmallError]] = {
    cls.code: cls
    for cls in (
        InvalidCommand,
        UnknownMember,
        InsufficientBalance,
        SupplyExhausted,
        InvalidParameter,
        IdempotencyConflict,
        NotFound,
    )
}


def _member_from_row(row: Any) -> Member:
    m = Member(code=row.code, no=row.no, referrer=row.referrer, exited=bool(row.exited))
    m.ep = from_atoms(row.ep, EP_PLACES)
    m.sp = from_atoms(row.sp, CNY_PLACES)
    m.quota = from_atoms(row.quota, CNY_PLACES)
    m.spent = from_atoms(row.spent, CNY_PLACES)
    m.dividends = from_atoms(row.dividends, CNY_PLACES)
    m.ep_debt = from_atoms(row.ep_debt, EP_PLACES)
    m.sp_debt = from_atoms(row.sp_debt, CNY_PLACES)
    return m


_MEMBER_COLS_SQL = "no, code, referrer, ep, sp, quota, spent, dividends, ep_debt, sp_debt, exited"


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
