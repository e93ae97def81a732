"""The SQLite writer gate (store.db._WriterGate): writers of one process take turns on a Python
lock instead of sleeping in SQLite's busy handler; a turn ends with COMMIT or ROLLBACK, and a
thread that waits on itself degrades to SQLite's own lock instead of hanging."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from tokenmall.store import db
from tokenmall.store.db import create_db_engine, read_only


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    e = create_db_engine(f"sqlite:///{tmp_path / 'gate.db'}", pool_size=20, max_overflow=0)
    with e.begin() as conn:
        conn.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"))
        conn.execute(text("INSERT INTO counter VALUES (1, 0)"))
    return e


def count(engine: Engine) -> int:
    with read_only(engine).connect() as conn:
        return int(conn.execute(text("SELECT n FROM counter")).scalar_one())


def test_concurrent_read_modify_write_transactions_lose_nothing(engine: Engine) -> None:
    """16 threads x 40 read-then-write transactions: every increment survives."""

    def work() -> None:
        for _ in range(40):
            with engine.begin() as conn:
                n = conn.execute(text("SELECT n FROM counter")).scalar_one()
                conn.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert count(engine) == 16 * 40


def test_a_rollback_or_an_error_ends_the_turn(engine: Engine) -> None:
    def failing() -> None:
        with engine.begin() as conn:
            conn.execute(text("UPDATE counter SET n = n + 1"))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        failing()
    with engine.connect() as conn:
        conn.execute(text("UPDATE counter SET n = n + 5"))
        conn.rollback()
    done = threading.Event()

    def writer() -> None:
        with engine.begin() as conn:
            conn.execute(text("UPDATE counter SET n = n + 1"))
        done.set()

    t = threading.Thread(target=writer)
    t.start()
    assert done.wait(5), "the next writer did not get its turn"
    t.join()
    assert count(engine) == 1


def test_reads_do_not_wait_for_the_writer(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE counter SET n = 7"))
        got: list[int] = []
        t = threading.Thread(target=lambda: got.append(count(engine)))
        t.start()
        t.join(5)
        assert got == [0]  # the committed snapshot, at once


def test_a_thread_waiting_on_itself_degrades_to_sqlites_busy_timeout(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A nested write transaction in one thread could never get the turn it holds: after the
    gate's wait it meets SQLite's lock, which refuses it (as without the gate), not a hang."""
    monkeypatch.setattr(db, "_WRITER_WAIT", 0.2)
    with engine.begin() as outer:
        outer.execute(text("UPDATE counter SET n = n + 1"))
        inner = engine.connect()
        # on the DBAPI connection: through SQLAlchemy the PRAGMA would begin a transaction
        inner.connection.dbapi_connection.execute("PRAGMA busy_timeout=100")  # type: ignore[union-attr]
        t0 = time.monotonic()
        with pytest.raises(OperationalError, match="locked"):
            inner.execute(text("UPDATE counter SET n = n + 100"))
        assert time.monotonic() - t0 < 5
        inner.close()
    assert count(engine) == 1
    # and the gate is free again for everyone
    with engine.begin() as conn:
        conn.execute(text("UPDATE counter SET n = n + 1"))
    assert count(engine) == 2
