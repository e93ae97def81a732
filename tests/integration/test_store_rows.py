"""store.rows: one-row inserts and updates by key through statements built once per table."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from tokenmall.service.ledger import Ledger
from tokenmall.store import schema as s
from tokenmall.store.rows import insert_row, update_by_key


def test_insert_then_update_by_key_touches_only_the_keyed_row(
    db_engine: Engine, ledger: Ledger, tenant_code: str
) -> None:
    tid = ledger.ensure_tenant(tenant_code)
    m = s.merchants.c
    with db_engine.begin() as conn:
        ids = [
            insert_row(
                conn,
                s.merchants,
                {"tenant_id": tid, "id": no, "code": code, "name": code.upper(), "created_at": 1.0},
            ).inserted_primary_key[1]  # the key is (tenant_id, id)
            for no, code in ((7, "a"), (9, "b"))
        ]
        assert ids == [7, 9]
        # the same statement again, with another set of columns to change
        named = update_by_key(conn, s.merchants, {"tenant_id": tid, "id": ids[0]}, {"name": "Ann"})
        assert named.rowcount == 1
        done = update_by_key(
            conn, s.merchants, {"tenant_id": tid, "id": ids[1]}, {"accepts_sp": True}
        )
        assert done.rowcount == 1
        missing = update_by_key(conn, s.merchants, {"tenant_id": tid, "id": -1}, {"name": "x"})
        assert missing.rowcount == 0
        rows = conn.execute(
            select(m.code, m.name, m.accepts_sp).where(m.tenant_id == tid).order_by(m.code)
        ).all()
    assert [tuple(r) for r in rows] == [("a", "Ann", False), ("b", "B", True)]


def test_an_update_without_columns_is_refused(db_engine: Engine) -> None:
    with db_engine.begin() as conn, pytest.raises(ValueError, match="at least one column"):
        update_by_key(conn, s.merchants, {"id": 1}, {})
