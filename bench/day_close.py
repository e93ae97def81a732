"""Day close (docs/RULES.md R9) over a million holders: water-filled dividends, then exits (R7).

Run:  .venv/bin/python bench/day_close.py [--holders 1000000] [--capped 0.10] [--db URL]
                                          [--tracemalloc] [--profile FILE]

Each phase runs in its own fresh interpreter, so one phase's memory never shows in another's
peak:

1. setup: ``Ledger.create_tenant``, then the holders are inserted straight into ``members``
   (executemany on SQLite, COPY on PostgreSQL) as integer atoms, and the system balances are set
   so the ledger sums to zero: ``pool`` backs the points at a price of 2 CNY/EP, ``issuance``
   owes every point, ``dividend_fund`` holds today's fund, ``world`` owes both.
2. baseline: the pure domain ``water_fill`` alone on the same holders (loading them is timed
   separately).
3. close: ``Ledger.submit(tid, [("close:bench", CloseDay("bench"))])`` timed, with
   ``ru_maxrss`` (peak RSS of the process, interpreter and imports included) read right after.
4. with --tracemalloc, a second fresh database and a close under tracemalloc (slower), for the
   peak of Python allocations alone.

The data.  EP per holder is log-uniform in [0.1, 398] EP (about 48 million EP in all, inside
the 100 million supply).  Every holder's exit trigger quota/EP is above the price (a valid state:
nobody is due before the close).  A share ``--capped`` of holders has nearly used up its quota
(quota/EP in [1.01, 1.4] x price); the others have quota/EP in [3, 10] x price.  The fund is
sized so the water level is 1.5 x price per EP: exactly the nearly-used-up holders are capped.
Capping at all needs a level above the price (quota > holdings value always, by R7), i.e. a
day's fund larger than the pool, as in a young platform.  A capped holder's quota ends at 0, so
R7 then force-sells all of them: the close measures those exits too.  The others keep a trigger
of at least 1.5 x price, so the price rise from the exits (about 1%) cascades to nobody.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import subprocess
import sys
import time
import tracemalloc
from array import array
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sqlalchemy import text

from _common import (
    SqlTimer,
    cpu_seconds,
    discard_sqlite,
    engine_facts,
    is_sqlite_url,
    machine_facts,
    maxrss_mib,
    maybe_profile,
    prepare_url,
    print_facts,
    remove_sqlite,
    rss_mib,
    source_facts,
    sqlite_path,
)
from tokenmall.domain import dividends
from tokenmall.domain.dividends import water_fill
from tokenmall.domain.economy import CloseDay
from tokenmall.service.ledger import Ledger
from tokenmall.store.db import create_db_engine, migrate

CNY = 10**4  # atoms per CNY (and SP)
EP = 10**8  # atoms per EP
FEN = 100  # atoms per fen
PRICE = 2  # CNY per EP before the close
LEVEL = 3  # water level, CNY per EP: 1.5 x price
TENANT = "bench"
COLS = (
    "tenant_id",
    "no",
    "code",
    "referrer",
    "ep",
    "sp",
    "quota",
    "spent",
    "dividends",
    "ep_debt",
    "exited",
    "trigger",
)
CHUNK = 100_000


def result(obj: dict[str, Any]) -> None:
    print("RESULT " + json.dumps(obj), flush=True)


# ----------------------------------------------------------------------------- phase: setup


def holder_rows(tid: int, n: int, capped: float, seed: int, acc: dict[str, int]):
    rng = random.Random(seed)
    for no in range(1, n + 1):
        ep = int(10 ** rng.uniform(-1.0, 2.6) * EP)
        is_capped = rng.random() < capped
        c = PRICE * (rng.uniform(1.01, 1.4) if is_capped else rng.uniform(3.0, 10.0))
        quota = -(-int(c * ep * CNY // EP) // FEN) * FEN  # whole fen, rounded up: trigger >= c
        acc["ep"] += ep
        if is_capped:
            acc["capped"] += 1
            acc["capped_quota"] += quota
        else:
            acc["free_ep"] += ep
        yield (tid, no, f"h{no}", None, ep, 0, quota, quota, 0, 0, False, (quota / CNY) / (ep / EP))


def phase_setup(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    engine = create_db_engine(args.db)
    migrate(engine)
    ledger = Ledger(engine)
    tid = ledger.create_tenant(TENANT)
    acc = {"ep": 0, "capped": 0, "capped_quota": 0, "free_ep": 0}
    rows = holder_rows(tid, args.holders, args.capped, args.seed, acc)
    if is_sqlite_url(args.db):
        sql = f"INSERT INTO members ({', '.join(COLS)}) VALUES ({', '.join('?' * len(COLS))})"
        with engine.begin() as conn:
            while True:
                part = [r for _, r in zip(range(CHUNK), rows, strict=False)]
                if not part:
                    break
                conn.exec_driver_sql(sql, part)
    else:
        raw = engine.raw_connection()
        try:
            cur = raw.driver_connection.cursor()  # type: ignore[union-attr]
            with cur.copy(f"COPY members ({', '.join(COLS)}) FROM STDIN") as cp:
                for r in rows:
                    cp.write_row(r)
            raw.commit()
        finally:
            raw.close()
    pool = PRICE * acc["ep"] * CNY // EP
    fund = acc["capped_quota"] + LEVEL * acc["free_ep"] * CNY // EP
    with engine.begin() as conn:
        for account, asset, bal in (
            ("pool", "CNY", pool),
            ("dividend_fund", "CNY", fund),
            ("world", "CNY", -(pool + fund)),
            ("issuance", "EP", -acc["ep"]),
        ):
            conn.execute(
                text(
                    "UPDATE accounts SET balance = :b WHERE tenant_id = :t AND account = :a "
                    "AND asset = :s"
                ),
                {"b": bal, "t": tid, "a": account, "s": asset},
            )
        conn.execute(
            text("UPDATE tenant_state SET member_count = :n WHERE tenant_id = :t"),
            {"n": args.holders, "t": tid},
        )
    if is_sqlite_url(args.db):
        facts = engine_facts(engine)
        engine.dispose()
        db = sqlite3.connect(sqlite_path(args.db), isolation_level=None)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        size = Path(sqlite_path(args.db)).stat().st_size
    else:
        facts = engine_facts(engine)
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE members")
            conn.commit()
            size = conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar()
    result(
        {
            "seconds": time.perf_counter() - t0,
            "fund": fund,
            "pool": pool,
            "ep": acc["ep"],
            "capped": acc["capped"],
            "bytes": size,
            "facts": facts,
        }
    )


# ----------------------------------------------------------------------------- phase: baseline


def phase_baseline(args: argparse.Namespace) -> None:
    engine = create_db_engine(args.db)
    t0 = time.perf_counter()
    with engine.connect() as conn:
        tid = conn.execute(text("SELECT id FROM tenants WHERE code = :c"), {"c": TENANT}).scalar()
        fund = conn.execute(
            text(
                "SELECT balance FROM accounts WHERE tenant_id = :t AND account = 'dividend_fund' "
                "AND asset = 'CNY'"
            ),
            {"t": tid},
        ).scalar()
        holders = [
            tuple(r)
            for r in conn.exec_driver_sql(
                f"SELECT no, ep, quota FROM members WHERE tenant_id = {int(tid)} "
                "AND ep > 0 AND quota > 0"
            )
        ]
        conn.rollback()
    load_s = time.perf_counter() - t0
    quota = {no: q for no, _, q in holders}
    rss0 = rss_mib()
    t0 = time.perf_counter()
    pays, paid = water_fill(int(fund), holders, FEN)
    fill_s = time.perf_counter() - t0
    cols_s = None
    columns = getattr(dividends, "water_fill_columns", None)  # the form the close uses, if any
    if columns is not None:
        eps, quotas = array("q", (h[1] for h in holders)), array("q", (h[2] for h in holders))
        t0 = time.perf_counter()
        cpays, cpaid = columns(int(fund), eps, quotas, FEN)
        cols_s = time.perf_counter() - t0
        if cpaid != paid or sum(1 for p in cpays if p) != len(pays):
            raise SystemExit("water_fill_columns disagrees with water_fill")
    result(
        {
            "load_s": load_s,
            "fill_s": fill_s,
            "cols_s": cols_s,
            "holders": len(holders),
            "recipients": len(pays),
            "paid": paid,
            "capped": sum(1 for no, p in pays if p == quota[no]),
            "rss_before_fill": rss0,
            "maxrss": maxrss_mib(),
        }
    )


# ----------------------------------------------------------------------------- phase: close


def phase_close(args: argparse.Namespace) -> None:
    engine = create_db_engine(args.db)
    ledger = Ledger(engine)
    tid = ledger.tenant_id(TENANT)
    timer = SqlTimer(engine) if args.sql_timing else None
    rss0, maxrss0 = rss_mib(), maxrss_mib()
    if args.tracemalloc:
        tracemalloc.start()
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    with maybe_profile(args.profile):
        outs = ledger.submit(tid, [("close:bench", CloseDay("bench"))])
    seconds = time.perf_counter() - t0
    cpu = cpu_seconds() - cpu0
    maxrss = maxrss_mib()
    traced = tracemalloc.get_traced_memory()[1] / 2**20 if args.tracemalloc else None
    tracemalloc.stop()
    if timer:
        timer.report()
        sys.stdout.flush()
    out = outs[0]
    figs = (out.result or {}).get("figures", {})
    # checks, after the measurement
    again = ledger.submit(tid, [("close:bench", CloseDay("bench"))])[0]
    chain_break = ledger.verify_chain(tid)  # every leaf and chain hash, transfers included
    with engine.connect() as conn:
        t = int(tid)
        sums: dict[str, int] = {}
        for asset, s in conn.exec_driver_sql(
            f"SELECT asset, SUM(balance) FROM accounts WHERE tenant_id = {t} GROUP BY asset"
        ):
            sums[asset] = sums.get(asset, 0) + int(s)
        ep, sp, div, paid_n, min_q, exited = conn.exec_driver_sql(
            "SELECT SUM(ep), SUM(sp), SUM(dividends), SUM(CASE WHEN dividends > 0 THEN 1 ELSE 0 "
            f"END), MIN(quota), SUM(CASE WHEN exited THEN 1 ELSE 0 END) FROM members "
            f"WHERE tenant_id = {t}"
        ).one()
        conn.rollback()
    sums["EP"] = sums.get("EP", 0) + int(ep)
    sums["SP"] = sums.get("SP", 0) + int(sp)
    result(
        {
            "status": out.status,
            "error": out.error,
            "seconds": seconds,
            "cpu": cpu,
            "rss_before": rss0,
            "maxrss_before": maxrss0,
            "maxrss": maxrss,
            "traced_peak": traced,
            "paid": figs.get("paid"),
            "recipients": figs.get("recipients"),
            "exits": figs.get("exits"),
            "price_after": (out.result or {}).get("price"),
            "replay_status": again.status,
            "chain_break": chain_break,
            "asset_sums": sums,
            "dividends_atoms": int(div),
            "members_paid": int(paid_n),
            "min_quota": int(min_q),
            "exited": int(exited),
        }
    )


# ----------------------------------------------------------------------------- orchestration


def child(args: argparse.Namespace, phase: str, *extra: str) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--phase",
        phase,
        "--db",
        args.db,
        "--holders",
        str(args.holders),
        "--capped",
        str(args.capped),
        "--seed",
        str(args.seed),
        *extra,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    res = None
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            res = json.loads(line[7:])
        else:
            print(line)
    if proc.returncode != 0 or res is None:
        print(proc.stderr, file=sys.stderr)
        raise SystemExit(f"phase {phase} failed (exit {proc.returncode})")
    return res


def mib(x: float) -> str:
    return f"{x:,.0f} MiB"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--holders", type=int, default=1_000_000)
    ap.add_argument(
        "--capped",
        type=float,
        default=0.10,
        help="share of holders whose quota is nearly used up (capped, then exit)",
    )
    ap.add_argument("--db", help="database URL (default: a fresh SQLite file in a temp dir)")
    ap.add_argument("--dir", help="directory for the default SQLite file")
    ap.add_argument("--seed", type=int, default=20251125)
    ap.add_argument(
        "--tracemalloc",
        action="store_true",
        help="also run a second close under tracemalloc (its own fresh database)",
    )
    ap.add_argument("--profile", metavar="FILE", help="cProfile the close into FILE")
    ap.add_argument(
        "--sql-timing", action="store_true", help="print the close's SQL time per statement shape"
    )
    ap.add_argument("--keep", action="store_true", help="keep the SQLite file")
    ap.add_argument("--phase", choices=("setup", "baseline", "close"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        {"setup": phase_setup, "baseline": phase_baseline, "close": phase_close}[args.phase](args)
        return 0

    print_facts("machine", machine_facts())
    print_facts("code measured", source_facts())
    sys.stdout.flush()
    own_db = args.db is None
    args.db = prepare_url(args.db, "day_close.db", args.dir)
    su = child(args, "setup")
    print_facts(
        "engine database (read back from a pooled connection)", [tuple(x) for x in su["facts"]]
    )
    print_facts(
        "state built (setup, not timed below)",
        [
            (
                "holders",
                f"{args.holders:,} ({su['capped']:,} = {su['capped'] / args.holders:.1%} "
                "with a nearly used-up quota)",
            ),
            ("points", f"{su['ep'] / EP:,.2f} EP, pool {su['pool'] / CNY:,.2f} CNY (price 2)"),
            ("dividend fund", f"{su['fund'] / CNY:,.2f} CNY (water level 3 CNY/EP)"),
            ("setup time", f"{su['seconds']:.1f} s; database {su['bytes'] / 2**20:,.0f} MiB"),
        ],
    )

    bl = child(args, "baseline")
    print("== baseline: domain water_fill alone, same holders, own process")
    print(f"  load {bl['holders']:,} holders   {bl['load_s']:.2f} s (not part of the fill)")
    print(
        f"  water_fill             {bl['fill_s']:.2f} s -> {bl['recipients']:,} pays, "
        f"{bl['capped']:,} capped, paid {bl['paid'] / CNY:,.2f} CNY"
    )
    if bl.get("cols_s") is not None:
        print(
            f"  water_fill_columns     {bl['cols_s']:.2f} s on array('q') columns (the form "
            "the ledger's close calls; same pays)"
        )
    print(f"  RSS before the fill {mib(bl['rss_before_fill'])}, peak RSS {mib(bl['maxrss'])}")

    extra = ["--profile", args.profile] if args.profile else []
    cl = child(args, "close", *extra, *(["--sql-timing"] if args.sql_timing else []))
    ok = report_close(cl, bl, su, "close: Ledger.submit([CloseDay]) in its own process")

    if args.tracemalloc:
        if is_sqlite_url(args.db):
            remove_sqlite(sqlite_path(args.db))
        else:
            prepare_url(args.db, "", None)
        child(args, "setup")
        tm = child(args, "close", "--tracemalloc")
        print(
            f"== close under tracemalloc (fresh copy of the same state): "
            f"{tm['seconds']:.2f} s (slowed by tracing), Python allocations peak "
            f"{mib(tm['traced_peak'])}, ru_maxrss {mib(tm['maxrss'])}"
        )
        ok = ok and tm["status"] == "applied"
    if own_db and not args.keep:
        discard_sqlite(args.db)
    print("== result: " + ("correct" if ok else "INCORRECT (see above)"))
    return 0 if ok else 1


def report_close(cl: dict[str, Any], bl: dict[str, Any], su: dict[str, Any], title: str) -> bool:
    print(f"== {title}")
    print(f"  outcome                {cl['status']} {cl['error'] or ''}".rstrip())
    print(
        f"  time                   {cl['seconds']:.2f} s wall   (goal < 15 s: "
        f"{'met' if cl['seconds'] < 15 else 'MISSED'}); {cl['cpu']:.2f} s CPU of this process"
    )
    print(
        f"  peak RSS (ru_maxrss)   {mib(cl['maxrss'])}   (goal < 512 MB = 488 MiB: "
        f"{'met' if cl['maxrss'] * 2**20 < 512e6 else 'MISSED'}); RSS before the close "
        f"{mib(cl['rss_before'])}"
    )
    print(f"  paid / recipients      {cl['paid']} CNY to {cl['recipients']} holders")
    print(
        f"  exits after the pay    {cl['exits']} (members marked exited: {cl['exited']:,}); "
        f"price after {cl['price_after']}"
    )
    paid_atoms = int(Decimal(cl["paid"] or "0").scaleb(4))
    checks = {
        "same pay-out as the baseline water_fill": paid_atoms == bl["paid"]
        and int(cl["recipients"] or -1) == bl["recipients"],
        "balances sum to zero per asset": all(v == 0 for v in cl["asset_sums"].values()),
        "sum of members' dividends == paid": cl["dividends_atoms"] == bl["paid"],
        "no quota below zero": cl["min_quota"] >= 0,
        "exits == capped holders": int(cl["exits"] or -1) == bl["capped"] == su["capped"],
        "second close with the same key is a replay": cl["replay_status"] == "replayed",
        "the log's hash chain verifies": cl["chain_break"] is None,
    }
    print("== correctness")
    for k, v in checks.items():
        print(f"  {k:<45} {'OK' if v else 'FAILED'}")
    print(f"  asset sums (atoms)     {cl['asset_sums']}")
    return cl["status"] == "applied" and all(checks.values())


if __name__ == "__main__":
    raise SystemExit(main())
