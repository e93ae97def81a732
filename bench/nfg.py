"""NFG throughput on SQLite: minting one collection and exchange trades, each against the same
rows stored by plain ``executemany`` in the same run, and the same trades on the in-process EVM.

Run:  .venv/bin/python bench/nfg.py [--tokens 100000] [--batch 1000] [--trades 2000]
                                    [--evm-trades 2000] [--quick]

What is measured (wall time of the service calls only; the workload is prepared before):

* mint: ``tokens.airdrop`` of ``--tokens`` serials of one collection, ``--batch`` per unit of
  work (each a transaction under the tenant lock: the domain's checks, the token rows, the
  hash-chained events);
* trades: ``market.buy`` of ``--trades`` listed tokens with SP, one unit of work each (the
  domain's re-checks, one ledger command moving price, fee, pool share, royalty and proceeds,
  the token, the listing and the chained event).

The ceilings: the very rows each phase wrote (mint: ``nfg_tokens`` and ``nfg_events``; trades:
``nfg_events``, ``ledger_tx`` and ``transfers`` inserted, the ``nfg_tokens``, ``nfg_listings``
and ``members`` rows updated) are read back and written with plain driver ``executemany`` into
tables of the same DDL on a fresh database with the same durability (WAL, synchronous=FULL),
in the same number of transactions.  The goal is at least 30% of the ceiling.

The EVM: the same trades replayed as ``transferFrom`` on the TokenmallNFG contract on
titanoboa's py-evm (after minting those tokens there), for comparison (needs the chain extra).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    discard_sqlite,
    fmt_int,
    fresh_sqlite_url,
    machine_facts,
    print_facts,
    remove_sqlite,
    source_facts,
    sqlite_conn_facts,
    sqlite_path,
)
from tokenmall.domain.commands import Join, RewardGrant
from tokenmall.domain.nfg import Collection, EventKind, Mode
from tokenmall.service.ledger import Ledger
from tokenmall.service.nfg import collections, log, market, tokens
from tokenmall.service.uow import Store
from tokenmall.store.db import create_db_engine, migrate

T0 = 1_767_225_600.0
MEMBERS = 1000


def _rows(
    path: str, sql: str, args: tuple[Any, ...] = ()
) -> tuple[list[str], list[tuple[Any, ...]]]:
    db = sqlite3.connect(path)
    cur = db.execute(sql, args)
    cols = [d[0] for d in cur.description]
    rows = cur.fetchall()
    db.close()
    return cols, rows


def _fresh_copy(src_path: str, dst_path: str, tables: tuple[str, ...]) -> sqlite3.Connection:
    remove_sqlite(dst_path)
    src = sqlite3.connect(src_path)
    tables = ("tenants", *tables)
    names = ", ".join(repr(t) for t in tables)
    ddl = [
        r[0]
        for r in src.execute(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND tbl_name IN "
            f"({names}) ORDER BY type = 'index', name"
        )
    ]
    tenants = src.execute("SELECT * FROM tenants").fetchall()
    src.close()
    db = sqlite3.connect(dst_path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA foreign_keys=ON")
    for stmt in ddl:
        db.execute(stmt)
    db.executemany(f"INSERT INTO tenants VALUES ({', '.join('?' * len(tenants[0]))})", tenants)
    return db


def _insert(table: str, cols: list[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"


# ----------------------------------------------------------------------------- mint


def mint(store: Store, tid: int, n: int, batch: int) -> float:
    receivers = [f"m{i % MEMBERS:04d}" for i in range(n)]
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        with store.tenant_tx(tid) as tx:
            tokens.airdrop(tx, "BULK", receivers[i : i + batch], at=T0)
    return time.perf_counter() - t0


def mint_ceiling(src: str, dst: str, n: int, batch: int) -> tuple[float, str]:
    tcols, trows = _rows(src, "SELECT * FROM nfg_tokens ORDER BY serial")
    ecols, erows = _rows(src, "SELECT * FROM nfg_events ORDER BY seq")
    db = _fresh_copy(src, dst, ("nfg_tokens", "nfg_events"))
    facts = sqlite_conn_facts(db)
    ti, ei = _insert("nfg_tokens", tcols), _insert("nfg_events", ecols)
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        db.execute("BEGIN IMMEDIATE")
        db.executemany(ti, trows[i : i + batch])
        db.executemany(ei, erows[i : i + batch])
        db.execute("COMMIT")
    took = time.perf_counter() - t0
    db.close()
    remove_sqlite(dst)
    return took, facts


# ----------------------------------------------------------------------------- trades


def prepare_trades(store: Store, tid: int, k: int) -> list[tuple[int, str, str, int]]:
    """SP for every member, and ``k`` listings: (listing id, seller, buyer, serial)."""
    with store.tenant_tx(tid) as tx:
        for i in range(MEMBERS):
            m = f"m{i:04d}"
            tx.apply_one(f"join:{m}:None", Join(m, None))
            tx.apply_one(f"bench:{m}", RewardGrant(m, Decimal(1_000_000), "bench"))
    out = []
    with store.tenant_tx(tid) as tx:
        for serial in range(1, k + 1):
            seller = f"m{(serial - 1) % MEMBERS:04d}"
            buyer = f"m{serial % MEMBERS:04d}"
            lid = market.list_token(
                tx, "BULK", serial, caller=seller, price=Decimal("100.00"), at=T0 + 1
            ).id
            out.append((lid, seller, buyer, serial))
    return out


def trade(store: Store, tid: int, plan: list[tuple[int, str, str, int]]) -> float:
    t0 = time.perf_counter()
    for lid, _, buyer, _ in plan:
        with store.tenant_tx(tid) as tx:
            market.buy(tx, lid, buyer=buyer, at=T0 + 2)
    return time.perf_counter() - t0


def trade_ceiling(src: str, dst: str, k: int, first_event: int) -> tuple[float, str]:
    ecols, erows = _rows(
        src, "SELECT * FROM nfg_events WHERE seq >= ? ORDER BY seq", (first_event,)
    )
    lcols, lrows = _rows(src, "SELECT * FROM ledger_tx WHERE kind = 'token_sale' ORDER BY seq")
    seqs = [r[lcols.index("seq")] for r in lrows]
    xcols, xrows = _rows(
        src, "SELECT * FROM transfers WHERE seq >= ? ORDER BY seq, n", (min(seqs),)
    )
    by_seq: dict[int, list[tuple[Any, ...]]] = {}
    for r in xrows:
        by_seq.setdefault(r[xcols.index("seq")], []).append(r)
    _, members = _rows(src, "SELECT tenant_id, no, sp FROM members")
    sp = {r[1]: r for r in members}
    db = _fresh_copy(
        src, dst, ("nfg_events", "ledger_tx", "transfers", "nfg_tokens", "nfg_listings", "members")
    )
    for table in ("nfg_tokens", "nfg_listings", "members"):
        cols, rows = _rows(src, f"SELECT * FROM {table}")
        db.execute("BEGIN")
        db.executemany(_insert(table, cols), rows)
        db.execute("COMMIT")
    facts = sqlite_conn_facts(db)
    ei, li, xi = (
        _insert("nfg_events", ecols),
        _insert("ledger_tx", lcols),
        _insert("transfers", xcols),
    )
    tok = (
        "UPDATE nfg_tokens SET owner = ?, approved = NULL, acquired_at = ?, last_price_fen = ? "
        "WHERE tenant_id = ? AND collection_id = ? AND serial = ?"
    )
    lst = (
        "UPDATE nfg_listings SET state = 'sold', closed_at = ?, buyer = ? "
        "WHERE tenant_id = ? AND id = ?"
    )
    mem = "UPDATE members SET sp = ? WHERE tenant_id = ? AND no = ?"
    ev = {c: i for i, c in enumerate(ecols)}
    nos = list(sp)
    t0 = time.perf_counter()
    for i in range(k):
        e, lrow = erows[i], lrows[i]
        db.execute("BEGIN IMMEDIATE")
        db.executemany(ei, [e])
        db.executemany(li, [lrow])
        db.executemany(xi, by_seq.get(lrow[lcols.index("seq")], []))
        db.executemany(
            tok,
            [
                (
                    e[ev["to_member"]],
                    e[ev["at"]],
                    e[ev["price_fen"]],
                    e[ev["tenant_id"]],
                    e[ev["collection_id"]],
                    e[ev["serial"]],
                )
            ],
        )
        db.executemany(lst, [(e[ev["at"]], e[ev["to_member"]], e[ev["tenant_id"]], i + 1)])
        two = [sp[nos[(2 * i) % len(nos)]], sp[nos[(2 * i + 1) % len(nos)]]]
        db.executemany(mem, [(r[2], r[0], r[1]) for r in two])
        db.execute("COMMIT")
    took = time.perf_counter() - t0
    db.close()
    remove_sqlite(dst)
    return took, facts


def evm_trades(
    plan: list[tuple[int, str, str, int]], coll: Collection
) -> tuple[float, float] | None:
    try:
        from tokenmall.chain import ChainMirror, member_address  # noqa: PLC0415
        from tokenmall.domain.nfg import ProvenanceEvent, TokenRef  # noqa: PLC0415

        chain = ChainMirror(coll)
    except Exception as err:  # noqa: BLE001 - the optional extra missing, or boa failing
        print(f"  EVM: skipped ({err})")
        return None
    mints = [
        ProvenanceEvent(i + 1, EventKind.MINT, TokenRef(coll.code, s), None, seller, T0)
        for i, (_, seller, _, s) in enumerate(plan)
    ]
    t0 = time.perf_counter()
    chain.replay(mints)
    mint_s = time.perf_counter() - t0
    sales = [
        ProvenanceEvent(i + 1, EventKind.SALE, TokenRef(coll.code, s), seller, buyer, T0)
        for i, (_, seller, buyer, s) in enumerate(plan)
    ]
    t0 = time.perf_counter()
    chain.replay(sales)
    trade_s = time.perf_counter() - t0
    _, _, buyer, serial = plan[-1]
    assert chain.owner_on_chain(serial) == member_address(buyer)
    return mint_s, trade_s


# ----------------------------------------------------------------------------- main


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tokens", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--trades", type=int, default=2000)
    p.add_argument("--evm-trades", type=int, default=2000)
    p.add_argument("--quick", action="store_true", help="10,000 tokens, 300 trades")
    p.add_argument("--dir", default=None, help="Directory of the SQLite files (default: temp)")
    a = p.parse_args()
    if a.quick:
        a.tokens, a.trades, a.evm_trades = 10_000, 300, 300
    a.trades = min(a.trades, a.tokens)
    print_facts("machine", machine_facts())
    print_facts("source", source_facts())

    url = fresh_sqlite_url("nfg.db", a.dir)
    engine = create_db_engine(url)
    migrate(engine)
    path = sqlite_path(url)
    tid = Ledger(engine).create_tenant("bench")
    store = Store(engine)
    coll = Collection(
        code="BULK",
        name="Bulk",
        max_supply=a.tokens,
        price=Decimal("100.00"),
        transfer_policy=Mode.OPEN,
        fee_bps=250,
        royalty_bps=500,
        fee_to_pool_ratio=Decimal("0.5"),
    )
    with store.tenant_tx(tid) as tx:
        collections.create_collection(tx, coll)
    with engine.connect() as conn:
        print(f"  sqlite        {sqlite_conn_facts(conn.connection.dbapi_connection)}")  # type: ignore[arg-type]

    print(f"== mint {fmt_int(a.tokens)} tokens, {a.batch} per transaction")
    took = mint(store, tid, a.tokens, a.batch)
    ceil, facts = mint_ceiling(path, path + ".ceiling", a.tokens, a.batch)
    print(f"  service       {took:8.2f} s   {fmt_int(a.tokens / took):>10} tokens/s")
    print(f"  executemany   {ceil:8.2f} s   {fmt_int(a.tokens / ceil):>10} tokens/s   ({facts})")
    print(f"  ratio         {ceil / took:8.1%} of the ceiling (goal >= 30%)")

    print(f"== {fmt_int(a.trades)} trades (buy with SP), one transaction each")
    plan = prepare_trades(store, tid, a.trades)
    with engine.connect() as conn:
        first = log.last_seq(conn, tid) + 1
    took = trade(store, tid, plan)
    ceil, facts = trade_ceiling(path, path + ".ceiling", a.trades, first)
    print(f"  service       {took:8.2f} s   {fmt_int(a.trades / took):>10} trades/s")
    print(f"  executemany   {ceil:8.2f} s   {fmt_int(a.trades / ceil):>10} trades/s")
    print(f"  ratio         {ceil / took:8.1%} of the ceiling (goal >= 30%)")
    with engine.connect() as conn:
        assert log.verify_chain(conn, tid) is None
    sums: dict[str, Decimal] = {}
    for (_, asset), v in Ledger(engine).balances(tid).items():
        sums[asset] = sums.get(asset, Decimal(0)) + v
    assert all(v == 0 for v in sums.values()), sums
    print("  checked       the token log's hash chain holds; each asset sums to zero")

    k = min(a.evm_trades, len(plan))
    print(f"== the same first {fmt_int(k)} trades on the in-process EVM (titanoboa, py-evm)")
    evm = evm_trades(plan[:k], coll)
    if evm is not None:
        mint_s, trade_s = evm
        print(f"  EVM mint      {mint_s:8.2f} s   {fmt_int(k / mint_s):>10} tokens/s")
        print(f"  EVM trades    {trade_s:8.2f} s   {fmt_int(k / trade_s):>10} transferFrom/s")
    engine.dispose()
    discard_sqlite(url)


if __name__ == "__main__":
    main()
