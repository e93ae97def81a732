"""Engines for SQLite (embedded default) and PostgreSQL (production), and migrations."""

from __future__ import annotations

import threading
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
    # Kept on the engine: a new option engine per call cost about 80 us more per read
    # transaction (its first connect sets up its own event dispatch), and the API opens
    # several read transactions per request.
    ro: Engine | None = getattr(engine, "_tokenmall_read_only", None)
    if ro is None:
        ro = engine.execution_options(**{READ_ONLY: True})
        engine._tokenmall_read_only = ro  # type: ignore[attr-defined]
    return ro


_MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
# how long a writer waits for its turn in this process before leaving it to SQLite's busy
# timeout (the same 60 s), so a thread that somehow waits on itself degrades, never hangs
_WRITER_WAIT = 60.0


class _WriterGate:
    """One SQLite writer at a time per engine, handed over by a Python lock.

    SQLite has one writer; the others wait in its busy handler, which *sleeps* (1, 2, 5, ...
    up to 100 ms per retry) instead of being woken when the lock is free.  Under concurrent
    HTTP requests that sleeping, not the work, set the latency (bench/http_orders.py: p50
    over 400 ms at 22 orders/s with the server half idle).  Threads of this process queue on a
    lock instead and start the moment the previous writer's COMMIT returns; other processes
    still meet SQLite's own lock.  Keyed by the DBAPI connection, so a release can only undo
    that connection's own acquire, whichever thread ends the transaction.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders: set[int] = set()
        self._mu = threading.Lock()

    def enter(self, dbapi_conn: Any) -> None:
        if self._lock.acquire(timeout=_WRITER_WAIT):
            with self._mu:
                self._holders.add(id(dbapi_conn))

    def leave(self, dbapi_conn: Any) -> None:
        raw = getattr(dbapi_conn, "dbapi_connection", dbapi_conn)
        with self._mu:
            if id(raw) not in self._holders:
                return
            self._holders.discard(id(raw))
        self._lock.release()

    def install(self, engine: Engine) -> None:
        dialect = engine.dialect
        commit, rollback = dialect.do_commit, dialect.do_rollback

        def do_commit(dbapi_conn: Any) -> None:
            try:
                commit(dbapi_conn)
            finally:
                self.leave(dbapi_conn)

        def do_rollback(dbapi_conn: Any) -> None:
            try:
                rollback(dbapi_conn)
            finally:
                self.leave(dbapi_conn)

        # the dialect is this engine's own instance: its COMMIT/ROLLBACK end the turn
        setattr(dialect, "do_commit", do_commit)  # noqa: B010
        setattr(dialect, "do_rollback", do_rollback)  # noqa: B010

        @event.listens_for(engine, "close")
        def _on_close(dbapi_conn: Any, _record: Any) -> None:
            self.leave(dbapi_conn)

        @event.listens_for(engine, "invalidate")
        def _on_invalidate(dbapi_conn: Any, _record: Any, _exc: Any) -> None:
            self.leave(dbapi_conn)


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

        gate = _WriterGate()
        gate.install(engine)

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # Reads opt out (see read_only): in WAL they see a snapshot without the write lock.
            if conn.get_execution_options().get(READ_ONLY):
                conn.exec_driver_sql("BEGIN")
            else:
                raw = conn.connection.dbapi_connection
                gate.enter(raw)
                try:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                except BaseException:
                    gate.leave(raw)
                    raise

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    # No server-side prepared statements: after five executions PostgreSQL may switch a
    # prepared query to a generic plan that ignores the values of a 500-item IN list and scans
    # every row of the tenant (measured: 257 purchases/s and growing per batch, against 1,937
    # with custom plans).  Plans per execution are cheap next to that.
    connect_args = kwargs.pop("connect_args", {})
    connect_args.setdefault("prepare_threshold", None)
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revisions (idempotent; branches allowed).

    SQLite runs the migrations with foreign keys off and checks them all before the commit,
    the procedure SQLite documents for rebuilding a table (its only way to change a primary
    key): with them on, dropping a parent being rebuilt counts violations that the rename
    back never uncounts, and the commit fails.  The pragma cannot change inside a
    transaction, so it is set on the raw connection before the first BEGIN.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    if not is_sqlite(engine):
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "heads")
        return
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "heads")
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise RuntimeError(f"a migration broke foreign keys: {broken[:5]}")
        finally:
            raw.execute("PRAGMA foreign_keys=ON")
