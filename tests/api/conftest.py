"""Fixtures of the HTTP API tests: the app on each backend (the ``db_url`` fixture), a client,
and a populated tenant ("mall") with one credential of every kind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from api_helpers import Mall, make_mall, make_settings
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tokenmall.api import create_app


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
