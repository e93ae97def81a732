"""Fixtures of the HTTP API tests: the app on each backend (the ``db_url`` fixture), a client,
and a populated tenant ("mall") with one credential of every kind."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_helpers import Mall, make_mall, make_settings
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tokenmall.api import create_app
from tokenmall.store.db import create_db_engine, migrate

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "tokenmall.db"
    engine = create_db_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()  # the last connection checkpoints the WAL into the file
    return path


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path, _sqlite_template: Path) -> str:
    """tests/conftest.py's ``db_url``, with the SQLite file copied from one migrated once per
    session: these tests each start from an empty store, and migrating costs more than a test."""
    if request.param == "sqlite":
        path = tmp_path / "tokenmall.db"
        shutil.copyfile(_sqlite_template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("_pg_url")
    return url


@pytest.fixture
def app(db_url: str) -> FastAPI:
    return create_app(make_settings(db_url))


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture
def mall(client: TestClient) -> Mall:
    return make_mall(client)
