"""Settlement with every marketing model on against the engine alone, in the same run.

Run:  .venv/bin/python bench/models_settlement.py [--orders 2000] [--members 500]
                                                  [--block 100] [--db URL] [--profile FILE]

What is measured: settling paid orders one per unit of work, as the order flow settles them
(``Settle`` through the ledger, then ``OrderSettled`` emitted to the composition root's
handler table), on two tenants of one fresh database:

* ``engine alone``: a tenant with no marketing model on (the handlers look that up and stop);
* ``models on``: a tenant with all five models on (distribution, refer3, chain21 with the
  compliance override, queue_free, rebate), their state in ``marketing_state``, every reward a
  ledger command and a ``marketing_rewards`` row.

Both tenants get the same members (a random referral tree), the same amounts and the same
payments (``Pay`` into escrow, applied beforehand and not timed).  The two are measured in
alternating blocks of ``--block`` orders, so a machine that slows down or speeds up during the
run weighs on both alike.  Printed: orders per second (wall) and CPU per order of each, and
the ratio (goal: models on at least 50% of the engine alone).  Then one day close of each
tenant (rebate releases one payment per settled order).  Correctness after the run, not timed:
the books of both tenants balance and no reward key appears twice.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import time
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sqlalchemy import func, select

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
)
from tokenmall import bootstrap
from tokenmall.domain.economy import CloseDay, Command, Join, Pay, Settle
from tokenmall.domain.events import DayClosed, OrderSettled
from tokenmall.service import accounting, marketing, members
from tokenmall.service.ledger import Ledger
from tokenmall.service.messagebus import EventBus
from tokenmall.service.uow import Store
from tokenmall.store import schema as s
from tokenmall.store.db import create_db_engine, migrate

MODELS: dict[str, dict[str, str]] = {
    "distribution": {},
    "refer3": {},
    "chain21": {},
    "queue_free": {},
    "rebate": {},
}
FOUNDERS = 3


def _tenant(
    store: Store, codes: list[str], refs: list[str | None], models: dict[str, dict[str, str]]
) -> int:
    tid = Ledger(store.engine).create_tenant(f"bench-{uuid.uuid4().hex[:8]}")
    with store.tenant_tx(tid, lock=False) as tx:
        invites: dict[str, str] = {}
        for code, ref in zip(codes, refs, strict=True):
            profile = members.register(tx, code, invite_code=None if ref is None else invites[ref])
            invites[code] = profile.invite_code
    joins: list[tuple[str, Command]] = [
        (f"join:{c}:{r}", Join(c, r)) for c, r in zip(codes, refs, strict=True) if r
    ]
    store.ledger.submit(tid, joins)
    if models:
        with store.tenant_tx(tid) as tx:
            marketing.set_models(tx, models, actor="bench", compliance_override="benchmark")
    return tid


def _settle(store: Store, tid: int, orders: list[tuple[str, str, Decimal]]) -> None:
    for ref, member, amount in orders:
        with store.tenant_tx(tid) as tx:
            tx.apply_one(f"settle:{ref}", Settle(ref))
            tx.emit(OrderSettled(ref, member, amount, time.time()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--orders", type=int, default=2_000, help="orders per tenant (default 2000)")
    ap.add_argument("--members", type=int, default=500, help="members (default 500)")
    ap.add_argument("--block", type=int, default=100, help="orders per alternating block")
    ap.add_argument("--db", help="database URL (default: a fresh SQLite file in a temp dir)")
    ap.add_argument("--dir", help="directory for the default SQLite file")
    ap.add_argument("--seed", type=int, default=20261206)
    ap.add_argument("--profile", metavar="FILE", help="cProfile the models-on blocks into FILE")
    ap.add_argument("--keep", action="store_true", help="keep the SQLite file")
    ap.add_argument(
        "--models", default=",".join(MODELS), help="models to switch on (default: all five)"
    )
    args = ap.parse_args()

    print_facts("machine", machine_facts())
    print_facts("code measured", source_facts())
    url = prepare_url(args.db, "models_settlement.db", args.dir)
    engine = create_db_engine(url)
    migrate(engine)
    print_facts("database (read back from a pooled connection)", engine_facts(engine))
    store = Store(engine, bus=EventBus(bootstrap.event_handlers()))

    rng = random.Random(args.seed)
    codes = [f"m{i:05d}" for i in range(args.members)]
    refs: list[str | None] = [
        None if i < FOUNDERS else codes[rng.randrange(i)] for i in range(args.members)
    ]
    work = [
        (f"o{i:06d}", codes[rng.randrange(args.members)], Decimal(rng.randint(990, 99900)) / 100)
        for i in range(args.orders)
    ]
    chosen = {name: MODELS[name] for name in args.models.split(",")}
    alone = _tenant(store, codes, refs, {})
    with_models = _tenant(store, codes, refs, chosen)
    for tid in (alone, with_models):
        for i in range(0, len(work), 1000):
            store.ledger.submit(
                tid,
                [(f"pay:{r}", Pay(r, m, cny=a)) for r, m, a in work[i : i + 1000]],
            )
    print_facts(
        "workload",
        [
            ("orders per tenant", fmt_int(args.orders)),
            ("members", f"{args.members:,} ({args.members - FOUNDERS:,} referred)"),
            ("block", f"{args.block} orders, alternating engine alone / models on"),
            ("models on", ", ".join(chosen) + " (chain21 with the compliance override)"),
        ],
    )

    wall = {"alone": 0.0, "models": 0.0}
    cpu = {"alone": 0.0, "models": 0.0}
    blocks: dict[str, list[float]] = {"alone": [], "models": []}
    for i in range(0, len(work), args.block):
        chunk = work[i : i + args.block]
        for name, tid in (("alone", alone), ("models", with_models)):
            c0, t0 = cpu_seconds(), time.perf_counter()
            if name == "models":
                with maybe_profile(args.profile if i == 0 else None):
                    _settle(store, tid, chunk)
            else:
                _settle(store, tid, chunk)
            dt_wall = time.perf_counter() - t0
            wall[name] += dt_wall
            cpu[name] += cpu_seconds() - c0
            blocks[name].append(len(chunk) / dt_wall)

    n = len(work)
    rate = {k: n / v for k, v in wall.items()}
    rows = []
    for name, label in (("alone", "engine alone"), ("models", "models on")):
        median = statistics.median(blocks[name])
        rows.append(
            (
                label,
                f"{rate[name]:,.0f} orders/s (median block {median:,.0f}), "
                f"{1000 * cpu[name] / n:.2f} ms CPU per order, {wall[name]:.2f} s wall",
            )
        )
    ratio = rate["models"] / rate["alone"]
    per_cpu = cpu["alone"] / cpu["models"]
    rows.append(("ratio", f"models on = {ratio:.0%} of the engine alone (goal >= 50%)"))
    rows.append(("ratio of CPU per order", f"{per_cpu:.0%} (what a quiet machine would show)"))
    print_facts("settlement, one order per unit of work", rows)

    # one day close each: rebate pays every active grant
    day = dt.date(2030, 1, 1).isoformat()
    closes = []
    for name, tid in (("engine alone", alone), ("models on", with_models)):
        t0 = time.perf_counter()
        with store.tenant_tx(tid) as tx:
            tx.apply_one(f"close:{day}", CloseDay(day))
            tx.emit(DayClosed(day, Decimal(0), 0, 0))
        closes.append((name, f"{time.perf_counter() - t0:.2f} s"))
    print_facts("one day close (rebate releases a payment per settled order)", closes)

    r = s.marketing_rewards.c
    with engine.connect() as conn:
        for tid in (alone, with_models):
            sheet = accounting.balance_sheet(conn, tid)
            assert sheet.ok, sheet.broken
        keys = Counter(
            tuple(row)
            for row in conn.execute(
                select(r.order_ref, r.model, r.beneficiary, r.step).where(
                    r.tenant_id == with_models
                )
            )
        )
        paid = conn.execute(
            select(r.model, func.count(), func.sum(r.amount))
            .where(r.tenant_id == with_models)
            .group_by(r.model)
            .order_by(r.model)
        ).all()
    assert not keys or max(keys.values()) == 1, "a reward key paid twice"
    print_facts(
        "checked after the run",
        [
            ("books", "both tenants balance (every identity of the balance sheet)"),
            ("rewards", f"{sum(keys.values()):,} rows, each key once"),
            *[(m, f"{c:,} rewards, {Decimal(a) / 10_000:,.2f} SP") for m, c, a in paid],
        ],
    )
    engine.dispose()
    if is_sqlite_url(url) and not args.keep and args.db is None:
        discard_sqlite(url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
