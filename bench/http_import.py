"""Orders per second through the integrators' batch endpoint, with the ledger-only baseline.

    .venv/bin/python bench/http_import.py                 # 20 batches of 5,000 over HTTP
    .venv/bin/python bench/http_import.py --batch 1000 --batches 50

1. A real server (``tokenmall serve``, one uvicorn process, 127.0.0.1, fresh SQLite file):
   one tenant; ``--batches`` requests of ``--batch`` paid orders each, posted one after the
   other by one client (one tenant's imports serialise on its ledger lock anyway), buyers
   drawn from ``--members`` codes, every 5th order with a referrer.  Figures: orders/s over the
   whole run, per-request latency, and where the time went (client, server CPU).
2. The baseline in the same run: the very same batches through ``Ledger.submit`` in this
   process on another fresh SQLite file, so the HTTP figure can be read as a ratio of what the
   engine itself does on this machine today.

Correctness is checked, not assumed: every item must be ``applied``, a replay of the first
batch must answer ``replayed`` for every item, and the ledger's hash chain must verify.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson

from _common import cpu_seconds, machine_facts, print_facts, source_facts
from _http import ADMIN_TOKEN, db_facts, latency_line, running_server
from tokenmall.service.imports import ImportItem, import_orders
from tokenmall.service.ledger import Ledger
from tokenmall.store.db import create_db_engine, migrate

TENANT = "bench-import"


def workload(batches: int, size: int, members: int, seed: int) -> list[list[dict[str, Any]]]:
    rng = random.Random(seed)
    out = []
    n = 0
    for _ in range(batches):
        batch = []
        for _ in range(size):
            buyer = rng.randrange(members)
            item: dict[str, Any] = {
                "external_id": f"ext-{n}",
                "member": f"m{buyer}",
                "amount": f"{rng.randrange(1000, 50000) / 100:.2f}",
            }
            if n % 5 == 0:
                # a buyer's referrer is fixed (links are permanent): the next member code
                item["referrer"] = f"m{(buyer + 1) % members}"
            batch.append(item)
            n += 1
        out.append(batch)
    return out


def run_http(batches: list[list[dict[str, Any]]], directory: Path) -> dict[str, Any]:
    with running_server(directory / "http-import.db", scheduler=False) as server:
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        with httpx.Client(base_url=server.base, timeout=120) as client:
            client.post(
                "/v1/tenants", json={"code": TENANT, "params": {"settle_days": "0"}}, headers=admin
            ).raise_for_status()
            key = client.post(
                f"/v1/tenants/{TENANT}/api-keys",
                json={"scope": "operator", "name": "bench"},
                headers=admin,
            ).json()["key"]
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            url = f"/v1/tenants/{TENANT}/orders/import"
            bodies = [orjson.dumps({"orders": b}) for b in batches]
            latencies = []
            applied = 0
            server_cpu0, client_cpu0 = server.cpu(), cpu_seconds()
            t0 = time.perf_counter()
            for body in bodies:
                t = time.perf_counter()
                r = client.post(url, content=body, headers=headers)
                latencies.append(time.perf_counter() - t)
                r.raise_for_status()
                summary = orjson.loads(r.content)["summary"]
                applied += summary["applied"]
            wall = time.perf_counter() - t0
            server_cpu, client_cpu = server.cpu() - server_cpu0, cpu_seconds() - client_cpu0
            total = sum(len(b) for b in batches)
            if applied != total:
                raise SystemExit(f"only {applied} of {total} orders were applied")
            replay = orjson.loads(client.post(url, content=bodies[0], headers=headers).content)
            if replay["summary"]["replayed"] != len(batches[0]):
                raise SystemExit(f"a replay did not answer replayed: {replay['summary']}")
        facts = db_facts(server.db_url)
    engine = create_db_engine(server.db_url)
    try:
        ledger = Ledger(engine)
        bad = ledger.verify_chain(ledger.tenant_id(TENANT))
        if bad is not None:
            raise SystemExit(f"hash chain broken at seq {bad}")
    finally:
        engine.dispose()
    return {
        "wall": wall,
        "orders": total,
        "latencies": latencies,
        "server_cpu": server_cpu,
        "client_cpu": client_cpu,
        "facts": facts,
    }


def run_ledger(batches: list[list[dict[str, Any]]], directory: Path) -> dict[str, Any]:
    """The same batches through the service function the endpoint calls, and through
    Ledger.submit alone (fresh databases each): what HTTP adds is the difference."""
    out: dict[str, Any] = {}
    items = [
        [
            ImportItem(
                external_id=o["external_id"],
                member=o["member"],
                amount=Decimal(o["amount"]),
                referrer=o.get("referrer"),
            )
            for o in b
        ]
        for b in batches
    ]
    for name in ("ledger", "service"):
        path = directory / f"{name}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        engine = create_db_engine(f"sqlite:///{path}")
        migrate(engine)
        ledger = Ledger(engine)
        tid = ledger.create_tenant(TENANT)
        t0 = time.perf_counter()
        for batch in items:
            if name == "ledger":
                outcomes = ledger.submit(
                    tid, [(f"import:{i.external_id}", i.command()) for i in batch]
                )
                assert all(o.status == "applied" for o in outcomes)
            else:
                report = import_orders(ledger, tid, batch)
                assert report.counts["applied"] == len(batch)
        out[name] = time.perf_counter() - t0
        engine.dispose()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=5000, help="orders per request (1-5000)")
    ap.add_argument("--batches", type=int, default=20, help="requests")
    ap.add_argument("--members", type=int, default=20_000, help="distinct buyers")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", action="store_true", help="keep the SQLite files and server log")
    ap.add_argument("--dir", help="where the SQLite files go (default: a new temporary dir)")
    args = ap.parse_args()
    directory = Path(args.dir or tempfile.mkdtemp(prefix="tokenmall-bench-import-"))
    directory.mkdir(parents=True, exist_ok=True)
    batches = workload(args.batches, args.batch, args.members, args.seed)
    total = args.batch * args.batches

    print_facts("machine", machine_facts())
    print_facts("source", source_facts())
    print(f"== workload: {args.batches} batches x {args.batch} paid orders, {args.members} buyers")
    http = run_http(batches, directory)
    print_facts("database (server)", http["facts"])
    base = run_ledger(batches, directory)
    if not args.keep and args.dir is None:
        shutil.rmtree(directory, ignore_errors=True)

    rate = total / http["wall"]
    ledger_rate = total / base["ledger"]
    service_rate = total / base["service"]
    print("== results")
    print(f"  HTTP  POST .../orders/import   {rate:10,.0f} orders/s  ({http['wall']:.2f} s)")
    print(
        f"  in-process import_orders()    {service_rate:10,.0f} orders/s  ({base['service']:.2f} s)"
    )
    print(
        f"  in-process Ledger.submit      {ledger_rate:10,.0f} orders/s  ({base['ledger']:.2f} s)"
    )
    print(f"  HTTP / Ledger.submit          {rate / ledger_rate:10.2f}")
    print(latency_line(f"request ({args.batch} orders)", http["latencies"]))
    print(
        f"  CPU during the HTTP run: server {http['server_cpu']:.2f} s, "
        f"client {http['client_cpu']:.2f} s, wall {http['wall']:.2f} s"
    )
    goal = 10_000
    print(
        f"  goal >= {goal:,} orders/s through the batch endpoint: "
        f"{'met' if rate >= goal else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
