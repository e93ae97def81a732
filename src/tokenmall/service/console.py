"""Counts the operator console's dashboard shows that no other read gives: orders placed and
members who joined in a window of time (the tenant's local day).

Everything else on the dashboard comes from the reads the JSON API serves (the economy, the
daily series); these two are plain counts over the tenant's own rows, read in one snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from tokenmall.store import schema as s

__all__ = ["WindowCounts", "referrals", "window_counts"]


@dataclass(frozen=True, slots=True)
class WindowCounts:
    orders: int  # orders created in the window, whatever became of them
    paid_orders: int  # of those, the ones that were paid (paid_at set)
    new_members: int


def window_counts(conn: Connection, tenant_id: int, start: float, end: float) -> WindowCounts:
    """Orders and members created in ``[start, end)`` (Unix seconds)."""
    o = s.orders.c
    orders, paid = conn.execute(
        select(func.count(), func.count(o.paid_at)).where(
            o.tenant_id == tenant_id, o.created_at >= start, o.created_at < end
        )
    ).one()
    p = s.member_profiles.c
    joined = conn.execute(
        select(func.count()).where(
            p.tenant_id == tenant_id, p.created_at >= start, p.created_at < end
        )
    ).scalar_one()
    return WindowCounts(orders=int(orders), paid_orders=int(paid), new_members=int(joined))


def referrals(conn: Connection, tenant_id: int, referrer: str, *, limit: int) -> list[str]:
    """The codes of the members ``referrer`` brought in, in order of joining (first ``limit``)."""
    p = s.member_profiles.c
    rows = conn.execute(
        select(p.code)
        .where(p.tenant_id == tenant_id, p.referrer == referrer)
        .order_by(p.id)
        .limit(limit)
    )
    return [str(code) for (code,) in rows]
