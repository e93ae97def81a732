"""Stock is reserved with a conditional UPDATE: concurrent reservers never take more than
there is, on SQLite (one file, many connections or processes) and PostgreSQL."""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from decimal import Decimal

import pytest
from api_helpers import reserve_in_process
from sqlalchemy import Engine

from tokenmall.errors import InvalidCommand
from tokenmall.service import catalog
from tokenmall.service.ledger import Ledger
from tokenmall.store.db import create_db_engine

RESERVERS = 50
UNITS = 10


def _sku(engine: Engine, stock: int) -> tuple[int, int]:
    ledger = Ledger(engine)
    tid = ledger.create_tenant(f"t-{uuid.uuid4().hex[:12]}")
    with engine.begin() as conn:
        merchant = catalog.create_merchant(conn, tid, code="m", name="M")
        product = catalog.create_product(conn, tid, merchant_id=merchant.id, name="P")
        sku = catalog.create_sku(
            conn, tid, product_id=product.id, name="S", price=Decimal(100), stock=stock
        )
    return tid, sku.id


def _stock(engine: Engine, tid: int, sku_id: int) -> int:
    with engine.connect() as conn:
        return catalog.get_sku(conn, tid, sku_id).stock


def test_50_concurrent_reservers_of_the_last_10_units_get_exactly_10(db_url: str) -> None:
    engine = create_db_engine(db_url, pool_size=RESERVERS, max_overflow=0)
    try:
        tid, sku_id = _sku(engine, UNITS)
        start = threading.Barrier(RESERVERS)

        def reserve() -> bool:
            start.wait()
            with engine.begin() as conn:
                return catalog.reserve_stock(conn, tid, sku_id, 1)

        with ThreadPoolExecutor(RESERVERS) as pool:
            results = list(pool.map(lambda _: reserve(), range(RESERVERS)))
        assert sum(results) == UNITS
        assert _stock(engine, tid, sku_id) == 0
    finally:
        engine.dispose()


def test_reservers_in_separate_processes_never_oversell(db_url: str) -> None:
    engine = create_db_engine(db_url)
    try:
        tid, sku_id = _sku(engine, UNITS)
    finally:
        engine.dispose()
    processes, each = 5, RESERVERS // 5
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=spawn) as pool:
        futures = [
            pool.submit(reserve_in_process, db_url, tid, sku_id, each) for _ in range(processes)
        ]
        got = sum(f.result() for f in futures)
    assert got == UNITS
    engine = create_db_engine(db_url)
    try:
        assert _stock(engine, tid, sku_id) == 0
    finally:
        engine.dispose()


def test_reserve_and_release(db_engine: Engine) -> None:
    tid, sku_id = _sku(db_engine, 5)
    other_tid, _ = _sku(db_engine, 5)
    with db_engine.begin() as conn:
        assert catalog.reserve_stock(conn, tid, sku_id, 3)
        assert not catalog.reserve_stock(conn, tid, sku_id, 3)  # 2 left: all or nothing
        assert catalog.reserve_stock(conn, tid, sku_id, 2)
        assert not catalog.reserve_stock(conn, tid, sku_id, 1)
        assert catalog.release_stock(conn, tid, sku_id, 4)
        # scoped by tenant: SKUs are numbered per tenant, so the other tenant's SKU with the
        # same number is its own row, which nothing above touched
        assert catalog.get_sku(conn, other_tid, sku_id).stock == 5
        assert not catalog.reserve_stock(conn, tid, 10**9, 1)
        for bad in (0, -1, True):
            with pytest.raises(InvalidCommand):
                catalog.reserve_stock(conn, tid, sku_id, bad)
            with pytest.raises(InvalidCommand):
                catalog.release_stock(conn, tid, sku_id, bad)
    assert _stock(db_engine, tid, sku_id) == 4


def test_a_rolled_back_reservation_gives_its_units_back(db_engine: Engine) -> None:
    tid, sku_id = _sku(db_engine, 1)

    class OrderFailed(Exception):
        pass

    def order() -> None:
        with db_engine.begin() as conn:
            assert catalog.reserve_stock(conn, tid, sku_id, 1)
            raise OrderFailed  # e.g. the payment intent could not be created

    with pytest.raises(OrderFailed):
        order()
    assert _stock(db_engine, tid, sku_id) == 1
