"""The paid-order flow in process, without HTTP: CPU per paid order, and its same-run ceiling.

Each order is what a buyer does: create it (stock reserved), start a sandbox payment, pay it
at the sandbox (the signed notification is verified and applied: ``Pay``, and ``Settle`` too
with ``--settle-days 0``), read it back.  Process CPU time is the figure to compare between
commits: wall time on a shared machine moves with the other processes, CPU time much less.

The ceiling is the same number of durable SQLite commits done bare (one small insert each,
four per order as the flow commits: the order, the payment row, the notification's unit of
work, and one more for the sandbox's intent), so the figure says how much of an order is
tokenmall's own work.

    .venv/bin/python bench/order_flow.py [--orders 400] [--settle-days 7]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

from _common import machine_facts, print_facts, source_facts
from tokenmall.domain.params import TenantParams
from tokenmall.service import catalog, members
from tokenmall.service.ledger import Ledger
from tokenmall.service.orders import OrderService, PaymentHub
from tokenmall.store.db import create_db_engine, migrate

MEMBERS = 50
COMMITS_PER_ORDER = 4


def _flow(orders: int, settle_days: Decimal, directory: Path) -> tuple[float, float]:
    engine = create_db_engine(f"sqlite:///{directory / 'flow.db'}")
    migrate(engine)
    code = "t-" + uuid.uuid4().hex[:8]
    tid = Ledger(engine).create_tenant(code, TenantParams(settle_days=settle_days))
    with engine.begin() as conn:
        m = catalog.create_merchant(conn, tid, code="m", name="M")
        p = catalog.create_product(conn, tid, merchant_id=m.id, name="Tea")
        sku = catalog.create_sku(
            conn, tid, product_id=p.id, name="250g", price=Decimal(100), stock=10_000_000
        )
        for i in range(MEMBERS):
            members.create_member(conn, tid, f"b{i}")
    svc = OrderService(engine, PaymentHub("bench-secret-" + "x" * 32))

    def one(i: int) -> None:
        order = svc.create_order(tid, member=f"b{i % MEMBERS}", lines=[(sku.id, 1)])
        pay = svc.start_payment(tid, code, order.ref)
        assert pay.intent_id is not None
        svc.complete_sandbox(tid, code, pay.intent_id)
        assert svc.get_order(tid, order.ref).status in ("paid", "settled")

    for i in range(MEMBERS):  # warm up: every member has paid once
        one(i)
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(orders):
        one(i)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    engine.dispose()
    return cpu, wall


def _ceiling(commits: int, directory: Path) -> tuple[float, float]:
    db = sqlite3.connect(directory / "ceiling.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(commits):
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t (v) VALUES (?)", (f"row {i}",))
        db.execute("COMMIT")
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    db.close()
    return cpu, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=400)
    ap.add_argument("--settle-days", default="7")
    args = ap.parse_args()
    print_facts("machine", machine_facts())
    print_facts("source", source_facts())
    with tempfile.TemporaryDirectory() as d:
        cpu, wall = _flow(args.orders, Decimal(args.settle_days), Path(d))
        c_cpu, c_wall = _ceiling(args.orders * COMMITS_PER_ORDER, Path(d))
    n = args.orders
    print(f"== paid orders in process (settle_days {args.settle_days}, {n} orders)")
    print(f"  CPU per paid order       {cpu / n * 1000:8.2f} ms")
    print(f"  wall per paid order      {wall / n * 1000:8.2f} ms   ({n / wall:,.1f} orders/s)")
    print(f"== ceiling: {COMMITS_PER_ORDER} bare durable SQLite commits per order, same run")
    print(f"  CPU per order            {c_cpu / n * 1000:8.2f} ms")
    print(f"  wall per order           {c_wall / n * 1000:8.2f} ms   ({n / c_wall:,.1f} orders/s)")
    print(f"  the flow runs at {c_wall / wall:.0%} of the ceiling's rate")


if __name__ == "__main__":
    main()
