"""Merchants, products, SKUs and webhook endpoints and deliveries are numbered per tenant
(store/numbers.py, migration 0019), on SQLite and PostgreSQL.

What must hold: a tenant's numbers start at 1 whatever other tenants did (an id tells a tenant
nothing about anyone else's volume); concurrent creations in one tenant get distinct numbers
and none fails; a rolled-back creation gives its number back; the table definitions match the
migrations.
"""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, select

from tokenmall.service import catalog, webhooks
from tokenmall.service.ledger import Ledger
from tokenmall.store import schema as s
from tokenmall.store.db import create_db_engine
from tokenmall.store.numbers import next_numbers

NUMBERED = {
    "merchants",
    "products",
    "skus",
    "webhook_endpoints",
    "webhook_deliveries",
    "tenant_counters",
}


def _tenant(ledger: Ledger) -> int:
    return ledger.create_tenant(f"t-{uuid.uuid4().hex[:12]}")


def _catalog(engine: Engine, tid: int, skus: int) -> tuple[int, int, list[int]]:
    with engine.begin() as conn:
        merchant = catalog.create_merchant(conn, tid, code=uuid.uuid4().hex[:8], name="M")
        product = catalog.create_product(conn, tid, merchant_id=merchant.id, name="P")
        ids = [
            catalog.create_sku(
                conn, tid, product_id=product.id, name=f"s{i}", price=Decimal(10), stock=1
            ).id
            for i in range(skus)
        ]
    return merchant.id, product.id, ids


def test_each_tenant_numbers_its_own_rows_from_one(db_engine: Engine, ledger: Ledger) -> None:
    first, second = _tenant(ledger), _tenant(ledger)
    assert _catalog(db_engine, first, 3) == (1, 1, [1, 2, 3])
    # the first tenant's volume shows nowhere in the second's ids
    assert _catalog(db_engine, second, 2) == (1, 1, [1, 2])
    assert _catalog(db_engine, first, 1) == (2, 2, [4])
    with db_engine.begin() as conn:
        # the same number in two tenants names two rows, each its own tenant's
        assert catalog.get_sku(conn, first, 1).name == "s0"
        assert catalog.get_sku(conn, second, 2).name == "s1"
        ep = [
            webhooks.create_endpoint(
                conn, tid, url="https://example.com/h", events=["day.closed"], description=None,
                actor="op",
            )[0].id
            for tid in (first, second, first)
        ]  # fmt: skip
    assert ep == [1, 1, 2]


def test_a_rolled_back_creation_gives_its_number_back(db_engine: Engine, ledger: Ledger) -> None:
    tid = _tenant(ledger)

    class Undo(Exception):
        pass

    def create_then_fail() -> None:
        with db_engine.begin() as conn:
            assert catalog.create_merchant(conn, tid, code="gone", name="Gone").id == 1
            raise Undo

    with pytest.raises(Undo):
        create_then_fail()
    with db_engine.begin() as conn:
        assert catalog.create_merchant(conn, tid, code="kept", name="Kept").id == 1
        assert next_numbers(conn, tid, "merchant", 3) == 2  # 2, 3 and 4 reserved
        assert next_numbers(conn, tid, "merchant") == 5
        with pytest.raises(ValueError, match="at least 1"):
            next_numbers(conn, tid, "merchant", 0)


def test_concurrent_creations_in_one_tenant_get_distinct_numbers(db_url: str) -> None:
    workers, each = 6, 5
    engine = create_db_engine(db_url, pool_size=workers, max_overflow=0)
    try:
        ledger = Ledger(engine)
        tid = _tenant(ledger)
        with engine.begin() as conn:
            merchant = catalog.create_merchant(conn, tid, code="m", name="M").id
        start = threading.Barrier(workers)
        got: list[int] = []
        errors: list[BaseException] = []

        def create() -> None:
            try:
                start.wait()
                for i in range(each):
                    with engine.begin() as conn:
                        product = catalog.create_product(
                            conn, tid, merchant_id=merchant, name=f"p{i}"
                        )
                    got.append(product.id)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=create) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert sorted(got) == list(range(1, workers * each + 1))
        with engine.connect() as conn:
            stored = conn.execute(
                select(s.products.c.id).where(s.products.c.tenant_id == tid)
            ).scalars()
            assert sorted(stored) == sorted(got)
    finally:
        engine.dispose()


def test_migration_0019_matches_the_metadata(db_engine: Engine) -> None:
    with db_engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(ctx, s.metadata)
    names = set()
    for diff in diffs:
        item = diff[0] if isinstance(diff, list) else diff
        for part in item[1:]:
            table = getattr(part, "table", None)
            name = getattr(table, "name", None) or getattr(part, "name", None)
            if isinstance(name, str):
                names.add(name)
                break
    assert names & NUMBERED == set(), diffs
    with db_engine.connect() as conn:
        for table in NUMBERED - {"tenant_counters"}:
            key = list(s.metadata.tables[table].primary_key.columns.keys())
            assert key == ["tenant_id", "id"], table
            assert inspect(conn).get_pk_constraint(table)["constrained_columns"] == key
