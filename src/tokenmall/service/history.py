"""A member's history read from the ledger's own transfers (the partial indexes of migration
0004): every movement of one asset, the rewards by category, and the EP moves with the price
before and after each, so the history cannot disagree with the balances (there is no second
copy to keep in step).  Split from ``reads`` (which re-exports these names) to keep each
service module small.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from tokenmall.money import (
    CNY_PLACES,
    EP_PLACES,
    from_atoms,
)
from tokenmall.service.pages import Page, decode_cursor, encode_cursor
from tokenmall.store import schema as s

__all__ = [
    "PLACES",
    "REWARD_CATEGORIES",
    "HistoryEntry",
    "PointsMove",
    "driver_sql",
    "member_history",
    "member_no",
    "points_history",
    "reward_history",
]

# the decimal places of each asset's stored atoms
PLACES = {"CNY": CNY_PLACES, "SP": CNY_PLACES, "EP": EP_PLACES}
# what counts as a reward in a member's history: points issued for their own or a referred
# purchase, dividends, and what the pool paid for their points (a sale or a forced exit)
REWARD_CATEGORIES = frozenset(
    {"purchase_points", "referral_points", "dividend", "sale_payout", "exit_payout"}
)
# ledger kinds whose credits to a member are never rewards: the member's own conversions,
# money coming back (refunds, released withdrawals)
_NOT_REWARD_KINDS = ("exchange", "payout_result", "refund", "buy_points")


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One transfer to or from a member's account, with what caused it."""

    seq: int
    n: int
    at: float
    kind: str  # the ledger transaction's kind (purchase, sell, close_day, ...)
    category: str  # what it means for the member (dividend, exit_payout, withdrawal, ...)
    asset: str
    direction: str  # "in" | "out"
    amount: Decimal
    counterparty: str  # the other account (system accounts by name)


def member_no(conn: Connection, tenant_id: int, member: str) -> int | None:
    """The member's ledger number (its account is ``m:<no>``), None before any movement."""
    m = s.members.c
    no = conn.execute(select(m.no).where(m.tenant_id == tenant_id, m.code == member)).scalar()
    return None if no is None else int(no)


def driver_sql(conn: Connection, sql: str) -> str:
    """Driver SQL written with ``?``: psycopg wants ``%s``, and a literal ``%`` doubled.

    SQLite is told which index to use (``INDEXED BY``): without statistics (nobody runs
    ANALYZE) its planner prefers walking the tenant's whole primary key backwards to avoid a
    sort, which for a quiet member means reading every transfer of the tenant.
    """
    if conn.dialect.name == "sqlite":
        return sql.replace("{by_credit}", "INDEXED BY ix_transfers_member_credit").replace(
            "{by_debit}", "INDEXED BY ix_transfers_member_debit"
        )
    return (
        sql.replace("{by_credit} ", "")
        .replace("{by_debit} ", "")
        .replace("%", "%%")
        .replace("?", "%s")
    )


_COLS = "seq, n, asset, debit, credit, amount FROM transfers "
# The literal LIKE repeats the partial index's predicate, which is how both databases know the
# index applies (neither infers it from "credit = 'm:7'").
_CREDITS = (
    "SELECT "
    + _COLS
    + "{by_credit} WHERE tenant_id = ? AND credit = ? AND "
    + s.MEMBER_CREDIT_PREDICATE
)
_DEBITS = (
    "SELECT "
    + _COLS
    + "{by_debit} WHERE tenant_id = ? AND debit = ? AND "
    + s.MEMBER_DEBIT_PREDICATE
)


def _pack(seq: int, n: int) -> int:
    return (seq << 32) | n


def _page_rows(
    conn: Connection,
    tenant_id: int,
    account: str,
    *,
    asset: str | None,
    credits_only: bool,
    limit: int,
    cursor: str | None,
) -> tuple[list[Any], bool]:
    """Newest-first transfers of ``account``: each side read in index order, then merged."""
    extra = ""
    args: list[Any] = []
    if asset is not None:
        extra += " AND asset = ?"
        args.append(asset)
    if cursor is not None:
        packed = decode_cursor(cursor)
        cseq, cn = packed >> 32, packed & 0xFFFFFFFF
        extra += " AND (seq < ? OR (seq = ? AND n < ?))"
        args += [cseq, cseq, cn]
    tail = extra + " ORDER BY seq DESC, n DESC LIMIT ?"
    if credits_only:
        sql = (
            _CREDITS + " AND debit IN ('issuance', 'sp_issuance') AND NOT EXISTS (SELECT 1 "
            "FROM ledger_tx x WHERE x.tenant_id = transfers.tenant_id AND x.seq = transfers.seq "
            "AND x.kind IN (" + ", ".join(f"'{k}'" for k in _NOT_REWARD_KINDS) + "))" + tail
        )
        params: tuple[Any, ...] = (tenant_id, account, *args, limit + 1)
        rows = conn.exec_driver_sql(driver_sql(conn, sql), params).all()
    else:
        one = (tenant_id, account, *args, limit + 1)
        # only constants and placeholders are pasted together (no value reaches the text)
        sql = f"SELECT * FROM ({_CREDITS}{tail}) AS c UNION ALL "  # noqa: S608
        sql += f"SELECT * FROM ({_DEBITS}{tail}) AS d"  # noqa: S608
        rows = conn.exec_driver_sql(driver_sql(conn, sql), one + one).all()
        rows = sorted(rows, key=lambda r: (r.seq, r.n), reverse=True)
    more = len(rows) > limit
    return list(rows[:limit]), more


def _classify(
    conn: Connection, tenant_id: int, account: str, member: str, seqs: Sequence[int]
) -> tuple[dict[tuple[int, int], str], dict[int, tuple[str, float]]]:
    """What each of the member's transfers in ``seqs`` was, from the transaction around it.

    The ledger records movements, not reasons; the reason follows from the transaction's kind,
    whose command it was, and the transfers next to it (a sale is: points to ``burned``, the
    pool's CNY to the SP reserve, SP to the member, in that order).  Rules, per transaction in
    transfer order:

    * EP from ``issuance``: ``purchase_points`` to the buyer, ``referral_points`` otherwise;
      from the treasury ``bought_points``; to the treasury ``exchanged_points``.
    * EP to ``burned``: ``refund_clawback`` in a refund; the first burn of the member's own
      sell, redeem or payment ``sold_points`` / ``redeemed_points``; a burn followed by an SP
      payout ``forced_exit`` (R7); one right after a credit without a payout ``debt_offset``
      (a refund debt set off); any other a ``forced_exit`` whose payout cut to zero.
    * SP in: ``refund`` / ``withdrawal_returned`` / ``exchange`` by kind; after the member's
      sale ``sale_payout``, after a forced exit ``exit_payout``; in a day close ``dividend``.
    * SP out: ``withdrawal``, ``order_payment``, ``bought_points`` by kind.

    Known blur: a forced exit inside a refund's transaction is shown as part of the refund.
    """
    if not seqs:
        return {}, {}
    uniq = sorted(set(seqs))
    t = s.ledger_tx.c
    txs = {
        int(row.seq): row
        for row in conn.execute(
            select(t.seq, t.kind, t.payload, t.created_at).where(
                t.tenant_id == tenant_id, t.seq.in_(uniq)
            )
        )
    }
    settle_orders = [
        json.loads(r.payload).get("order", "") for r in txs.values() if r.kind == "settle"
    ]
    buyers: dict[str, str] = {}
    if settle_orders:
        g = s.grants.c
        buyers = {
            row.order_ref: row.member
            for row in conn.execute(
                select(g.order_ref, g.member).where(
                    g.tenant_id == tenant_id, g.order_ref.in_(settle_orders)
                )
            )
        }
    ph = ", ".join("?" * len(uniq))
    mine = conn.exec_driver_sql(
        driver_sql(
            conn,
            f"SELECT * FROM ({_CREDITS} AND seq IN ({ph})) AS c UNION ALL "  # noqa: S608
            f"SELECT * FROM ({_DEBITS} AND seq IN ({ph})) AS d",
        ),
        (tenant_id, account, *uniq, tenant_id, account, *uniq),
    ).all()
    by_seq: dict[int, list[Any]] = defaultdict(list)
    for row in mine:
        by_seq[int(row.seq)].append(row)
    out: dict[tuple[int, int], str] = {}
    meta: dict[int, tuple[str, float]] = {}
    for seq, rows in by_seq.items():
        tx = txs.get(seq)
        if tx is None:  # pragma: no cover - transfers always have their transaction
            continue
        kind = str(tx.kind)
        meta[seq] = (kind, float(tx.created_at))
        payload = json.loads(tx.payload)
        actor = payload.get("member")
        if kind == "settle":
            actor = buyers.get(payload.get("order", ""))
        own = actor == member
        own_burn_done = False
        burns: dict[int, str] = {}
        ordered = sorted(rows, key=lambda r: r.n)
        ep_in = {int(r.n) for r in ordered if r.asset == "EP" and r.credit == account}
        sp_in = {int(r.n) for r in ordered if r.asset == "SP" and r.credit == account}
        for r in ordered:
            n = int(r.n)
            incoming = r.credit == account
            if r.asset == "EP" and incoming:
                cat = {
                    "issuance": "purchase_points" if own else "referral_points",
                    "treasury": "bought_points",
                }.get(r.debit, "points_in")
            elif r.asset == "EP":
                if r.credit == "treasury":
                    cat = "exchanged_points"
                elif r.credit != "burned":
                    cat = "points_out"
                elif kind == "refund":
                    cat = "refund_clawback"
                elif own and not own_burn_done and kind in ("sell", "redeem", "pay"):
                    cat = "sold_points" if kind == "sell" else "redeemed_points"
                    own_burn_done = True
                elif n + 2 in sp_in:  # burned, then the pool's CNY, then the payout in SP
                    cat = "forced_exit"
                elif n - 1 in ep_in:  # burned right after a credit: a refund debt set off
                    cat = "debt_offset"
                else:  # a forced sale whose payout cut to zero fen
                    cat = "forced_exit"
                burns[n] = cat
            elif incoming:
                before = burns.get(n - 2)
                if kind in ("refund", "payout_result", "exchange"):
                    cat = {"refund": "refund", "payout_result": "withdrawal_returned"}.get(
                        kind, "exchange"
                    )
                elif before == "sold_points":
                    cat = "sale_payout"
                elif before == "forced_exit":
                    cat = "exit_payout"
                elif kind == "close_day":
                    cat = "dividend"
                else:
                    cat = "sp_in"
            else:
                cat = {
                    "withdraw": "withdrawal",
                    "pay": "order_payment",
                    "buy_points": "bought_points",
                }.get(kind, "sp_out")
            out[(seq, n)] = cat
    return out, meta


def _entries(
    conn: Connection, tenant_id: int, account: str, member: str, rows: Sequence[Any]
) -> list[HistoryEntry]:
    cats, meta = _classify(conn, tenant_id, account, member, [int(r.seq) for r in rows])
    out = []
    for r in rows:
        seq, n = int(r.seq), int(r.n)
        incoming = r.credit == account
        kind, at = meta.get(seq, ("", 0.0))
        out.append(
            HistoryEntry(
                seq=seq,
                n=n,
                at=at,
                kind=kind,
                category=cats.get((seq, n), "other"),
                asset=r.asset,
                direction="in" if incoming else "out",
                amount=from_atoms(int(r.amount), PLACES[r.asset]),
                counterparty=r.debit if incoming else r.credit,
            )
        )
    return out


def member_history(
    conn: Connection,
    tenant_id: int,
    member: str,
    *,
    asset: str | None,
    limit: int,
    cursor: str | None,
) -> Page[HistoryEntry]:
    """Every transfer to or from the member (of ``asset``, if given), newest first."""
    if cursor is not None:
        decode_cursor(cursor)  # a bad cursor is refused even where there is nothing to page
    no = member_no(conn, tenant_id, member)
    if no is None:
        return Page([], None)
    account = f"m:{no}"
    rows, more = _page_rows(
        conn, tenant_id, account, asset=asset, credits_only=False, limit=limit, cursor=cursor
    )
    items = _entries(conn, tenant_id, account, member, rows)
    return Page(items, encode_cursor(_pack(items[-1].seq, items[-1].n)) if more else None)


def reward_history(
    conn: Connection, tenant_id: int, member: str, *, limit: int, cursor: str | None
) -> Page[HistoryEntry]:
    """Points issued to the member, dividends, and what the pool paid for their points.

    Candidates are the member's credits from the issuance accounts outside conversions and
    refunds (an index range); the classification keeps the reward categories.  A page may
    hold fewer than ``limit`` items when some candidates were not rewards; follow the cursor.
    """
    if cursor is not None:
        decode_cursor(cursor)
    no = member_no(conn, tenant_id, member)
    if no is None:
        return Page([], None)
    account = f"m:{no}"
    rows, more = _page_rows(
        conn, tenant_id, account, asset=None, credits_only=True, limit=limit, cursor=cursor
    )
    entries = _entries(conn, tenant_id, account, member, rows)
    items = [e for e in entries if e.category in REWARD_CATEGORIES]
    last = rows[-1] if rows else None
    next_cursor = encode_cursor(_pack(int(last.seq), int(last.n))) if more and last else None
    return Page(items, next_cursor)


@dataclass(frozen=True, slots=True)
class PointsMove:
    """One movement of the member's EP with the price around it.

    ``price_before`` is the price the ledger stood at when the transaction began (what the
    previous transaction left): the price an issuance, a sale or an exchange was valued at.
    ``price_after`` is the price the transaction left.  Either is None where the ledger does
    not know it: before a tenant's first transaction the price is the ``initial_price`` of
    that moment, which a later parameter change may have replaced.  Inside a transaction of
    several steps (a day close with forced exits) a later step may have run at a price
    between the two.
    """

    entry: HistoryEntry
    price_before: str | None
    price_after: str | None


def _prices(conn: Connection, tenant_id: int, seqs: Iterable[int]) -> dict[int, str]:
    """The display price each ledger transaction in ``seqs`` left (its stored result)."""
    wanted = sorted({q for q in seqs if q > 0})
    if not wanted:
        return {}
    t = s.ledger_tx.c
    rows = conn.execute(
        select(t.seq, t.result).where(t.tenant_id == tenant_id, t.seq.in_(wanted))
    ).all()
    return {int(r.seq): str(json.loads(r.result)["price"]) for r in rows}


def points_history(
    conn: Connection, tenant_id: int, member: str, *, limit: int, cursor: str | None
) -> Page[PointsMove]:
    """Every movement of the member's EP, newest first, with the price before and after it:
    issuance for purchases and referrals, sales, exchanges, points bought, payments in EP,
    refund claw-backs, forced exits.  The same pages and cursor as ``member_history``."""
    found = member_history(conn, tenant_id, member, asset="EP", limit=limit, cursor=cursor)
    seqs = {e.seq for e in found.items}
    prices = _prices(conn, tenant_id, seqs | {q - 1 for q in seqs})
    return Page(
        [PointsMove(e, prices.get(e.seq - 1), prices.get(e.seq)) for e in found.items],
        found.next_cursor,
    )
