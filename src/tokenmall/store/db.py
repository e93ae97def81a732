"""Engines for SQLite (embedded default) and PostgreSQL (production), and migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event

__all__ = ["READ_ONLY", "create_db_engine", "is_sqlite", "migrate", "read_only"]

READ_ONLY = "tokenmall_read_only"


def read_only(engine: Engine) -> Engine:
    """The same engine (and pool) for transactions that only read.

    On SQLite they begin DEFERRED, so an API read never waits for, or blocks, the writer;
    writes must use the plain engine (BEGIN IMMEDIATE takes the lock before the first read,
    so a read-then-write transaction cannot fail on lock upgrade).  PostgreSQL is unaffected.
    """
    return engine.execution_options(**{READ_ONLY: True})

_MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def is_sqlite(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "sqlite"


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    """An engine configured for tokenmall's write pattern.

    SQLite: WAL, ``synchronous=FULL`` (a commit is on disk when it returns: the settlement
    benchmark measures durable commits) and every transaction opened with ``BEGIN IMMEDIATE``,
    so the write lock is taken up front instead of failing on upgrade under concurrency.
    PostgreSQL: plain psycopg 3; a batch serialises on its tenant row with FOR UPDATE.
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60}, **kwargs)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            if ":memory:" not in url and url not in ("sqlite://", "sqlite:///"):
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            # 64 MiB of page cache (default 2 MiB): a day close rewrites every holder's row and
            # its trigger-index entry, which otherwise thrashes the cache
            cur.execute("PRAGMA cache_size=-65536")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # Reads opt out (see read_only): in WAL they see a snapshot without the write lock.
            if conn.get_execution_options().get(READ_ONLY):
                conn.exec_driver_sql("BEGIN")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return create_engine(url, pool_pre_ping=True, **kwargs)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revisions (idempotent; branches allowed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")
