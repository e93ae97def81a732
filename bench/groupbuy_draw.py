"""A lottery campaign's draw: G full groups of S places, k = G x win-ratio groups win.

Run:  .venv/bin/python bench/groupbuy_draw.py [--groups 10000] [--size 10] [--win-ratio 0.1]
                                              [--db URL] [--dir DIR] [--profile FILE]

What is measured: the wall and CPU time of one call, ``GroupBuys.draw_campaign``, on a fresh
database with durable commits (SQLite: WAL + synchronous=FULL, read back and printed): the
draw (sha256 tickets of every group), the winning groups' places confirmed (their escrow holds
released and, with a return window of 0 days, every confirmed order settled through the
ledger: R1 EP, pool, fund), and every other place refunded in full through the order flow's
refund (ledger ``Refund``, refund row, order refunded, stock back) with its compensation
(ledger ``RewardGrant``, one batch), the draw record and the next commitment; one
transaction, as the service runs it.

The set-up is not timed and is written in bulk, not through the HTTP flow (100,000 paid
places through the sandbox would take longer than the draw): members credited SP by the
ledger, then each place's order inserted as the service inserts it (held, paid from the
wallet in SP) and paid by the ledger's ``Pay`` in batches.  Paying in SP keeps the provider
out of the refunds (a CNY part would add one provider call per refund after the commit).

The ceiling, in the same run: every row the draw inserted (``ledger_tx``, ``transfers``,
``grants``, ``order_refunds``, the draw record) is inserted again with plain ``executemany``
into a fresh database with the same DDL and pragmas, and every row it updated (orders,
places, groups, members, the SKU, the system accounts) is updated again by primary key with
``executemany``, in one transaction.  The ratio draw / ceiling is printed (goal: >= 30%).

Checks after the run (not timed): each asset sums to zero, escrow is empty, the confirmed
and refunded orders are the winning and losing groups', the record verifies.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, update

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    cpu_seconds,
    discard_sqlite,
    engine_facts,
    fmt_int,
    is_sqlite_url,
    machine_facts,
    maybe_profile,
    prepare_url,
    print_facts,
    source_facts,
    sqlite_conn_facts,
    sqlite_path,
)
from tokenmall.domain import draw
from tokenmall.domain.commands import Join, Pay, RewardGrant
from tokenmall.domain.economy import Command
from tokenmall.domain.params import TenantParams
from tokenmall.service import catalog, members
from tokenmall.service.groupbuys import GroupBuys
from tokenmall.service.ledger import Ledger
from tokenmall.service.messagebus import EventBus
from tokenmall.service.orders import OrderService, PaymentHub
from tokenmall.service.uow import Store
from tokenmall.store import schema as s
from tokenmall.store.db import create_db_engine, migrate

PRICE_FEN = 7000
COMPENSATION = Decimal(10)
INSERTED = ("ledger_tx", "transfers", "grants", "order_refunds", "group_campaign_draws")
UPDATED = {  # table -> its key columns (the rows the draw rewrote)
    "orders": ("id",),
    "group_places": ("id",),
    "group_buys": ("id",),
    "members": ("tenant_id", "no"),
    "skus": ("id",),
    "accounts": ("tenant_id", "account", "asset"),
    "tenant_state": ("tenant_id",),
    "group_campaigns": ("id",),
}


def setup(url: str, groups: int, size: int, winners: int) -> dict[str, Any]:
    engine = create_db_engine(url)
    migrate(engine)
    bus = EventBus()
    orders = OrderService(
        engine, PaymentHub("bench-secret-0123456789abcdef0123"), store=Store(engine, bus=bus)
    )
    gbs = GroupBuys(orders)
    for kind, handlers in gbs.handlers().items():
        for h in handlers:
            bus.register(kind, h)
    ledger = orders.ledger
    tid = ledger.create_tenant("bench", TenantParams(settle_days=Decimal(0)))
    n_members = max(groups, size)
    places = groups * size
    t0 = time.perf_counter()
    with engine.begin() as conn:
        merchant = catalog.create_merchant(conn, tid, code="m", name="M")
        product = catalog.create_product(conn, tid, merchant_id=merchant.id, name="Tea")
        sku = catalog.create_sku(
            conn, tid, product_id=product.id, name="250g", price=Decimal(100), stock=places
        )
        catalog.reserve_stock(conn, tid, sku.id, places)  # what the places' orders reserved
        for i in range(n_members):
            members.create_member(conn, tid, f"m{i:06d}")
    gbs.create_campaign(tid, code="c1", winners=winners, actor="bench")
    gbs.create_offer(
        tid,
        actor="bench",
        code="lot",
        sku_id=sku.id,
        mode="lottery",
        price=Decimal(PRICE_FEN) / 100,
        size=size,
        campaign="c1",
        compensation=COMPENSATION,
    )
    # every member gets the SP for the places it pays (member j pays in `per` groups)
    per = places // n_members + 1
    grants: list[tuple[str, Command]] = [(f"join:{i}", Join(f"m{i:06d}")) for i in range(n_members)]
    grants += [
        (f"seed:{i}", RewardGrant(f"m{i:06d}", Decimal(PRICE_FEN * per) / 100, "bench"))
        for i in range(n_members)
    ]
    for lo in range(0, len(grants), 5000):
        for out in ledger.submit(tid, grants[lo : lo + 5000]):
            out.raise_if_rejected()
    now = time.time()
    with engine.begin() as conn:
        camp = conn.execute(
            select(s.group_campaigns).where(s.group_campaigns.c.tenant_id == tid)
        ).one()
        offer = conn.execute(select(s.group_offers).where(s.group_offers.c.tenant_id == tid)).one()
        conn.execute(
            update(s.group_campaigns).where(s.group_campaigns.c.id == camp.id).values(fills=groups)
        )
        conn.execute(
            insert(s.group_buys),
            [
                {
                    "tenant_id": tid,
                    "public_id": f"g{g:015x}",
                    "offer_id": offer.id,
                    "campaign_id": camp.id,
                    "leader": f"m{(g * size) % n_members:06d}",
                    "state": "full",
                    "opened_at": now,
                    "deadline": now + 86400,
                    "filled_at": now,
                    "fill_no": g + 1,
                }
                for g in range(groups)
            ],
        )
        gid = {
            r.public_id: r.id
            for r in conn.execute(
                select(s.group_buys.c.id, s.group_buys.c.public_id).where(
                    s.group_buys.c.tenant_id == tid
                )
            )
        }
        order_rows, refs = [], []
        for g in range(groups):
            for p in range(size):
                n = g * size + p
                ref = f"o{n:016x}"
                refs.append((ref, f"m{n % n_members:06d}", g, p))
                order_rows.append(
                    {
                        "tenant_id": tid,
                        "ref": ref,
                        "request_hash": f"group:{sku.id}:{PRICE_FEN}",
                        "member": f"m{n % n_members:06d}",
                        "status": "paid",
                        "total_fen": PRICE_FEN,
                        "refunded_fen": 0,
                        "paid_cny_fen": 0,
                        "paid_sp_fen": PRICE_FEN,
                        "created_at": now,
                        "expires_at": now + 1800,
                        "paid_at": now,
                        "hold": "group",
                    }
                )
        conn.execute(insert(s.orders), order_rows)
        oid = {
            r.ref: r.id
            for r in conn.execute(
                select(s.orders.c.id, s.orders.c.ref).where(s.orders.c.tenant_id == tid)
            )
        }
        conn.execute(
            insert(s.order_lines),
            [
                {
                    "tenant_id": tid,
                    "order_id": oid[ref],
                    "line_no": 1,
                    "sku_id": sku.id,
                    "product_id": product.id,
                    "merchant_id": merchant.id,
                    "name": "Tea / 250g",
                    "quantity": 1,
                    "unit_price_fen": PRICE_FEN,
                    "pool_unit_fen": None,
                    "fund_unit_fen": None,
                }
                for ref, _, _, _ in refs
            ],
        )
        conn.execute(
            insert(s.payments),
            [
                {
                    "tenant_id": tid,
                    "order_id": oid[ref],
                    "attempt": 1,
                    "provider": "wallet",
                    "provider_order_id": f"{ref}-1",
                    "cny_fen": 0,
                    "sp_fen": PRICE_FEN,
                    "status": "paid",
                    "refund_status": "none",
                    "created_at": now,
                    "updated_at": now,
                }
                for ref, _, _, _ in refs
            ],
        )
        pay_id = {
            r.order_id: r.id
            for r in conn.execute(
                select(s.payments.c.id, s.payments.c.order_id).where(s.payments.c.tenant_id == tid)
            )
        }
        conn.execute(
            s.orders.update()
            .where(s.orders.c.tenant_id == tid)
            .values(
                payment_id=select(s.payments.c.id)
                .where(s.payments.c.tenant_id == tid, s.payments.c.order_id == s.orders.c.id)
                .scalar_subquery()
            )
        )
        conn.execute(
            insert(s.group_places),
            [
                {
                    "tenant_id": tid,
                    "group_id": gid[f"g{g:015x}"],
                    "no": p + 1,
                    "member": m,
                    "order_ref": ref,
                    "status": "held",
                    "joined_at": now,
                    "paid_at": now,
                }
                for ref, m, g, p in refs
            ],
        )
    assert len(pay_id) == places
    pays: list[tuple[str, Command]] = [
        (f"pay:{ref}", Pay(ref, m, sp=Decimal(PRICE_FEN) / 100)) for ref, m, _, _ in refs
    ]
    for lo in range(0, len(pays), 5000):
        for out in ledger.submit(tid, pays[lo : lo + 5000]):
            out.raise_if_rejected()
    print(
        f"set-up: {fmt_int(places)} paid places in {fmt_int(groups)} full groups, "
        f"{time.perf_counter() - t0:.1f} s (not timed)"
    )
    return {"engine": engine, "gbs": gbs, "ledger": ledger, "tid": tid}


def snapshot_seq(engine: Any, tid: int) -> int:
    with engine.connect() as conn:
        return int(
            conn.exec_driver_sql(
                f"SELECT COALESCE(MAX(seq), 0) FROM ledger_tx WHERE tenant_id = {int(tid)}"
            ).scalar()
        )


def ceiling(url: str, tid: int, seq0: int, directory: str | None) -> dict[str, Any]:
    """The rows the draw wrote, written again by plain executemany (SQLite)."""
    src = sqlite3.connect(sqlite_path(url))
    path = Path(directory or Path(sqlite_path(url)).parent) / "ceiling.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    dst = sqlite3.connect(path, isolation_level=None)
    dst.execute("PRAGMA journal_mode=WAL")
    dst.execute("PRAGMA synchronous=FULL")
    tables = (*INSERTED, *UPDATED)
    for (sql,) in src.execute(
        "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND tbl_name IN ("
        + ",".join("?" * len(tables))
        + ")",
        tables,
    ):
        dst.execute(sql)
    inserted: dict[str, list[tuple[Any, ...]]] = {}
    where = {"ledger_tx": f"seq > {seq0}", "transfers": f"seq > {seq0}", "grants": f"seq > {seq0}"}
    for t in INSERTED:
        cols = [r[1] for r in src.execute(f"PRAGMA table_info({t})")]
        cond = where.get(t, "1=1")
        if t == "grants" and "seq" not in cols:
            cond = "1=0"
        inserted[t] = [
            tuple(r)
            for r in src.execute(
                f"SELECT {','.join(cols)} FROM {t} WHERE tenant_id = {tid} AND {cond}"
            )
        ]
    updated: dict[str, tuple[list[str], list[str], list[tuple[Any, ...]]]] = {}
    dst.execute("BEGIN")  # the rows to update, loaded first (not timed)
    for t, key in UPDATED.items():
        cols = [r[1] for r in src.execute(f"PRAGMA table_info({t})")]
        rows = [
            tuple(r)
            for r in src.execute(f"SELECT {','.join(cols)} FROM {t} WHERE tenant_id = {tid}")
        ]
        dst.executemany(
            f"INSERT INTO {t} ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})", rows
        )
        updated[t] = (cols, list(key), rows)
    dst.execute("COMMIT")
    src.close()
    print(f"ceiling database: {sqlite_conn_facts(dst)}")
    n_ins = sum(len(v) for v in inserted.values())
    n_upd = sum(len(v[2]) for v in updated.values())
    start, cpu0 = time.perf_counter(), cpu_seconds()
    dst.execute("BEGIN IMMEDIATE")
    for t, rows in inserted.items():
        if rows:
            cols = [r[1] for r in dst.execute(f"PRAGMA table_info({t})")]
            dst.executemany(
                f"INSERT INTO {t} ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})", rows
            )
    for t, (cols, key, rows) in updated.items():
        sets = [c for c in cols if c not in key]
        idx = {c: i for i, c in enumerate(cols)}
        dst.executemany(
            f"UPDATE {t} SET {','.join(f'{c} = ?' for c in sets)} WHERE "
            + " AND ".join(f"{k} = ?" for k in key),
            [tuple(r[idx[c]] for c in sets) + tuple(r[idx[k]] for k in key) for r in rows],
        )
    dst.execute("COMMIT")
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu0
    dst.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return {"seconds": seconds, "cpu": cpu, "inserted": n_ins, "updated": n_upd}


def check(engine: Any, ledger: Ledger, tid: int, record: dict[str, Any], size: int) -> None:
    bal = ledger.balances(tid)
    sums: dict[str, Decimal] = {}
    for (_a, asset), v in bal.items():
        sums[asset] = sums.get(asset, Decimal(0)) + v
    assert all(v == 0 for v in sums.values()), sums
    assert bal.get(("escrow", "CNY"), Decimal(0)) == 0, bal.get(("escrow", "CNY"))
    assert draw.verify(record) == record["winners"]
    with engine.connect() as conn:
        o = s.orders.c
        counts = dict(
            conn.execute(
                select(o.status, func.count()).where(o.tenant_id == tid).group_by(o.status)
            ).all()
        )
    won = len(record["winners"]) * size
    lost = (len(record["candidates"]) - len(record["winners"])) * size
    assert counts.get("settled", 0) == won, counts
    assert counts.get("refunded", 0) == lost, counts
    print(
        f"== correctness: each asset sums to zero, escrow empty, {fmt_int(won)} orders settled, "
        f"{fmt_int(lost)} refunded with compensation, the record verifies -> OK"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--groups", type=int, default=10_000)
    ap.add_argument("--size", type=int, default=10)
    ap.add_argument("--win-ratio", type=float, default=0.1)
    ap.add_argument("--db", default=None, help="a SQLite URL (default: a fresh temp file)")
    ap.add_argument("--dir", default=None)
    ap.add_argument("--profile", default=None)
    args = ap.parse_args()
    url = prepare_url(args.db, "groupbuy_draw.db", args.dir)
    if not is_sqlite_url(url):
        raise SystemExit("this benchmark's ceiling is written for SQLite; pass a sqlite:/// URL")
    print_facts("machine", machine_facts())
    print_facts("source", source_facts())
    winners = max(1, int(args.groups * args.win_ratio))
    env = setup(url, args.groups, args.size, winners)
    engine, gbs, ledger, tid = env["engine"], env["gbs"], env["ledger"], env["tid"]
    print_facts("engine database (read back from a pooled connection)", engine_facts(engine))
    seq0 = snapshot_seq(engine, tid)
    start, cpu0 = time.perf_counter(), cpu_seconds()
    with maybe_profile(args.profile):
        record = gbs.draw_campaign(tid, "c1")
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu0
    places = args.groups * args.size
    print(
        f"== the draw: {fmt_int(args.groups)} groups of {args.size} "
        f"({fmt_int(places)} places), {fmt_int(winners)} groups win"
    )
    print(
        f"  wall {seconds:.2f} s, CPU {cpu:.2f} s; {places / seconds:,.0f} places/s; "
        f"ledger transactions written: {fmt_int(snapshot_seq(engine, tid) - seq0)}"
    )
    check(engine, ledger, tid, record, args.size)
    ceil = ceiling(url, tid, seq0, args.dir)
    print(
        f"== ceiling (same run): {fmt_int(ceil['inserted'])} rows inserted and "
        f"{fmt_int(ceil['updated'])} rows updated by executemany in one transaction"
    )
    print(
        f"  wall {ceil['seconds']:.2f} s, CPU {ceil['cpu']:.2f} s; "
        f"{places / ceil['seconds']:,.0f} places/s"
    )
    print(
        f"== ratio: the draw runs at {100 * ceil['seconds'] / seconds:.1f}% of the ceiling "
        f"by wall time, {100 * ceil['cpu'] / cpu:.1f}% by CPU time (goal: at least 30%)"
    )
    engine.dispose()
    discard_sqlite(url)


if __name__ == "__main__":
    main()
