"""Shared fixtures: every test that touches a database runs on SQLite and on PostgreSQL.

PostgreSQL is used when ``TOKENMALL_TEST_PG_URL`` is set (``.ci/run`` and ``make test`` set it
and start the server); without it the PostgreSQL cases are skipped with that reason.  Tests are
isolated by tenant (a fresh tenant code per test), which is also what multi-tenancy promises.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, make_url, text

from tokenmall.service.ledger import Ledger
from tokenmall.store.db import create_db_engine, migrate

PG_URL = os.environ.get("TOKENMALL_TEST_PG_URL")
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def _pg_url() -> Iterator[str]:
    """A database of this test session's own on the PostgreSQL server, dropped at the end.

    Its own database (not a shared schema) so that several test sessions - developers,
    CI, helpers - can run against one server at once without touching each other's data.
    """
    if not PG_URL:
        pytest.skip("TOKENMALL_TEST_PG_URL is not set (make test sets it)")
    base = make_url(create_db_engine(PG_URL).url)
    name = f"tm_test_{uuid.uuid4().hex[:10]}"
    admin = create_db_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    engine = create_db_engine(url)
    migrate(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated database URL: a fresh SQLite file, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'tokenmall.db'}"
        engine = create_db_engine(url)
        migrate(engine)
        engine.dispose()
        return url
    url: str = request.getfixturevalue("_pg_url")
    return url


@pytest.fixture
def db_engine(db_url: str) -> Iterator[Engine]:
    engine = create_db_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def ledger(db_engine: Engine) -> Ledger:
    return Ledger(db_engine)


@pytest.fixture
def tenant_code() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def default_recursion_limit() -> Iterator[None]:
    """Python's default recursion limit, which the service runs with.

    A plugin of the test environment raises the limit for the whole session, which lets the
    JSON parser survive nesting that raises RecursionError in production: tests about deep
    nesting put the default back.
    """
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    yield
    sys.setrecursionlimit(before)
