"""Read models (docs/RULES.md R10 and issue 3 item 8): levels, the holder board, partners, a
member's holdings and reward history, the economy now and over time.

Everything here only reads: no function moves value or takes the tenant's lock, so reads never
queue behind the ledger's writers (on PostgreSQL; SQLite serialises every transaction anyway).
Every query filters on the caller's tenant first.  The price is derived from the stored
balances exactly as the engine does (``pool / circulating``, the last price while nothing
circulates, else ``initial_price``) and only rounded for display.

A member's history (``history``, re-exported here) is read from the ledger's own transfers,
so it cannot disagree with the balances: there is no second copy to keep in step.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Connection, bindparam, func, select

from tokenmall.domain import pricing
from tokenmall.domain.params import TenantParams
from tokenmall.errors import NotFound
from tokenmall.money import (
    CNY_PLACES,
    EP_PLACES,
    FEN,
    ZERO,
    from_atoms,
    mul,
    ratio_floor,
    show_price,
)
from tokenmall.service.history import (
    PLACES,
    REWARD_CATEGORIES,
    HistoryEntry,
    PointsMove,
    driver_sql,
    member_history,
    member_no,
    points_history,
    reward_history,
)
from tokenmall.service.pages import Page, decode_cursor, encode_cursor
from tokenmall.store import schema as s

__all__ = [
    "REWARD_CATEGORIES",
    "BoardEntry",
    "EconomyView",
    "HistoryEntry",
    "Holdings",
    "Level",
    "PointsMove",
    "PricePoint",
    "board",
    "economy",
    "first_seq_at",
    "holdings",
    "level_of",
    "levels",
    "member_history",
    "member_no",
    "partners",
    "points_history",
    "price_history",
    "price_ratio",
    "reward_history",
    "sale_preview",
    "tenant_params",
]

_BOARD_MAX = 1000  # board_size is a tenant parameter; the board is read in one query


_PARAMS = select(s.tenants.c.params).where(s.tenants.c.id == bindparam("t"))  # built once


def tenant_params(conn: Connection, tenant_id: int) -> TenantParams:
    """The tenant's parameters as stored (every order and wallet request reads them)."""
    raw = conn.execute(_PARAMS, {"t": tenant_id}).scalar()
    if raw is None:
        raise NotFound(f"no tenant {tenant_id}")
    return TenantParams.from_json(raw)


def _balances(conn: Connection, tenant_id: int) -> dict[tuple[str, str], Decimal]:
    a = s.accounts.c
    return {
        (row.account, row.asset): from_atoms(row.balance, PLACES[row.asset])
        for row in conn.execute(
            select(a.account, a.asset, a.balance).where(a.tenant_id == tenant_id)
        )
    }


def price_ratio(
    conn: Connection, tenant_id: int, params: TenantParams
) -> tuple[Decimal, Decimal, dict[tuple[str, str], Decimal]]:
    """(numerator, denominator, balances): the engine's price rule over the stored state."""
    bal = _balances(conn, tenant_id)
    circ = -bal.get(("issuance", "EP"), ZERO) - bal.get(("burned", "EP"), ZERO)
    empty_pool = empty_circ = ZERO
    if circ <= 0:
        st = s.tenant_state.c
        row = conn.execute(
            select(st.empty_pool, st.empty_circulating).where(st.tenant_id == tenant_id)
        ).one_or_none()
        if row is not None:
            empty_pool = from_atoms(row.empty_pool, CNY_PLACES)
            empty_circ = from_atoms(row.empty_circulating, EP_PLACES)
    num, den = pricing.price_ratio(
        bal.get(("pool", "CNY"), ZERO), circ, empty_pool, empty_circ, params.initial_price
    )
    return num, den, bal


def sale_preview(conn: Connection, tenant_id: int, points: Decimal, *, exchange: bool) -> Decimal:
    """What selling (R3) or exchanging (R5) ``points`` would credit as SP now: the amount the
    ledger computes for the same command at the same state (price ratio and fee, cut to the
    fen), so a member sees what they will receive unless the price moves first."""
    params = tenant_params(conn, tenant_id)
    num, den, _ = price_ratio(conn, tenant_id, params)
    fee = params.exchange_fee if exchange else params.sell_fee
    return pricing.sale_value(points, num, den, fee)


def buy_preview(conn: Connection, tenant_id: int, stable: Decimal) -> Decimal:
    """What spending ``stable`` SP on treasury points (R6) would credit as EP now: the ledger's
    own rule (:func:`pricing.points_bought`) on the stored state."""
    params = tenant_params(conn, tenant_id)
    num, den, _ = price_ratio(conn, tenant_id, params)
    return pricing.points_bought(stable, num, den)


# ----------------------------------------------------------------------------- economy


@dataclass(frozen=True, slots=True)
class EconomyView:
    """The tenant's economy as read from the stored balances (not
    :class:`tokenmall.domain.economy.Economy`, the engine that moves them)."""

    price: str  # 4 decimals, display only
    pool: Decimal
    circulating: Decimal
    issued: Decimal
    burned: Decimal
    treasury: Decimal
    dividend_fund: Decimal
    total_supply: Decimal
    members: int
    seq: int


def economy(conn: Connection, tenant_id: int) -> EconomyView:
    """The tenant's economy now: what the price history's last point says, plus supply."""
    params = tenant_params(conn, tenant_id)
    num, den, bal = price_ratio(conn, tenant_id, params)
    issued = -bal.get(("issuance", "EP"), ZERO)
    burned = bal.get(("burned", "EP"), ZERO)
    st = s.tenant_state.c
    state = conn.execute(
        select(st.seq, st.member_count).where(st.tenant_id == tenant_id)
    ).one_or_none()
    if state is None:
        raise NotFound(f"no tenant {tenant_id}")
    return EconomyView(
        price=show_price(num, den, params.initial_price),
        pool=bal.get(("pool", "CNY"), ZERO),
        circulating=issued - burned,
        issued=issued,
        burned=burned,
        treasury=bal.get(("treasury", "EP"), ZERO),
        dividend_fund=bal.get(("dividend_fund", "CNY"), ZERO),
        total_supply=params.total_supply,
        members=int(state.member_count),
        seq=int(state.seq),
    )


@dataclass(frozen=True, slots=True)
class PricePoint:
    seq: int
    at: float
    kind: str
    price: str
    pool: str
    circulating: str
    burned: str
    treasury: str
    dividend_fund: str


def first_seq_at(conn: Connection, tenant_id: int, ts: float, last: int) -> int:
    """The first seq committed at or after ``ts``, by binary search over the primary key.

    ``created_at`` grows with ``seq`` (it is read after the tenant's lock is taken), so about
    log2(seq) point reads find the start of a time window without an index on time: another
    index would cost every ledger write.  Rows are still filtered by time exactly, so a wall
    clock that stepped back only makes the window's first page start a little early.
    """
    t = s.ledger_tx.c
    lo, hi = 1, last + 1
    while lo < hi:
        mid = (lo + hi) // 2
        at = conn.execute(
            select(t.created_at).where(t.tenant_id == tenant_id, t.seq == mid)
        ).scalar()
        if at is None or at >= ts:
            hi = mid
        else:
            lo = mid + 1
    return lo


def price_history(
    conn: Connection,
    tenant_id: int,
    *,
    since: float | None,
    until: float | None,
    limit: int,
    cursor: str | None,
) -> Page[PricePoint]:
    """The price, pool and supply after every committed ledger transaction, oldest first.

    Each ``ledger_tx`` row stores the figures after it (its ``result``), so the history is the
    event log itself; a page is a primary-key range.
    """
    t = s.ledger_tx.c
    after = decode_cursor(cursor) if cursor is not None else 0
    if since is not None:
        last = conn.execute(
            select(s.tenant_state.c.seq).where(s.tenant_state.c.tenant_id == tenant_id)
        ).scalar()
        after = max(after, first_seq_at(conn, tenant_id, since, int(last or 0)) - 1)
    q = select(t.seq, t.created_at, t.kind, t.result).where(t.tenant_id == tenant_id, t.seq > after)
    if since is not None:
        q = q.where(t.created_at >= since)
    if until is not None:
        q = q.where(t.created_at <= until)
    rows = conn.execute(q.order_by(t.seq).limit(limit + 1)).all()
    more = len(rows) > limit
    items = []
    for row in rows[:limit]:
        r = json.loads(row.result)
        items.append(
            PricePoint(
                seq=int(row.seq),
                at=float(row.created_at),
                kind=row.kind,
                price=r["price"],
                pool=r["pool"],
                circulating=r["circulating"],
                burned=r["burned"],
                treasury=r["treasury"],
                dividend_fund=r["dividend_fund"],
            )
        )
    return Page(items, encode_cursor(items[-1].seq) if more else None)


# ----------------------------------------------------------------------------- levels, board


@dataclass(frozen=True, slots=True)
class Level:
    level: int
    min_points: Decimal
    members: int  # ledger members at exactly this level


def level_of(points: Decimal, thresholds: Sequence[Decimal]) -> int:
    """1 + the index of the highest threshold reached; 0 below the first (R10)."""
    level = 0
    for i, t in enumerate(thresholds):
        if points >= t:
            level = i + 1
    return level


def levels(conn: Connection, tenant_id: int) -> list[Level]:
    """The tenant's levels with how many members hold enough EP for each (and not the next).

    One index range count per threshold (``ix_members_tenant_ep``), not a scan of members.
    """
    params = tenant_params(conn, tenant_id)
    thresholds = params.levels()
    m = s.members.c
    at_least = [
        int(
            conn.execute(
                select(func.count())
                .select_from(s.members)
                .where(m.tenant_id == tenant_id, m.ep >= _ep_atoms(th))
            ).scalar_one()
        )
        for th in thresholds
    ]
    out = []
    for i, th in enumerate(thresholds):
        nxt = at_least[i + 1] if i + 1 < len(at_least) else 0
        out.append(Level(level=i + 1, min_points=th, members=at_least[i] - nxt))
    return out


def _ep_atoms(points: Decimal) -> int:
    # thresholds may have more than 8 places; rounding up keeps "ep >= threshold" exact
    scaled = points.scaleb(EP_PLACES)
    i = int(scaled)
    return i if i == scaled else i + 1


@dataclass(frozen=True, slots=True)
class BoardEntry:
    rank: int
    member: str
    display_name: str | None
    points: Decimal
    level: int
    partner: bool


def _names(conn: Connection, tenant_id: int, codes: Iterable[str]) -> dict[str, str | None]:
    codes = list(codes)
    if not codes:
        return {}
    p = s.member_profiles.c
    return {
        row.code: row.display_name
        for row in conn.execute(
            select(p.code, p.display_name).where(p.tenant_id == tenant_id, p.code.in_(codes))
        )
    }


def board(conn: Connection, tenant_id: int, *, limit: int, cursor: str | None) -> Page[BoardEntry]:
    """The top ``board_size`` holders by EP (ties: who joined first), a page of it at a time.

    The treasury is not a member and never appears; members with no EP are not ranked.
    """
    params = tenant_params(conn, tenant_id)
    size = min(int(params.board_size), _BOARD_MAX)
    start = decode_cursor(cursor) if cursor is not None else 0
    if start >= size:
        return Page([], None)
    take = min(limit, size - start)
    m = s.members.c
    rows = conn.execute(
        select(m.code, m.ep)
        .where(m.tenant_id == tenant_id, m.ep > 0)
        .order_by(m.ep.desc(), m.no)
        .offset(start)  # bounded by board_size: the board is short by definition
        .limit(take + 1)
    ).all()
    more = len(rows) > take and start + take < size
    rows = rows[:take]
    names = _names(conn, tenant_id, (r.code for r in rows))
    thresholds = params.levels()
    items = []
    for i, row in enumerate(rows):
        pts = from_atoms(row.ep, EP_PLACES)
        items.append(
            BoardEntry(
                rank=start + i + 1,
                member=row.code,
                display_name=names.get(row.code),
                points=pts,
                level=level_of(pts, thresholds),
                partner=pts >= params.partner_threshold,
            )
        )
    return Page(items, encode_cursor(start + take) if more else None)


def partners(
    conn: Connection, tenant_id: int, *, limit: int, cursor: str | None
) -> Page[BoardEntry]:
    """Members holding at least ``partner_threshold`` EP (合伙人), in order of joining."""
    params = tenant_params(conn, tenant_id)
    after = decode_cursor(cursor) if cursor is not None else 0
    # partners are few among many members: read them off the EP index and sort that handful
    # (SQLite, without statistics, would walk every member in number order instead)
    hint = "INDEXED BY ix_members_tenant_ep " if conn.dialect.name == "sqlite" else ""
    sql = driver_sql(
        conn,
        f"SELECT no, code, ep FROM members {hint}WHERE tenant_id = ? AND ep >= ? AND ep > 0 "  # noqa: S608 - a constant hint
        "AND no > ? ORDER BY no LIMIT ?",
    )
    args = (tenant_id, _ep_atoms(params.partner_threshold), after, limit + 1)
    rows = conn.exec_driver_sql(sql, args).all()
    more = len(rows) > limit
    rows = rows[:limit]
    names = _names(conn, tenant_id, (r.code for r in rows))
    thresholds = params.levels()
    items = []
    for row in rows:
        pts = from_atoms(row.ep, EP_PLACES)
        items.append(
            BoardEntry(
                rank=0,
                member=row.code,
                display_name=names.get(row.code),
                points=pts,
                level=level_of(pts, thresholds),
                partner=True,
            )
        )
    return Page(items, encode_cursor(int(rows[-1].no)) if more else None)


# ----------------------------------------------------------------------------- holdings


@dataclass(frozen=True, slots=True)
class Holdings:
    member: str
    points: Decimal
    price: str
    value: Decimal  # points x price, cut to the fen
    sell_value: Decimal  # what selling every point would pay now (R3, after the fee)
    stable: Decimal
    quota_remaining: Decimal
    spent: Decimal
    dividends: Decimal
    points_debt: Decimal
    exited: bool
    level: int
    partner: bool


def holdings(conn: Connection, tenant_id: int, member: str) -> Holdings:
    """A member's points, their value at the current price, quota, SP and standing.

    A registered member who never moved value holds nothing (there is no ledger row yet).
    """
    params = tenant_params(conn, tenant_id)
    num, den, _ = price_ratio(conn, tenant_id, params)
    m = s.members.c
    row = conn.execute(
        select(s.members).where(m.tenant_id == tenant_id, m.code == member)
    ).one_or_none()

    def amount(name: str, places: int) -> Decimal:
        return ZERO if row is None else from_atoms(getattr(row, name), places)

    pts = amount("ep", EP_PLACES)
    return Holdings(
        member=member,
        points=pts,
        price=show_price(num, den, params.initial_price),
        value=ratio_floor(mul(pts, num), den, FEN),
        sell_value=pricing.sale_value(pts, num, den, params.sell_fee),
        stable=amount("sp", CNY_PLACES),
        quota_remaining=amount("quota", CNY_PLACES),
        spent=amount("spent", CNY_PLACES),
        dividends=amount("dividends", CNY_PLACES),
        points_debt=amount("ep_debt", EP_PLACES),
        exited=bool(row.exited) if row is not None else False,
        level=level_of(pts, params.levels()),
        partner=pts > 0 and pts >= params.partner_threshold,
    )


# ----------------------------------------------------------------------------- history
