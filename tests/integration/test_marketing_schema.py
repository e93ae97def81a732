"""Migrations 0016 and 0020 create exactly the marketing tables (and members' tasks) the
SQLAlchemy metadata describes."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from tokenmall.store import schema as s

TABLES = {
    "marketing_config",
    "marketing_changes",
    "marketing_orders",
    "marketing_state",
    "marketing_rewards",
    "marketing_moves",
    "member_tasks",  # migration 0020
    "group_offers",  # 0017, with closed_at and closed_by from 0020
}


def _name(diff: object) -> str | None:
    item = diff[0] if isinstance(diff, list) else diff
    assert isinstance(item, tuple)
    for part in item[1:]:
        table = getattr(part, "table", None)
        name = getattr(table, "name", None) or getattr(part, "name", None)
        if isinstance(name, str):
            return name
        if isinstance(part, str):
            return part
    return None


def test_migration_0016_matches_the_metadata(db_engine: Engine) -> None:
    with db_engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(ctx, s.metadata)
    ours = [d for d in diffs if _name(d) in TABLES]
    assert ours == []
    assert set(s.metadata.tables) >= TABLES
