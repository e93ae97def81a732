"""On SQLite, every GET answers while another process holds the write lock.

Reads begin DEFERRED (``store.db.read_only``) and see the WAL snapshot; a read that began
``BEGIN IMMEDIATE`` instead would queue behind the writer, and behind every ledger batch, for
up to the 60 s busy timeout.  Another process's lock is held here for 20 s: a read that waits
for it takes that long, and the test measures each read's time.
"""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from api_helpers import ADMIN, Mall, ok
from fastapi.testclient import TestClient

HOLD_SECONDS = 20.0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_get_routes_do_not_wait_for_the_writer(client: TestClient, mall: Mall, db_url: str) -> None:
    gets = [
        ("/v1/tenants", ADMIN),
        (mall.url(""), mall.operator),
        (mall.url("/param-changes"), mall.operator),
        (mall.url("/merchants"), mall.operator),
        (mall.url(f"/merchants/{mall.merchant_id}"), mall.operator),
        (mall.url("/products"), mall.operator),
        (mall.url(f"/products/{mall.product_id}"), mall.operator),
        (mall.url("/skus"), mall.member),
        (mall.url(f"/skus/{mall.sku_id}"), mall.member),
        (mall.url("/api-keys"), mall.operator),
        (mall.url("/members"), mall.operator),
        (mall.url(f"/members/{mall.member_code}"), mall.operator),
        (mall.url("/me"), mall.member),
    ]
    other = sqlite3.connect(db_url.removeprefix("sqlite:///"), check_same_thread=False)
    other.isolation_level = None
    other.execute("BEGIN IMMEDIATE")  # the write lock, as another process's batch holds it
    release = threading.Timer(HOLD_SECONDS, other.rollback)
    release.start()
    slow = []
    try:
        for path, headers in gets:
            t0 = time.perf_counter()
            ok(client.get(path, headers=headers))
            took = time.perf_counter() - t0
            if took > HOLD_SECONDS / 4:
                slow.append((path, round(took, 1)))
    finally:
        release.cancel()
        other.rollback()
        other.close()
    assert slow == [], f"these reads waited for the writer: {slow}"
