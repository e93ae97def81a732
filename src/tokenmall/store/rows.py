"""Single-row inserts and updates by key through statements built once per table.

A statement written inline, ``insert(t).values(a=1, ...)`` or ``update(t).where(...)
.values(...)``, is a new object on every call: SQLAlchemy builds it, then computes its cache key,
which for literal values means a new bound parameter and type object each, whose own cache key
inspects the type's constructor (``get_cls_kwargs``).  On the order path that was a third of the
server's profiled SQLAlchemy time for a handful of one-row statements (bench/README.md, fifth
session).  The statements here are built once per table (and key) and take their values as
execution parameters, so each call only binds.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from sqlalchemy import Connection, CursorResult, Insert, Table, Update, bindparam, insert, update

__all__ = ["insert_row", "update_by_key"]

# where-clause parameters are named apart from every column, so the rest of an execution's
# parameters are the SET clause
_KEY = "k_"


@cache
def _inserter(table: Table) -> Insert:
    return insert(table)


@cache
def _updater(table: Table, keys: tuple[str, ...]) -> Update:
    return update(table).where(*(table.c[k] == bindparam(_KEY + k) for k in keys))


def insert_row(conn: Connection, table: Table, values: Mapping[str, Any]) -> CursorResult[Any]:
    """``INSERT INTO table`` one row of ``values`` (its ``inserted_primary_key`` is set)."""
    return conn.execute(_inserter(table), dict(values))


def update_by_key(
    conn: Connection, table: Table, key: Mapping[str, Any], values: Mapping[str, Any]
) -> CursorResult[Any]:
    """``UPDATE table SET values WHERE`` each column of ``key`` equals its value."""
    if not values:
        raise ValueError("an update needs at least one column to set")
    params = {_KEY + k: v for k, v in key.items()}
    params.update(values)
    return conn.execute(_updater(table, tuple(key)), params)
