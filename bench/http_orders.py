"""Paid orders per second over HTTP from concurrent clients, against a running server.

    .venv/bin/python bench/http_orders.py                       # 32 concurrent buyers, 3,000 orders
    .venv/bin/python bench/http_orders.py --flows 64 --orders 5000 --max-seconds 120
    .venv/bin/python bench/http_orders.py --notify callback     # deliver notifications over HTTP

A real server (``tokenmall serve``: one uvicorn process, access log and scheduler on, as
shipped) on a fresh SQLite file on 127.0.0.1.  The tenant has a merchant, a product with
enough stock and ``--members`` registered members, each with its own member token (the
app's customers; per-member rate-limit buckets).  Every flow is one paid order:

1. ``POST /orders``                                    create, stock reserved
2. ``POST /orders/{ref}/payments``                     a sandbox payment intent
3. ``POST /payments/sandbox/intents/{id}/complete``    the customer pays; with ``--notify
   inline`` (default) the sandbox delivers its signed notification to the service in that
   request and the order is paid when it answers; with ``--notify callback`` the notification
   comes back to the client, which then plays the provider:
4. ``POST /payments/sandbox/notify``                   signature checked, payment applied

``--flows`` of them run concurrently (asyncio + httpx, keep-alive), bounded by ``--orders``
and ``--max-seconds``; the first ``--warmup`` orders are not counted.  The same run measures a
baseline on the same server with the same concurrency: ``GET /v1/health`` (no credential, no
database) and ``GET /skus/{id}`` (member token, one read), sent by a bare asyncio HTTP/1.1
client (httpx's own CPU would cap it), so the order rate can be read as a ratio of what this
server does at all on this machine.

Checked, not assumed: every notification must answer ``applied``, and after the run the
number of paid orders in the database equals the flows completed and the ledger's hash chain
verifies.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import func, select

from _common import cpu_seconds, machine_facts, print_facts, source_facts
from _http import ADMIN_TOKEN, Server, db_facts, latency_line, pct, raw_get_rate, running_server
from tokenmall.service.ledger import Ledger
from tokenmall.store import schema as s
from tokenmall.store.db import create_db_engine

TENANT = "bench-http"
# below uvicorn's 5 s keep-alive timeout: a request must never race the server closing its
# idle connection (httpx does not retry, and a POST must not be retried blindly)
KEEPALIVE = 2.0
STEPS = ("create order", "start payment", "complete (pay)", "notify (callback)")


def setup(server: Server, members: int, settle_days: str) -> dict[str, Any]:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    base = f"/v1/tenants/{TENANT}"
    with httpx.Client(base_url=server.base, timeout=60) as c:

        def post(path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
            r = c.post(path, json=body, headers=headers)
            if r.status_code >= 300:
                raise SystemExit(f"setup: {path} answered {r.status_code}: {r.text}")
            return r.json()

        post("/v1/tenants", {"code": TENANT, "params": {"settle_days": settle_days}}, admin)
        key = post(f"{base}/api-keys", {"scope": "operator", "name": "bench"}, admin)["key"]
        op = {"Authorization": f"Bearer {key}"}
        merchant = post(f"{base}/merchants", {"code": "m1", "name": "Bench shop"}, op)
        product = post(
            f"{base}/products",
            {
                "merchant_id": merchant["id"],
                "name": "Tea",
                "skus": [{"name": "250g", "price": "99.00", "stock": 100_000_000}],
            },
            op,
        )
        tokens = []
        for i in range(members):
            code = f"buyer{i}"
            post(f"{base}/members", {"code": code}, op)
            tok = post(f"{base}/members/{code}/tokens", {"ttl_seconds": 86_400}, op)["token"]
            tokens.append((code, {"Authorization": f"Bearer {tok}"}))
    return {"sku": product["skus"][0]["id"], "tokens": tokens}


async def drive(
    server: Server,
    env: dict[str, Any],
    *,
    flows: int,
    orders: int,
    warmup: int,
    max_seconds: float,
    callback: bool,
) -> dict[str, Any]:
    base = f"/v1/tenants/{TENANT}"
    lat: dict[str, list[float]] = {k: [] for k in (*STEPS, "full flow")}
    errors: Counter[str] = Counter()
    started = 0
    done = 0
    counted = 0
    t_start: float | None = None
    limits = httpx.Limits(
        max_connections=flows, max_keepalive_connections=flows, keepalive_expiry=KEEPALIVE
    )
    deadline = time.perf_counter() + max_seconds
    sku = env["sku"]
    tokens = env["tokens"]
    cpu0: tuple[float, float] | None = None

    async with httpx.AsyncClient(base_url=server.base, limits=limits, timeout=60) as c:

        async def step(name: str, path: str, headers: dict[str, str], **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                r = await c.post(path, headers=headers, **kw)
            except httpx.TransportError as exc:
                errors[f"{name}: {type(exc).__name__}"] += 1
                return None
            dt = time.perf_counter() - t
            if r.status_code >= 300:
                errors[f"{name}: {r.status_code} {r.json().get('error', {}).get('code')}"] += 1
                return None
            return dt, orjson.loads(r.content)

        async def flow(member: int) -> list[float] | None:
            """One paid order; its step latencies, or None when a step failed."""
            _, h = tokens[member]
            times: list[float] = []
            got = await step(
                STEPS[0],
                f"{base}/orders",
                h,
                json={"lines": [{"sku_id": sku, "quantity": 1}]},
            )
            if got is None:
                return None
            times.append(got[0])
            ref = got[1]["ref"]
            got = await step(STEPS[1], f"{base}/orders/{ref}/payments", h, json={})
            if got is None:
                return None
            times.append(got[0])
            intent = got[1]["intent_id"]
            got = await step(
                STEPS[2],
                f"{base}/payments/sandbox/intents/{intent}/complete",
                h,
                json={"deliver": not callback},
            )
            if got is None:
                return None
            times.append(got[0])
            if callback:
                outcomes = []
                for d in got[1]["deliveries"]:
                    res = await step(
                        STEPS[3],
                        f"{base}/payments/sandbox/notify",
                        d["headers"],
                        content=d["body"].encode(),
                    )
                    if res is None:
                        return None
                    times.append(res[0])
                    outcomes.append(res[1]["outcome"])
            else:
                outcomes = [r["outcome"] for r in got[1]["results"]]
            if "applied" not in outcomes:
                errors[f"notification outcomes {outcomes}"] += 1
                return None
            return times

        async def worker(i: int) -> None:
            nonlocal started, done, counted, t_start, cpu0
            member = i
            while time.perf_counter() < deadline:
                if started >= warmup + orders:
                    return
                started += 1
                mine = started
                if mine == warmup + 1:
                    t_start = time.perf_counter()
                    cpu0 = (server.cpu(), cpu_seconds())
                t = time.perf_counter()
                times = await flow(member % len(tokens))
                total = time.perf_counter() - t
                member += flows
                if times is None:
                    continue
                done += 1
                if mine > warmup:
                    counted += 1
                    lat["full flow"].append(total)
                    for name, dt in zip(STEPS, times, strict=False):
                        lat[name].append(dt)

        await asyncio.gather(*(worker(i) for i in range(flows)))
        t_end = time.perf_counter()
    if t_start is None or cpu0 is None:
        raise SystemExit("no order got past the warm-up: raise --max-seconds")
    return {
        "wall": t_end - t_start,
        "counted": counted,
        "done": done,
        "started": started,
        "lat": lat,
        "errors": errors,
        "server_cpu": server.cpu() - cpu0[0],
        "client_cpu": cpu_seconds() - cpu0[1],
        "timed_out": time.perf_counter() >= deadline,
    }


def check_db(url: str, done: int) -> tuple[dict[str, int], int | None]:
    engine = create_db_engine(url)
    try:
        ledger = Ledger(engine)
        tid = ledger.tenant_id(TENANT)
        o = s.orders.c
        with engine.connect() as conn:
            by_status = {
                row.status: int(row.n)
                for row in conn.execute(
                    select(o.status, func.count().label("n"))
                    .where(o.tenant_id == tid)
                    .group_by(o.status)
                )
            }
        return by_status, ledger.verify_chain(tid)
    finally:
        engine.dispose()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flows", type=int, default=32, help="concurrent buyers (16-64)")
    ap.add_argument("--orders", type=int, default=3000, help="paid orders to measure")
    ap.add_argument("--warmup", type=int, default=200, help="orders before measuring")
    ap.add_argument("--max-seconds", type=float, default=120.0, help="stop after this long")
    ap.add_argument("--members", type=int, default=0, help="buyers (default: 2 x flows)")
    ap.add_argument("--baseline-seconds", type=float, default=5.0)
    ap.add_argument(
        "--notify",
        choices=("inline", "callback"),
        default="inline",
        help="inline: the sandbox delivers its notification inside the complete request; "
        "callback: the client posts it to /payments/sandbox/notify as a provider would",
    )
    ap.add_argument("--settle-days", default="7", help="the tenant's settle_days (0: settle)")
    ap.add_argument("--no-scheduler", action="store_true", help="serve --no-scheduler")
    ap.add_argument(
        "--no-writer-gate",
        action="store_true",
        help="serve with store.db's SQLite writer gate off (the before of that change)",
    )
    ap.add_argument(
        "--sync-normal",
        action="store_true",
        help="serve with PRAGMA synchronous=NORMAL: no fsync per commit, NOT durable; the "
        "upper bound of what group commit could save, for comparison only",
    )
    ap.add_argument("--keep", action="store_true", help="keep the SQLite files and server log")
    ap.add_argument("--dir", help="where the SQLite file goes (default: a new temporary dir)")
    args = ap.parse_args()
    members = args.members or 2 * args.flows
    directory = Path(args.dir or tempfile.mkdtemp(prefix="tokenmall-bench-http-"))
    directory.mkdir(parents=True, exist_ok=True)
    callback = args.notify == "callback"

    print_facts("machine", machine_facts())
    print_facts("source", source_facts())
    with running_server(
        directory / "http-orders.db",
        scheduler=not args.no_scheduler,
        writer_gate=not args.no_writer_gate,
        synchronous_normal=args.sync_normal,
    ) as server:
        facts = db_facts(server.db_url)
        if args.sync_normal:
            facts = [
                (k, "1 (NORMAL) in the server process: --sync-normal, NOT durable")
                if k == "synchronous"
                else (k, v)
                for k, v in facts
            ]
        print_facts("database (server)", facts)
        print(
            f"== server: tokenmall serve, 1 uvicorn process, scheduler "
            f"{'off' if args.no_scheduler else 'on'}, SQLite writer gate "
            f"{'off' if args.no_writer_gate else 'on'}, {server.base}"
        )
        env = setup(server, members, args.settle_days)
        headers = [h for _, h in env["tokens"]]
        health_rate, health_lat = asyncio.run(
            raw_get_rate(server.base, "/v1/health", [{}], args.flows, args.baseline_seconds)
        )
        read_rate, read_lat = asyncio.run(
            raw_get_rate(
                server.base,
                f"/v1/tenants/{TENANT}/skus/{env['sku']}",
                headers,
                args.flows,
                args.baseline_seconds,
            )
        )
        print(
            f"== run: {args.flows} concurrent flows, {members} members, {args.orders} orders "
            f"after {args.warmup} warm-up, at most {args.max_seconds:.0f} s, notify {args.notify}, "
            f"settle_days {args.settle_days}"
        )
        res = asyncio.run(
            drive(
                server,
                env,
                flows=args.flows,
                orders=args.orders,
                warmup=args.warmup,
                max_seconds=args.max_seconds,
                callback=callback,
            )
        )
    by_status, broken = check_db(server.db_url, res["done"])
    paid = sum(by_status.get(k, 0) for k in ("paid", "delivered", "settled"))
    if paid != res["done"]:
        raise SystemExit(f"{paid} paid orders in the database, {res['done']} flows completed")
    if broken is not None:
        raise SystemExit(f"hash chain broken at seq {broken}")

    if not args.keep and args.dir is None:
        shutil.rmtree(directory, ignore_errors=True)
    requests_per_order = 4 if callback else 3
    rate = res["counted"] / res["wall"]
    print("== results")
    print(
        f"  paid orders/s                {rate:8.1f}   ({res['counted']} orders in "
        f"{res['wall']:.2f} s{', stopped by --max-seconds' if res['timed_out'] else ''})"
    )
    print(
        f"  order requests/s             {rate * requests_per_order:8.1f}   "
        f"({requests_per_order} per paid order)"
    )
    print(f"  baseline GET /v1/health/s    {health_rate:8.1f}   (no credential, no database)")
    print(f"  baseline GET /skus/{{id}}/s    {read_rate:8.1f}   (member token, one read)")
    print(
        f"  order requests / health      {rate * requests_per_order / health_rate:8.2f}   "
        f"order requests / sku read  {rate * requests_per_order / read_rate:.2f}"
    )
    print("== latency (client side, measured orders only)")
    for name in (*STEPS, "full flow"):
        if res["lat"][name]:
            print(latency_line(name, res["lat"][name]))
    print(latency_line("baseline GET /v1/health", health_lat))
    print(latency_line("baseline GET /skus/{id}", read_lat))
    print(
        f"  CPU while measuring: server {res['server_cpu']:.1f} s, client {res['client_cpu']:.1f} s"
        f" of {res['wall']:.1f} s wall x 2 cores"
    )
    print(f"  orders in the database by status: {dict(sorted(by_status.items()))}")
    if res["errors"]:
        print(f"  failed flows: {dict(res['errors'])}")
    step_p99 = max(pct(v, 0.99) for k, v in res["lat"].items() if k != "full flow" and v) * 1000
    print(
        f"  goal >= 500 paid orders/s with p99 < 100 ms: {rate:.0f} orders/s, worst step p99 "
        f"{step_p99:.0f} ms -> {'met' if rate >= 500 and step_p99 < 100 else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
