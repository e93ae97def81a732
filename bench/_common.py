"""Shared helpers of the benchmarks: machine facts, database preparation, pragmas, profiling.

The benchmarks print figures; they never assert on time.  Correctness checks (ledger sums to
zero and the like) do fail loudly, because a fast wrong answer is not a result.
"""

from __future__ import annotations

import cProfile
import hashlib
import io
import os
import platform
import pstats
import resource
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy
from sqlalchemy import Engine, event, make_url

ROOT = Path(__file__).resolve().parent.parent
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/bench"
SYNC_NAMES = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


# ----------------------------------------------------------------------------- machine


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ram_total_mib() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return -1


def load_average() -> str:
    """1/5/15-minute load: other work on the same cores skews every figure below."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def fs_type(path: str | Path) -> str:
    """The filesystem type and mount point holding ``path`` (tmpfs would fake durability)."""
    p = os.path.realpath(path)
    best = ("?", "?")
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            mnt, typ = parts[1], parts[2]
            if (p == mnt or p.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best[0]):
                best = (mnt, typ)
    except OSError:
        pass
    return f"{best[1]} (mounted on {best[0]})"


def source_facts() -> list[tuple[str, str]]:
    """Which engine code was measured: commit, uncommitted src/ changes, hash of the hot files.

    Others edit src/ while benchmarks run, so a figure is only meaningful with this line.
    """
    out: list[tuple[str, str]] = []
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        n_dirty = len(dirty.splitlines()) if dirty else 0
        out.append(("git HEAD", f"{commit} ({n_dirty} uncommitted change(s) under src/)"))
    except OSError:
        out.append(("git HEAD", "unknown"))
    h = hashlib.sha256()
    for rel in (
        "src/tokenmall/service/ledger",
        "src/tokenmall/domain/economy",
        "src/tokenmall/domain/dividends.py",
        "src/tokenmall/store/schema.py",
        "src/tokenmall/money.py",
    ):
        path = ROOT / rel
        for file in sorted(path.glob("*.py")) if path.is_dir() else [path]:
            try:
                h.update(file.read_bytes())
            except OSError:
                h.update(b"-")
    out.append(("src hash", h.hexdigest()[:12] + " (ledger, economy, dividends, schema, money)"))
    return out


def machine_facts() -> list[tuple[str, str]]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count() or -1
    return [
        ("CPU", cpu_model()),
        ("cores", f"{os.cpu_count()} logical, {usable} usable by this process"),
        ("RAM", f"{ram_total_mib()} MiB"),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("SQLite", sqlite3.sqlite_version),
        ("SQLAlchemy", sqlalchemy.__version__),
        ("load average", load_average()),
    ]


def print_facts(title: str, facts: list[tuple[str, str]]) -> None:
    print(f"== {title}")
    width = max(len(k) for k, _ in facts)
    for k, v in facts:
        print(f"  {k:<{width}}  {v}")


# ----------------------------------------------------------------------------- databases


def is_sqlite_url(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_path(url: str) -> str:
    db = make_url(url).database
    if not db or db == ":memory:":
        raise SystemExit("the benchmarks need a SQLite *file* (durability is part of the figure)")
    return db


def fresh_sqlite_url(name: str, directory: str | None) -> str:
    d = directory or tempfile.mkdtemp(prefix="tokenmall-bench-")
    Path(d).mkdir(parents=True, exist_ok=True)
    path = Path(d) / name
    remove_sqlite(str(path))
    return f"sqlite:///{path}"


def remove_sqlite(path: str) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with suppress(FileNotFoundError):
            os.remove(path + suffix)


def discard_sqlite(url: str) -> None:
    """Remove a benchmark's own SQLite file, and its temp directory if that is now empty."""
    path = sqlite_path(url)
    remove_sqlite(path)
    parent = Path(path).parent
    if parent.name.startswith("tokenmall-bench-"):
        with suppress(OSError):
            parent.rmdir()


def pg_dsn(url: str, dbname: str | None = None) -> str:
    """A libpq conninfo for psycopg from a SQLAlchemy URL (query items such as ``options`` kept)."""
    u = make_url(url)
    parts: dict[str, Any] = {
        k: v
        for k, v in (
            ("host", u.host),
            ("port", u.port),
            ("user", u.username),
            ("password", u.password),
            ("dbname", dbname or u.database),
        )
        if v is not None
    }
    parts.update({k: v if isinstance(v, str) else v[-1] for k, v in u.query.items()})
    return psycopg.conninfo.make_conninfo(**parts)


def prepare_postgres(url: str) -> None:
    """Create the database if missing, then drop and recreate its ``public`` schema."""
    u = make_url(url)
    admin = pg_dsn(url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (u.database,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{u.database}"')
    with psycopg.connect(pg_dsn(url), autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        conn.execute("CREATE SCHEMA public")


def prepare_url(url: str | None, name: str, directory: str | None) -> str:
    """A fresh, empty database for one run: a new SQLite file, or a reset PostgreSQL schema."""
    if url is None:
        return fresh_sqlite_url(name, directory)
    if is_sqlite_url(url):
        remove_sqlite(sqlite_path(url))
        return url
    prepare_postgres(url)
    return url


def engine_facts(engine: Engine) -> list[tuple[str, str]]:
    """The durability settings actually in force on the engine's connections."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            jm = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
            fk = conn.exec_driver_sql("PRAGMA foreign_keys").scalar()
            page = conn.exec_driver_sql("PRAGMA page_size").scalar()
            ckpt = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
            path = sqlite_path(str(engine.url))
            return [
                ("database", f"SQLite file {path}"),
                ("filesystem", fs_type(Path(path).parent)),
                ("journal_mode", str(jm)),
                ("synchronous", f"{sync} ({SYNC_NAMES.get(int(sync or 0), '?')})"),
                ("foreign_keys", str(fk)),
                ("page_size", str(page)),
                ("wal_autocheckpoint", f"{ckpt} pages"),
            ]
        ver = conn.exec_driver_sql("SHOW server_version").scalar()
        out = [("database", f"PostgreSQL {ver} at {engine.url.render_as_string()}")]
        for name in (
            "synchronous_commit",
            "fsync",
            "wal_sync_method",
            "full_page_writes",
            "shared_buffers",
            "plan_cache_mode",
            "autovacuum",
        ):
            out.append((name, str(conn.exec_driver_sql(f"SHOW {name}").scalar())))
        dd = conn.exec_driver_sql("SHOW data_directory").scalar()
        out.append(("data_directory", f"{dd} on {fs_type(dd)}" if dd else "?"))
        conn.rollback()
        return out


def sqlite_conn_facts(conn: sqlite3.Connection) -> str:
    jm = conn.execute("PRAGMA journal_mode").fetchone()[0]
    sync = conn.execute("PRAGMA synchronous").fetchone()[0]
    fk = conn.execute("PRAGMA foreign_keys").fetchone()[0]
    return f"journal_mode={jm} synchronous={sync} ({SYNC_NAMES.get(sync, '?')}) foreign_keys={fk}"


# ----------------------------------------------------------------------------- measuring


def maxrss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (wall time minus this = waiting: fsync,
    the database server, or other processes on the same cores)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def rss_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return -1.0


@contextmanager
def maybe_profile(path: str | None, top: int = 30) -> Iterator[None]:
    """Run the block under cProfile when ``path`` is given; print the top functions."""
    if not path:
        yield
        return
    prof = cProfile.Profile()
    prof.enable()
    try:
        yield
    finally:
        prof.disable()
        prof.dump_stats(path)
        for sort in ("tottime", "cumulative"):
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(sort).print_stats(top)
            print(f"== cProfile, top {top} by {sort} (full stats in {path})")
            print(buf.getvalue())


class SqlTimer:
    """Wall time per SQL statement shape (first words), via SQLAlchemy cursor events.

    Opt-in (``--sql-timing``): it costs a few microseconds per statement.
    """

    def __init__(self, engine: Engine) -> None:
        self.stats: dict[str, list[float]] = {}
        self._t0 = 0.0

        @event.listens_for(engine, "before_cursor_execute")
        def _before(*_a: Any) -> None:
            self._t0 = time.perf_counter()

        @event.listens_for(engine, "after_cursor_execute")
        def _after(
            _conn: Any, _cur: Any, statement: str, params: Any, _ctx: Any, executemany: bool
        ) -> None:
            dt = time.perf_counter() - self._t0
            shape = " ".join(statement.split())[:70]
            st = self.stats.setdefault(shape, [0, 0.0, 0])
            st[0] += 1
            st[1] += dt
            st[2] += len(params) if executemany else 1

    def report(self, top: int = 12) -> None:
        total = sum(v[1] for v in self.stats.values())
        print(
            f"== SQL time by statement ({total:.2f} s in all, COMMIT not included; "
            "seconds, calls, parameter rows)"
        )
        for shape, (calls, secs, rows) in sorted(self.stats.items(), key=lambda kv: -kv[1][1])[
            :top
        ]:
            print(f"  {secs:8.2f} s {calls:7,} calls {rows:10,} rows  {shape}")


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def fmt_int(n: int | float) -> str:
    return f"{n:,.0f}"
