"""Migration 0015 gives ``members`` exactly what store/schema.py describes: the ``sp_debt``
column and its partial index (the ledger's queries use the metadata, deployments the
migrations)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from tokenmall.store import schema as s


def _table(diff: object) -> str | None:
    """The table an autogenerate diff is about (an index or column names its table)."""
    item = diff[0] if isinstance(diff, list) else diff
    assert isinstance(item, tuple)
    for part in item[1:]:
        table = getattr(part, "table", None)
        name = getattr(table, "name", None) or getattr(part, "name", None)
        if isinstance(part, str):
            return part
        if isinstance(name, str):
            return name
    return None


def test_migrated_members_match_the_metadata(db_engine: Engine) -> None:
    with db_engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(ctx, s.metadata)
        insp = inspect(conn)
        cols = {c["name"] for c in insp.get_columns("members")}
        indexes = {i["name"] for i in insp.get_indexes("members")}
    assert [d for d in diffs if _table(d) == "members"] == []
    assert "sp_debt" in cols
    assert "ix_members_tenant_sp_debt" in indexes
