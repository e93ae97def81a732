"""Settlement throughput: N purchases by M referred members through ``Ledger.submit``.

Run:  .venv/bin/python bench/settlement.py [--n 100000] [--members 20000] [--batch 5000]
                                           [--db URL] [--quick] [--profile FILE]

What is measured: the wall time of the ``Ledger.submit`` calls only (the workload is generated
beforehand), on a fresh database, with durable commits (SQLite: WAL + synchronous=FULL, the
pragmas are printed as read back from the connection).  Then, in the same run, the *raw
ceiling*: the very rows the engine wrote to ``ledger_tx``, ``transfers`` and ``grants`` are
read back and inserted with plain driver ``executemany`` into tables of the same DDL (copied
from the engine's database, so same keys, WITHOUT ROWID, same secondary indexes) on a fresh
database with the same durability settings (SQLite pragmas), committed in the same number of
transactions.  A second ceiling adds the engine's ``members`` writes (insert on first sight,
update by key after).

Correctness is checked after the run, not timed: every account's stored balance equals the
replay of the transfers, and each asset's balances over accounts and members sum to zero.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    SqlTimer,
    cpu_seconds,
    discard_sqlite,
    engine_facts,
    fmt_int,
    is_sqlite_url,
    machine_facts,
    maybe_profile,
    pg_dsn,
    prepare_url,
    print_facts,
    remove_sqlite,
    source_facts,
    sqlite_conn_facts,
    sqlite_path,
)
from tokenmall.domain.economy import Command, Purchase
from tokenmall.service.ledger import Ledger
from tokenmall.store.db import create_db_engine, migrate

FOUNDERS = 5  # the first members join without a referrer
PLACES = {"CNY": 4, "SP": 4, "EP": 8}
LOG_TABLES = ("ledger_tx", "transfers", "grants")


# ----------------------------------------------------------------------------- workload


def workload(n: int, members: int, seed: int) -> tuple[list[tuple[str, Command]], dict[str, Any]]:
    """Deterministic purchases: member i's referrer is a random earlier member (i >= FOUNDERS);
    each purchase is by a uniformly random member, amount whole fen in [9.90, 999.00]."""
    rng = random.Random(seed)
    codes = [f"m{i:06d}" for i in range(members)]
    refs: list[str | None] = [
        None if i < FOUNDERS else codes[rng.randrange(i)] for i in range(members)
    ]
    items: list[tuple[str, Command]] = []
    total = 0
    for i in range(n):
        b = rng.randrange(members)
        fen = rng.randint(990, 99900)
        total += fen
        order = f"o{i:07d}"
        items.append(
            (
                f"pay:{order}",
                Purchase(
                    order=order, member=codes[b], amount=Decimal(fen).scaleb(-2), referrer=refs[b]
                ),
            )
        )
    info = {"amount_total": Decimal(total).scaleb(-2), "referred": sum(r is not None for r in refs)}
    return items, info


# ----------------------------------------------------------------------------- engine run


def run_engine(
    url: str,
    items: list[tuple[str, Command]],
    batch: int,
    profile: str | None,
    sql_timing: bool = False,
) -> dict[str, Any]:
    engine = create_db_engine(url)
    t0 = time.perf_counter()
    migrate(engine)
    ledger = Ledger(engine)
    tid = ledger.create_tenant("bench")
    setup_s = time.perf_counter() - t0
    print_facts("engine database (read back from a pooled connection)", engine_facts(engine))

    timer = SqlTimer(engine) if sql_timing else None
    statuses: Counter[str] = Counter()
    rejects: Counter[str] = Counter()
    exits = 0
    lat: list[float] = []
    groups: list[tuple[int, list[str]]] = []  # per transaction: last seq, applied orders
    last_seq = 0
    start, cpu0 = time.perf_counter(), cpu_seconds()
    with maybe_profile(profile):
        for lo in range(0, len(items), batch):
            part = items[lo : lo + batch]
            b0 = time.perf_counter()
            outs = ledger.submit(tid, part)
            lat.append(time.perf_counter() - b0)
            orders = []
            for (_, cmd), o in zip(part, outs, strict=True):
                statuses[o.status] += 1
                if o.status == "applied":
                    last_seq = max(last_seq, o.seq or 0)
                    orders.append(cmd.order)  # type: ignore[union-attr]
                    exits += int(Decimal(o.result["figures"].get("exits", "0")))  # type: ignore[index]
                else:
                    rejects[f"{o.error_code}: {o.error}"[:120]] += 1
            groups.append((last_seq, orders))
    seconds = time.perf_counter() - start
    cpu = cpu_seconds() - cpu0
    if timer:
        timer.report()
        engine.dispatch.before_cursor_execute.clear()  # the checks below are not measured
        engine.dispatch.after_cursor_execute.clear()
    return {
        "engine": engine,
        "ledger": ledger,
        "tid": tid,
        "setup_s": setup_s,
        "seconds": seconds,
        "cpu": cpu,
        "statuses": statuses,
        "rejects": rejects,
        "exits": exits,
        "lat": lat,
        "groups": groups,
    }


def count_rows(engine: Any, tid: int) -> dict[str, int]:
    out = {}
    with engine.connect() as conn:
        for t in (*LOG_TABLES, "members"):
            out[t] = conn.exec_driver_sql(
                f"SELECT COUNT(*) FROM {t} WHERE tenant_id = {int(tid)}"
            ).scalar()
        out["exited"] = conn.exec_driver_sql(
            f"SELECT COUNT(*) FROM members WHERE tenant_id = {int(tid)} AND exited"
        ).scalar()
        conn.rollback()
    return out


def check(engine: Any, ledger: Ledger, tid: int) -> bool:
    """Zero-sum per asset (Ledger.balances) and stored balances == replay of the transfers."""
    bal = ledger.balances(tid)
    sums: dict[str, Decimal] = {}
    for (_acct, asset), v in bal.items():
        sums[asset] = sums.get(asset, Decimal(0)) + v
    ok = all(v == 0 for v in sums.values())
    print("== correctness")
    print(
        "  sum of balances per asset (accounts + members): "
        + ", ".join(f"{a}={v:f}" for a, v in sorted(sums.items()))
        + ("  -> zero, OK" if ok else "  -> NOT ZERO")
    )
    replay: dict[tuple[str, str], int] = {}
    with engine.connect() as conn:
        for side, sign in (("credit", 1), ("debit", -1)):
            for acct, asset, amt in conn.exec_driver_sql(
                f"SELECT {side}, asset, SUM(amount) FROM transfers WHERE tenant_id = {int(tid)} "
                f"GROUP BY {side}, asset"
            ):
                replay[(acct, asset)] = replay.get((acct, asset), 0) + sign * int(amt)
        conn.rollback()
    bad = []
    for key in set(replay) | set(bal):
        stored = int(bal.get(key, Decimal(0)).scaleb(PLACES[key[1]]))
        if stored != replay.get(key, 0):
            bad.append((key, stored, replay.get(key, 0)))
    print(
        f"  stored balances vs replay of the transfers: {len(bal):,} balances, "
        f"{len(bad)} mismatch(es)" + ("  -> OK" if not bad else f"  e.g. {bad[:3]}")
    )
    return ok and not bad


# ----------------------------------------------------------------------------- raw ceiling


def read_back(engine: Any, tid: int) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    out = {}
    order = {"ledger_tx": "seq", "transfers": "seq, n", "grants": "order_ref", "members": "no"}
    with engine.connect() as conn:
        for t in (*LOG_TABLES, "members"):
            res = conn.exec_driver_sql(
                f"SELECT * FROM {t} WHERE tenant_id = {int(tid)} ORDER BY {order[t]}"
            )
            out[t] = (list(res.keys()), [tuple(r) for r in res])
        conn.rollback()
    return out


def transactions(
    data: dict[str, tuple[list[str], list[tuple[Any, ...]]]],
    groups: list[tuple[int, list[str]]],
    items: list[tuple[str, Command]],
    with_members: bool,
) -> list[dict[str, list[tuple[Any, ...]]]]:
    """Split the engine's rows into the engine's transactions (same batches)."""
    txs: list[dict[str, list[tuple[Any, ...]]]] = [
        {"ledger_tx": [], "transfers": [], "grants": [], "m_ins": [], "m_upd": []} for _ in groups
    ]
    bounds = [g[0] for g in groups]

    def tx_of(seq: int) -> int:
        lo, hi = 0, len(bounds) - 1
        while lo < hi:  # first transaction whose last seq >= seq
            mid = (lo + hi) // 2
            if bounds[mid] >= seq:
                hi = mid
            else:
                lo = mid + 1
        return lo

    cols, rows = data["ledger_tx"]
    si = cols.index("seq")
    for r in rows:
        txs[tx_of(r[si])]["ledger_tx"].append(r)
    cols, rows = data["transfers"]
    si = cols.index("seq")
    for r in rows:
        txs[tx_of(r[si])]["transfers"].append(r)
    cols, rows = data["grants"]
    oi = cols.index("order_ref")
    where = {o: i for i, (_, orders) in enumerate(groups) for o in orders}
    for r in rows:
        txs[where[r[oi]]]["grants"].append(r)
    if with_members:
        mcols, mrows = data["members"]
        by_code = {r[mcols.index("code")]: r for r in mrows}
        upd_cols = [c for c in mcols if c not in ("tenant_id", "no", "code")]
        seen: set[str] = set()
        bsize = len(items) // max(1, len(groups)) or 1
        for gi in range(len(groups)):
            touched: dict[str, None] = {}
            for _, cmd in items[gi * bsize : (gi + 1) * bsize]:
                for code in (cmd.referrer, cmd.member):  # type: ignore[union-attr]
                    if code:
                        touched[code] = None
            for code in touched:
                r = by_code.get(code)
                if r is None:
                    continue
                if code in seen:
                    d = dict(zip(mcols, r, strict=True))
                    txs[gi]["m_upd"].append((*[d[c] for c in upd_cols], d["tenant_id"], d["no"]))
                else:
                    seen.add(code)
                    txs[gi]["m_ins"].append(r)
        txs[0]["_upd_cols"] = upd_cols  # type: ignore[assignment]
    return txs


def _sqlite_ceiling(
    src_path: str, dst_path: str, data: Any, txs: Any, with_members: bool
) -> tuple[float, str]:
    remove_sqlite(dst_path)
    tables = (*LOG_TABLES, "members") if with_members else LOG_TABLES
    src = sqlite3.connect(src_path)
    ddl = [
        r[0]
        for r in src.execute(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND tbl_name IN "
            f"('tenants', {', '.join(repr(t) for t in tables)}) ORDER BY type = 'index', name"
        )
    ]
    tenant = src.execute("SELECT * FROM tenants").fetchall()
    src.close()
    db = sqlite3.connect(dst_path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA foreign_keys=ON")
    for stmt in ddl:
        db.execute(stmt)
    db.executemany(f"INSERT INTO tenants VALUES ({', '.join('?' * len(tenant[0]))})", tenant)
    facts = sqlite_conn_facts(db)
    sql = {
        t: f"INSERT INTO {t} ({', '.join(data[t][0])}) VALUES ({', '.join('?' * len(data[t][0]))})"
        for t in tables
    }
    upd = ""
    if with_members:
        ucols = txs[0]["_upd_cols"]
        upd = (
            f"UPDATE members SET {', '.join(c + ' = ?' for c in ucols)} "
            "WHERE tenant_id = ? AND no = ?"
        )
    t0 = time.perf_counter()
    for tx in txs:
        db.execute("BEGIN IMMEDIATE")
        for t in LOG_TABLES:
            if tx[t]:
                db.executemany(sql[t], tx[t])
        if with_members:
            if tx["m_ins"]:
                db.executemany(sql["members"], tx["m_ins"])
            if tx["m_upd"]:
                db.executemany(upd, tx["m_upd"])
        db.execute("COMMIT")
    seconds = time.perf_counter() - t0
    db.close()
    return seconds, facts


def _pg_ceiling(url: str, data: Any, txs: Any, with_members: bool) -> tuple[float, str]:
    tables = (*LOG_TABLES, "members") if with_members else LOG_TABLES
    with psycopg.connect(pg_dsn(url), autocommit=True) as db:
        db.execute("DROP SCHEMA IF EXISTS ceiling CASCADE")
        db.execute("CREATE SCHEMA ceiling")
        for t in tables:
            db.execute(f"CREATE TABLE ceiling.{t} (LIKE public.{t} INCLUDING ALL)")
        facts = ", ".join(
            f"{k}={db.execute(f'SHOW {k}').fetchone()[0]}"  # type: ignore[index]
            for k in ("synchronous_commit", "fsync")
        )
    sql = {
        t: f"INSERT INTO ceiling.{t} ({', '.join(data[t][0])}) VALUES "
        f"({', '.join(['%s'] * len(data[t][0]))})"
        for t in tables
    }
    upd = ""
    if with_members:
        ucols = txs[0]["_upd_cols"]
        upd = (
            f"UPDATE ceiling.members SET {', '.join(c + ' = %s' for c in ucols)} "
            "WHERE tenant_id = %s AND no = %s"
        )
    with psycopg.connect(pg_dsn(url)) as db:
        t0 = time.perf_counter()
        for tx in txs:
            with db.cursor() as cur:
                for t in LOG_TABLES:
                    if tx[t]:
                        cur.executemany(sql[t], tx[t])
                if with_members:
                    if tx["m_ins"]:
                        cur.executemany(sql["members"], tx["m_ins"])
                    if tx["m_upd"]:
                        cur.executemany(upd, tx["m_upd"])
            db.commit()
        seconds = time.perf_counter() - t0
        db.execute("DROP SCHEMA ceiling CASCADE")
        db.commit()
    return seconds, facts


def ceiling(
    url: str, engine: Any, tid: int, groups: Any, items: Any, with_members: bool
) -> tuple[float, int, str]:
    data = read_back(engine, tid)
    txs = transactions(data, groups, items, with_members)
    rows = sum(
        len(tx[t]) for tx in txs for t in ("ledger_tx", "transfers", "grants", "m_ins", "m_upd")
    )
    if is_sqlite_url(url):
        src = sqlite_path(url)
        seconds, facts = _sqlite_ceiling(src, src + ".ceiling", data, txs, with_members)
        remove_sqlite(src + ".ceiling")
    else:
        seconds, facts = _pg_ceiling(url, data, txs, with_members)
    return seconds, rows, facts


# ----------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="purchases (default 100,000)")
    ap.add_argument("--members", type=int, default=20_000, help="members (default 20,000)")
    ap.add_argument("--batch", type=int, default=5_000, help="purchases per submit (default 5000)")
    ap.add_argument(
        "--db",
        help="database URL (default: a fresh SQLite file in a temp dir); "
        "e.g. postgresql://postgres@127.0.0.1:5432/bench",
    )
    ap.add_argument("--dir", help="directory for the default SQLite file")
    ap.add_argument("--seed", type=int, default=20251125)
    ap.add_argument(
        "--quick", action="store_true", help="10,000 purchases by 2,000 members (CI smoke)"
    )
    ap.add_argument("--no-ceiling", action="store_true", help="skip the raw ceiling")
    ap.add_argument("--profile", metavar="FILE", help="cProfile the submit loop into FILE")
    ap.add_argument("--sql-timing", action="store_true", help="print SQL time per statement shape")
    ap.add_argument("--keep", action="store_true", help="keep the SQLite files")
    args = ap.parse_args()
    if args.quick:
        args.n, args.members = 10_000, min(args.members, 2_000)

    print_facts("machine", machine_facts())
    print_facts("code measured", source_facts())
    url = prepare_url(args.db, "settlement.db", args.dir)
    t0 = time.perf_counter()
    items, info = workload(args.n, args.members, args.seed)
    gen_s = time.perf_counter() - t0
    n_tx = -(-args.n // args.batch)
    print_facts(
        "workload",
        [
            ("purchases", fmt_int(args.n)),
            (
                "members",
                f"{args.members:,} ({info['referred']:,} with a referrer, "
                f"{FOUNDERS} founders without)",
            ),
            (
                "amounts",
                f"whole fen, uniform in [9.90, 999.00]; total {info['amount_total']:,} CNY",
            ),
            ("batch", f"{args.batch:,} purchases per Ledger.submit -> {n_tx} transactions"),
            ("seed", str(args.seed)),
            ("generated in", f"{gen_s:.2f} s (not timed below)"),
        ],
    )

    r = run_engine(url, items, args.batch, args.profile, args.sql_timing)
    engine, tid, seconds = r["engine"], r["tid"], r["seconds"]
    rows = count_rows(engine, tid)
    lat = sorted(r["lat"])
    applied = r["statuses"]["applied"]
    ledger_rows = rows["ledger_tx"] + rows["transfers"] + rows["grants"]
    print("== engine: Ledger.submit")
    print(f"  schema + tenant setup      {r['setup_s']:.2f} s (not timed)")
    print(f"  outcomes                   {dict(r['statuses'])}")
    for msg, k in r["rejects"].most_common(5):
        print(f"    rejected x{k}: {msg}")
    print(
        f"  exits during settlement    {r['exits']:,} (members marked exited: {rows['exited']:,})"
    )
    print(
        f"  total                      {seconds:.2f} s wall, {r['cpu']:.2f} s CPU of this process"
    )
    print(f"  throughput                 {args.n / seconds:,.0f} purchases/s")
    print(
        f"  per submit ({len(lat)} x {args.batch:,}) min {lat[0]:.3f} s, "
        f"median {statistics.median(lat):.3f} s, max {lat[-1]:.3f} s"
    )
    print(
        f"  rows written               ledger_tx {rows['ledger_tx']:,} + transfers "
        f"{rows['transfers']:,} + grants {rows['grants']:,} = {ledger_rows:,} "
        f"({ledger_rows / seconds:,.0f} rows/s); members {rows['members']:,}"
    )
    ok = check(engine, r["ledger"], tid)
    ok = ok and applied == args.n and rows["ledger_tx"] == applied and rows["grants"] == applied

    if not args.no_ceiling:
        print(
            "== raw ceiling: plain driver executemany of the same rows, same DDL, same "
            f"durability settings, {len(r['groups'])} transactions"
        )
        for with_members, label in (
            (False, "ledger_tx + transfers + grants"),
            (True, "the same + members insert/update"),
        ):
            c_s, c_rows, facts = ceiling(url, engine, tid, r["groups"], items, with_members)
            print(f"  [{label}]  ({facts})")
            print(
                f"    {c_rows:,} rows in {c_s:.2f} s = {c_rows / c_s:,.0f} rows/s "
                f"= {args.n / c_s:,.0f} purchases/s equivalent"
            )
            print(
                f"    engine / ceiling time    {seconds / c_s:.1f}x "
                f"(engine reaches {100 * c_s / seconds:.0f}% of the ceiling)"
            )
    engine.dispose()
    if is_sqlite_url(url) and not args.keep and args.db is None:
        discard_sqlite(url)
    print("== result: " + ("correct" if ok else "INCORRECT (see above)"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
