"""Keyset pagination for every list: ``?limit=&cursor=``, answered with ``next_cursor``.

A cursor is the sort key of the last row handed out, base64url-encoded so clients treat it as
opaque (and do not build URLs out of ids).  Keyset rather than OFFSET: a page costs the same at
row 10 and at row 10 million, and rows inserted meanwhile do not shift later pages.  A cursor
needs no signature: every query it feeds is also filtered by the caller's tenant, so a forged
cursor can only skip rows the caller may see anyway.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Column, Connection, Select

from tokenmall.service.errors import InvalidCursor

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "Page", "decode_cursor", "encode_cursor", "fetch_page"]

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_PREFIX = "c1:"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The id after which the next page starts; anything else is refused (422, not 500)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidCursor("cursor is not one this service handed out") from None
    if not raw.startswith(_PREFIX) or not raw[len(_PREFIX) :].isdigit():
        raise InvalidCursor("cursor is not one this service handed out")
    value = int(raw[len(_PREFIX) :])
    if value >= 2**63:
        raise InvalidCursor("cursor is not one this service handed out")
    return value


def fetch_page(
    conn: Connection,
    query: Select[Any],
    id_column: Column[int],
    *,
    limit: int,
    cursor: str | None,
    convert: Callable[[Any], T],
    newest_first: bool = False,
) -> Page[T]:
    """One page of ``query`` (already filtered by tenant) in ascending ``id_column`` order,
    or descending with ``newest_first`` (a member's own list, latest on top)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidCursor(f"limit must be between 1 and {MAX_LIMIT}")
    if cursor is not None:
        after = decode_cursor(cursor)
        query = query.where(id_column < after if newest_first else id_column > after)
    order = id_column.desc() if newest_first else id_column
    rows: Sequence[Any] = conn.execute(query.order_by(order).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(int(getattr(rows[-1], id_column.name))) if more else None
    return Page([convert(r) for r in rows], next_cursor)
