"""Per-tenant numbers for the rows the API names by an integer (merchants, products, SKUs,
webhook endpoints and deliveries).

Why: a global autoincrement id tells every tenant how many products, merchants or webhook
events all the other tenants have (create one, read its id, wait, create another). Numbering
each tenant's rows from 1 tells a tenant only about its own rows, which it can list anyway.
The tables' primary key is (tenant_id, id), so the same number in two tenants is two rows;
every query already filters on tenant_id first.

The counter is one row per (tenant, kind), advanced by an upsert that returns the new value:
on PostgreSQL the row lock serialises two concurrent creations of the same kind in the same
tenant (and nothing else); on SQLite the writer already holds the database lock. A rolled-back
transaction takes its numbers back with it, so numbers have no gaps except where an operator
deleted rows.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from tokenmall.store.schema_ops import tenant_counters

Kind = Literal["merchant", "product", "sku", "webhook_endpoint", "webhook_delivery"]


def next_numbers(conn: Connection, tenant_id: int, kind: Kind, n: int = 1) -> int:
    """Reserve ``n`` consecutive numbers of ``kind`` for the tenant; returns the first.

    Must run in the transaction that inserts the rows (the numbers are then theirs, or are
    released with the rollback).
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    c = tenant_counters.c
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(tenant_counters).values(tenant_id=tenant_id, kind=kind, last=n)
    stmt = stmt.on_conflict_do_update(
        index_elements=[c.tenant_id, c.kind], set_={"last": c.last + n}
    ).returning(c.last)
    last = conn.execute(stmt).scalar_one()
    return int(last) - n + 1
