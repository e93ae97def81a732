"""Migration 0018 creates exactly the NFG tables store/schema_nfg.py describes."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from tokenmall.store import schema as s

NFG_TABLES = {
    "nfg_collections",
    "nfg_tokens",
    "nfg_operators",
    "nfg_real_names",
    "nfg_listings",
    "nfg_events",
    "nfg_anchors",
}


def _names(diff: object) -> set[str]:
    item = diff[0] if isinstance(diff, list) else diff
    assert isinstance(item, tuple)
    found = set()
    for part in item[1:]:
        table = getattr(part, "table", None)
        for name in (getattr(table, "name", None), getattr(part, "name", None), part):
            if isinstance(name, str):
                found.add(name)
    return found


def test_migration_0018_matches_the_metadata(db_engine: Engine) -> None:
    with db_engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(ctx, s.metadata)
    assert [d for d in diffs if _names(d) & NFG_TABLES] == []
    assert set(s.metadata.tables) >= NFG_TABLES
