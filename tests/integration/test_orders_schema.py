"""Migrations 0003 and 0013 create exactly the order tables store/schema.py describes (queries
use the metadata, deployments the migration: a drift would only show in production)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from tokenmall.store import schema as s

ORDER_TABLES = {
    "orders",
    "order_lines",
    "payments",
    "order_refunds",
    "provider_events",
    "payment_settings",
    "order_addresses",
    "order_shipments",
    "aftersales_requests",
    "aftersales_events",
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


def test_migration_0003_matches_the_metadata(db_engine: Engine) -> None:
    with db_engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(ctx, s.metadata)
    ours = [d for d in diffs if _name(d) in ORDER_TABLES]
    assert ours == []
    assert set(s.metadata.tables) >= ORDER_TABLES


def test_migration_0014_matches_the_metadata(db_engine: Engine) -> None:
    """The scheduler's lease and the sandbox's intents (migration 0014)."""
    tables = {"scheduler_lease", "sandbox_intents"}
    with db_engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(ctx, s.metadata)
    assert [d for d in diffs if _name(d) in tables] == []
    assert set(s.metadata.tables) >= tables
