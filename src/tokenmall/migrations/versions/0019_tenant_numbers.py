"""Merchants, products, SKUs and webhook endpoints and deliveries numbered per tenant

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 19:40:00

A global autoincrement id shows every tenant the volume of all the others (create a product,
read its id, create another a day later).  From here these rows are numbered per tenant by a
counter row per (tenant, kind) (``tenant_counters``, store/numbers.py) and keyed by
(tenant_id, id).  Existing rows keep their ids (they are unique within their tenant too); each
tenant's counter starts at its highest id, so new rows follow on.

PostgreSQL: the key is swapped in place and the sequence dropped.  SQLite cannot alter a
primary key: each table is rebuilt (alembic's batch mode) with foreign keys deferred to the
commit, because the children still point at the parent while it is rebuilt.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

# parents before children (SQLite rebuilds them in this order)
_TABLES = (
    ("merchants", "merchant"),
    ("products", "product"),
    ("skus", "sku"),
    ("webhook_endpoints", "webhook_endpoint"),
    ("webhook_deliveries", "webhook_delivery"),
)


def upgrade() -> None:
    op.create_table(
        "tenant_counters",
        sa.Column("tenant_id", sa.Integer(), sa.ForeignKey("tenants.id"), primary_key=True),
        sa.Column("kind", sa.String(24), primary_key=True),
        sa.Column("last", sa.BigInteger(), nullable=False),
        sqlite_with_rowid=False,
    )
    bind = op.get_bind()
    for table, kind in _TABLES:
        if bind.dialect.name == "postgresql":
            old = sa.inspect(bind).get_pk_constraint(table)["name"] or f"{table}_pkey"
            op.drop_constraint(old, table, type_="primary")
            op.create_primary_key(f"pk_{table}", table, ["tenant_id", "id"])
            op.alter_column(table, "id", server_default=None)
            op.execute(f"DROP SEQUENCE IF EXISTS {table}_id_seq")
        else:
            _rebuild_sqlite(bind, table)
        src = sa.table(table, sa.column("tenant_id"), sa.column("id"))
        op.execute(
            sa.insert(
                sa.table(
                    "tenant_counters", sa.column("tenant_id"), sa.column("kind"), sa.column("last")
                )
            ).from_select(
                ["tenant_id", "kind", "last"],
                sa.select(src.c.tenant_id, sa.literal(kind), sa.func.max(src.c.id)).group_by(
                    src.c.tenant_id
                ),
            )
        )


def _rebuild_sqlite(bind: sa.Connection, table: str) -> None:
    """SQLite's documented rebuild: the same CREATE with the new key, copy, drop, rename,
    indexes again (store.db.migrate runs this with foreign keys off and checks them all
    before the commit)."""
    create, indexes = _definition(bind, table)
    pk = "PRIMARY KEY (id)"
    if pk not in create:
        raise RuntimeError(f"unexpected definition of {table}: {create}")
    tmp = f"_rebuild_{table}"
    create = create.replace(pk, "PRIMARY KEY (tenant_id, id)", 1)
    create = create.replace(f"CREATE TABLE {table} (", f"CREATE TABLE {tmp} (", 1)
    columns = ", ".join(c["name"] for c in sa.inspect(bind).get_columns(table))
    op.execute(create)
    op.execute(f"INSERT INTO {tmp} ({columns}) SELECT {columns} FROM {table}")  # noqa: S608
    op.execute(f"DROP TABLE {table}")
    op.execute(f"ALTER TABLE {tmp} RENAME TO {table}")
    for index in indexes:
        op.execute(index)


def _definition(bind: sa.Connection, table: str) -> tuple[str, list[str]]:
    rows = bind.exec_driver_sql(
        "SELECT type, sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL", (table,)
    ).all()
    create = next(sql for kind, sql in rows if kind == "table")
    return create, [sql for kind, sql in rows if kind == "index"]


def downgrade() -> None:
    raise NotImplementedError("per-tenant numbers collide across tenants: no way back to global")
