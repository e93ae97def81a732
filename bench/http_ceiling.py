"""The ceiling of the HTTP stack itself: how many requests/s FastAPI + uvicorn answer here
when each does the least a paid-order request must do.

    .venv/bin/python bench/http_ceiling.py                   # 4 and 32 connections, 1 and 2 workers
    .venv/bin/python bench/http_ceiling.py --seconds 20 --conns 4

``_ceiling_app.py`` is served by uvicorn exactly as ``tokenmall serve`` runs (access log on),
in a subprocess on 127.0.0.1, on a fresh SQLite file.  Each ``POST /orders`` checks a bearer
token's HMAC, validates a Pydantic body, makes one durable INSERT and answers a Pydantic
model; ``GET /health`` does nothing.  The client is the bare asyncio HTTP/1.1 client of
``http_orders.py``'s baselines (httpx would spend about 2 ms of client CPU per request).

The figure that matters: a paid order in ``http_orders.py`` takes 3 requests (create, start
payment, complete), so ``POST/s / 3`` is the most paid orders/s this stack could serve on
this machine if tokenmall's work per request cost no more than this one insert.  It is
printed next to the goal of issue 3 (500 paid orders/s).  With ``--workers 2`` uvicorn runs
two processes (both cores; SQLite's own lock between them).  Every answer must be 201/200
and the rows in the file must equal the POSTs answered: a fast wrong answer is not a result.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

from _common import cpu_seconds, machine_facts, print_facts
from _http import free_port, latency_line, proc_cpu_seconds, raw_rate, stop_server, wait_until_up

HERE = Path(__file__).resolve().parent
GOAL = 500
REQUESTS_PER_ORDER = 3


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its live children (uvicorn's workers)."""
    total = proc_cpu_seconds(pid)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat[1]) == pid:
            total += proc_cpu_seconds(int(entry.name))
    return total


@contextmanager
def serve(db: Path, workers: int) -> Iterator[tuple[str, int]]:
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, member TEXT NOT NULL, sku INTEGER NOT NULL,"
        " quantity INTEGER NOT NULL, client_ref TEXT NOT NULL, at REAL NOT NULL)"
    )
    con.close()
    port = free_port()
    code = (
        "import uvicorn; uvicorn.run('_ceiling_app:app', host='127.0.0.1', "
        f"port={port}, log_level='info', workers={workers})"
    )
    log_path = db.with_suffix(".log")
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=HERE,
        env={**os.environ, "CEILING_DB": str(db)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(proc, f"{base}/health", log_path)
        time.sleep(0.5 * workers)  # every worker up, not only the first
        yield base, proc.pid
    finally:
        stop_server(proc)
        log.close()


async def drive(
    base: str, method: str, path: str, conns: int, seconds: float
) -> tuple[float, list[float]]:
    """Requests/s over ``conns`` keep-alive connections; POSTs carry a body and a token."""
    sys.path.insert(0, str(HERE))
    os.environ.setdefault("CEILING_DB", "unused")
    from _ceiling_app import token  # noqa: PLC0415 - the app's own token format

    host, port = base.removeprefix("http://").split(":")

    def request(i: int, n: int) -> bytes:
        if method != "POST":
            return f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
        body = orjson.dumps({"sku": 1, "quantity": 1, "client_ref": f"c{i}-{n}"})
        return (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {token(f'm{i}')}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    return await raw_rate(base, request, b"201" if method == "POST" else b"200", conns, seconds)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="per measurement")
    ap.add_argument("--conns", type=int, nargs="+", default=[4, 32])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    print_facts("machine", machine_facts())
    print(
        f"== stack: FastAPI + uvicorn (access log on), SQLite WAL synchronous=FULL; "
        f"{args.seconds:.0f} s per row; bare asyncio client in this process"
    )
    best = 0.0
    wrong = False
    with tempfile.TemporaryDirectory(prefix="tokenmall-ceiling-") as tmp:
        for workers in args.workers:
            db = Path(tmp) / f"ceiling-{workers}.db"
            posted = 0
            with serve(db, workers) as (base, pid):
                for conns in args.conns:
                    for method, path in (("GET", "/health"), ("POST", "/orders")):
                        s0, c0 = tree_cpu(pid), cpu_seconds()
                        rate, lat = asyncio.run(drive(base, method, path, conns, args.seconds))
                        s1, c1 = tree_cpu(pid), cpu_seconds()
                        name = f"{workers} worker(s), {conns:>2} conns, {method} {path}"
                        print(f"  {name:<42} {rate:8.1f} req/s")
                        print(f"    {latency_line('latency', lat)}")
                        n = len(lat)
                        print(
                            f"    CPU per request: server {(s1 - s0) / n * 1e3:.2f} ms, "
                            f"client {(c1 - c0) / n * 1e3:.2f} ms"
                        )
                        if method == "POST":
                            best = max(best, rate)
                            posted += len(lat)
            rows = sqlite3.connect(db).execute("SELECT count(*) FROM orders").fetchone()[0]
            ok = rows == posted
            wrong |= not ok
            print(
                f"  rows stored with {workers} worker(s): {rows:,} for {posted:,} POSTs answered"
                f" -> {'OK' if ok else 'MISMATCH'}"
            )
    most = best / REQUESTS_PER_ORDER
    print("== what it means for issue 3")
    print(f"  best POST rate                      {best:8.1f} req/s (one authenticated insert)")
    print(
        f"  at {REQUESTS_PER_ORDER} requests per paid order, at most {most:8.1f} paid orders/s "
        f"even if tokenmall's work cost no more; goal {GOAL}/s: "
        + ("reachable on this stack" if most >= GOAL else "beyond this stack on this machine")
    )
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
