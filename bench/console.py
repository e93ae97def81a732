"""The operator console's dashboard and the member's home and EP history pages under concurrent
requests, against ``/v1/health`` on the same server in the same run.

    .venv/bin/python bench/console.py                    # 16 connections, 10 s each
    .venv/bin/python bench/console.py --conns 32 --seconds 20 --orders 200

A real server (``tokenmall serve``: one uvicorn process, access log and scheduler on, as
shipped) on a fresh SQLite file on 127.0.0.1.  The tenant gets a product, ``--orders`` paid
orders (so the day's figures and series have rows to read) and an operator key; the bench
logs in through the console's own form (CSRF token and all) and then sends
``GET /console/{tenant}/`` with the session cookie from ``--conns`` keep-alive connections for
``--seconds``: each request opens the session, checks the key is still live, reads the economy,
30 days of the daily series, today's counts and the day-close status, and renders the page.
``GET /v1/health`` (no credential, no database) from the same client is the ceiling: what
this server answers at all on this machine.  Then the member pages: a member token issued
over the API is exchanged for a session at ``/m/{tenant}/login`` and ``GET /m/{tenant}/``
(holdings, 30 days of series, the recent rewards) and ``GET /m/{tenant}/points`` (the first
twenty EP movements with their prices) are measured the same way.  Every answer must be 200.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import cpu_seconds, machine_facts, print_facts, source_facts
from _http import ADMIN_TOKEN, Server, latency_line, raw_get_rate, running_server

TENANT = "bench-console"


def setup(server: Server, orders: int) -> tuple[str, str]:
    """The tenant, its catalog and paid orders; answers the console's session cookie and a
    member's (m0, who paid every 50th order)."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    base = f"/v1/tenants/{TENANT}"
    with httpx.Client(base_url=server.base, timeout=60) as c:

        def post(path: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
            r = c.post(path, json=body, headers=headers)
            if r.status_code >= 300:
                raise SystemExit(f"setup: {path} answered {r.status_code}: {r.text}")
            return r.json()

        post("/v1/tenants", {"code": TENANT}, admin)
        key = post(f"{base}/api-keys", {"scope": "operator", "name": "bench"}, admin)["key"]
        op = {"Authorization": f"Bearer {key}"}
        merchant = post(f"{base}/merchants", {"code": "m1", "name": "Bench shop"}, op)
        product = post(
            f"{base}/products",
            {
                "merchant_id": merchant["id"],
                "name": "Tea",
                "skus": [{"name": "250 g", "price": "100.00", "stock": orders + 10}],
            },
            op,
        )
        sku = product["skus"][0]["id"]
        # settle at payment: the members hold their EP at once (the member pages have rows)
        post(f"{base}/param-changes", {"params": {"settle_days": "0"}}, op)
        for i in range(orders):
            member = f"m{i % 50}"
            if i < 50:
                post(f"{base}/members", {"code": member}, op)
            order = post(
                f"{base}/orders", {"member": member, "lines": [{"sku_id": sku, "quantity": 1}]}, op
            )
            pay = post(f"{base}/orders/{order['ref']}/payments", {"provider": "sandbox"}, op)
            post(f"{base}/payments/sandbox/intents/{pay['intent_id']}/complete", {}, op)
        form = c.get("/console/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        if csrf is None:
            raise SystemExit("setup: the login page has no CSRF token")
        done = c.post("/console/login", data={"csrf": csrf.group(1), "tenant": TENANT, "key": key})
        cookie = c.cookies.get("tm_console")
        if done.status_code != 303 or cookie is None:  # to the dashboard
            raise SystemExit(f"setup: logging in answered {done.status_code}")
        token = post(f"{base}/members/m0/tokens", {}, op)["token"]
        entered = c.get(f"/m/{TENANT}/login", params={"token": token})
        member = c.cookies.get("tm_member")
        if entered.status_code != 303 or member is None:  # to the member's home
            raise SystemExit(f"setup: the member's link answered {entered.status_code}")
        return str(cookie), str(member)


async def measure(server: Server, cookie: str, member: str, conns: int, seconds: float) -> None:
    dash = f"/console/{TENANT}/"
    headers = [{"Cookie": f"tm_console={cookie}"}]
    cpu0 = server.cpu()
    health_rate, health_lat = await raw_get_rate(server.base, "/v1/health", [{}], conns, seconds)
    cpu1 = server.cpu()
    dash_rate, dash_lat = await raw_get_rate(server.base, dash, headers, conns, seconds)
    cpu2 = server.cpu()
    mine = [{"Cookie": f"tm_member={member}"}]
    home_rate, home_lat = await raw_get_rate(server.base, f"/m/{TENANT}/", mine, conns, seconds)
    cpu3 = server.cpu()
    points = f"/m/{TENANT}/points"
    points_rate, points_lat = await raw_get_rate(server.base, points, mine, conns, seconds)
    cpu4 = server.cpu()
    print(f"\n{conns} connections, {seconds:.0f} s each, same server, same client:")
    print(
        f"  GET /v1/health              {health_rate:8.1f} requests/s  "
        f"(server CPU {cpu1 - cpu0:.1f} s)"
    )
    print(
        f"  GET /console/{{tenant}}/      {dash_rate:8.1f} requests/s  "
        f"(server CPU {cpu2 - cpu1:.1f} s)"
    )
    print(
        f"  GET /m/{{tenant}}/            {home_rate:8.1f} requests/s  "
        f"(server CPU {cpu3 - cpu2:.1f} s)"
    )
    print(
        f"  GET /m/{{tenant}}/points      {points_rate:8.1f} requests/s  "
        f"(server CPU {cpu4 - cpu3:.1f} s)"
    )
    print(f"  dashboard / health          {dash_rate / health_rate:8.3f}")
    print(f"  member home / health        {home_rate / health_rate:8.3f}")
    print(f"  EP history / health         {points_rate / health_rate:8.3f}")
    print(latency_line("GET /v1/health", health_lat))
    print(latency_line("GET /console/{tenant}/", dash_lat))
    print(latency_line("GET /m/{tenant}/", home_lat))
    print(latency_line("GET /m/{tenant}/points", points_lat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conns", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--orders", type=int, default=100)
    args = parser.parse_args()
    print_facts("machine", machine_facts())
    print_facts("source", source_facts())
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp) / "console.db") as server:
        t0, c0 = time.perf_counter(), cpu_seconds()
        cookie, member = setup(server, args.orders)
        print(
            f"\nsetup: {args.orders} paid orders in {time.perf_counter() - t0:.1f} s "
            f"(client CPU {cpu_seconds() - c0:.1f} s)"
        )
        asyncio.run(measure(server, cookie, member, args.conns, args.seconds))


if __name__ == "__main__":
    main()
