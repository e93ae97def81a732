"""Helpers of the HTTP benchmarks: a real ``tokenmall serve`` in a subprocess, percentiles.

The server is the command operators run (uvicorn, one process, access log on), on a fresh
SQLite file, listening on 127.0.0.1 only; the benchmark process is the client.  Both share the
machine's cores, so every figure is printed with the CPU seconds each side used.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from _common import ROOT, engine_facts
from tokenmall.store.db import create_db_engine, migrate

ADMIN_TOKEN = "bench-admin-token-0123456789abcdef-0123"
SECRET_KEY = "bench-secret-key-0123456789abcdef-0123456789"


# Patches of the server process for comparisons, applied before tokenmall.cli is imported
# (it imports create_db_engine by name); then the CLI runs with sys.argv[1:] as for -m.
_NO_GATE = (
    "import tokenmall.store.db as d; "
    "d._WriterGate.enter = lambda self, c: None; d._WriterGate.leave = lambda self, c: None"
)
_SYNC_NORMAL = (
    "import tokenmall.store.db as d; from sqlalchemy import event; _mk = d.create_db_engine; "
    "d.create_db_engine = lambda url, **kw: (lambda e: (event.listen(e, 'connect', "
    "lambda c, r: c.execute('PRAGMA synchronous=NORMAL')), e)[1])(_mk(url, **kw))"
)
_MAIN = "import sys; from tokenmall.cli import main; sys.argv[0] = 'tokenmall'; main()"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (and its reaped children) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(x) for x in fields[11:15]) / ticks


@dataclass
class Server:
    base: str
    pid: int
    db_url: str
    log: Path

    def cpu(self) -> float:
        return proc_cpu_seconds(self.pid)


@contextmanager
def running_server(
    db_path: Path,
    *,
    env: dict[str, str] | None = None,
    scheduler: bool = True,
    writer_gate: bool = True,
    synchronous_normal: bool = False,
) -> Iterator[Server]:
    """``tokenmall serve`` on a migrated, empty SQLite file; stopped (SIGINT) on exit.

    ``writer_gate=False`` serves with store.db's writer gate turned off (writers wait in
    SQLite's busy handler again): the before/after comparison of that change.
    ``synchronous_normal=True`` serves with ``PRAGMA synchronous=NORMAL`` (no fsync per
    commit; *not durable*): the most any group commit could save, for comparison only.
    """
    url = f"sqlite:///{db_path}"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db_path) + suffix).unlink(missing_ok=True)
    engine = create_db_engine(url)
    migrate(engine)
    engine.dispose()
    port = free_port()
    log = db_path.with_suffix(".server.log")
    patches = []
    if not writer_gate:
        patches.append(_NO_GATE)
    if synchronous_normal:
        patches.append(_SYNC_NORMAL)
    entry = ["-m", "tokenmall"]
    if patches:
        entry = ["-c", "; ".join([*patches, _MAIN])]
    cmd = [
        sys.executable,
        *entry,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--db",
        url,
        "--no-demo",
        "--scheduler" if scheduler else "--no-scheduler",
    ]
    full_env = {
        **os.environ,
        "TOKENMALL_ADMIN_TOKEN": ADMIN_TOKEN,
        "TOKENMALL_SECRET_KEY": SECRET_KEY,
        **(env or {}),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(proc, f"{base}/v1/health", log)
        yield Server(base, proc.pid, url, log)
    finally:
        stop_server(proc)


def wait_until_up(proc: subprocess.Popen[bytes], health_url: str, log: Path) -> None:
    """Return once ``health_url`` answers 200; exit with the log's tail if the server died,
    or after 30 s."""
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: see {log}\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(health_url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"the server did not answer in 30 s: see {log}")
        time.sleep(0.1)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT (uvicorn's clean shutdown), SIGKILL if it takes more than 15 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def db_facts(url: str) -> list[tuple[str, str]]:
    engine = create_db_engine(url)
    try:
        return engine_facts(engine)
    finally:
        engine.dispose()


def pct(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank; values need not be sorted."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(q * len(s) + 0.5) - 1))
    return s[k]


def latency_line(name: str, seconds: Sequence[float]) -> str:
    ms = [x * 1000 for x in seconds]
    return (
        f"  {name:<28} n={len(ms):>6}  p50 {pct(ms, 0.5):7.1f} ms  p90 {pct(ms, 0.9):7.1f} ms  "
        f"p99 {pct(ms, 0.99):7.1f} ms  max {max(ms) if ms else float('nan'):7.1f} ms"
    )


async def raw_get_rate(
    base: str, path: str, headers: Sequence[dict[str, str]], conns: int, seconds: float
) -> tuple[float, list[float]]:
    """GETs/s of ``path`` over ``conns`` keep-alive connections for ``seconds`` (raw_rate)."""
    host, port = base.removeprefix("http://").split(":")

    def request(i: int, _n: int) -> bytes:
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers[i % len(headers)].items())
        return f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}\r\n".encode()

    return await raw_rate(base, request, b"200", conns, seconds)


async def raw_rate(
    base: str,
    request: Callable[[int, int], bytes],
    expect: bytes,
    conns: int,
    seconds: float,
) -> tuple[float, list[float]]:
    """Requests/s over ``conns`` keep-alive connections for ``seconds``, with a bare asyncio
    HTTP/1.1 client: httpx costs ~2 ms of client CPU per request (measured: one client core
    saturates near 600 requests/s), which would make a fast endpoint measure the client.

    ``request(connection, n)`` gives the bytes of that connection's n-th request; every answer
    must have status ``expect`` and a Content-Length (what uvicorn sends for JSON answers).
    """
    host, port = base.removeprefix("http://").split(":")
    lat: list[float] = []
    stop = time.perf_counter() + seconds

    async def conn(i: int) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        n = 0
        try:
            while time.perf_counter() < stop:
                data = request(i, n)
                n += 1
                t = time.perf_counter()
                writer.write(data)
                head = await reader.readuntil(b"\r\n\r\n")
                status = head.split(b" ", 2)[1]
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                lat.append(time.perf_counter() - t)
                if status != expect:
                    first = data.split(b"\r\n", 1)[0].decode()
                    raise SystemExit(f"{first}: answered {status.decode()}")
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(conn(i) for i in range(conns)))
    return len(lat) / (time.perf_counter() - t0), lat
