"""The scheduler's jobs: groups past their deadline fail (every paid place refunded in full,
every unpaid one's order cancelled; never treated as succeeded, no compensation), and lottery
campaigns whose draw time came are drawn.  Both are idempotent and safe from several
processes at once: each group is re-read under its lock and a group no longer open is left
alone; a campaign's draw takes only groups still ``full``."""

from __future__ import annotations

from sqlalchemy import select

from tokenmall.domain import groupbuy as gb
from tokenmall.service.groupbuys import draws, moves, rows
from tokenmall.service.orders import holds
from tokenmall.service.orders.context import OrderContext
from tokenmall.store import schema as s

__all__ = ["close_expired", "draw_due"]

_CHUNK = 100


def _tenants(ctx: OrderContext, tenant_id: int | None) -> list[int]:
    if tenant_id is not None:
        return [tenant_id]
    with ctx.store.read() as conn:
        return [
            int(t) for t in conn.execute(select(s.tenants.c.id).order_by(s.tenants.c.id)).scalars()
        ]


def close_expired(ctx: OrderContext, now: float, *, tenant_id: int | None = None) -> int:
    """Fail every open group whose deadline passed by ``now``; returns how many failed."""
    g = s.group_buys.c
    failed = 0
    for tid in _tenants(ctx, tenant_id):
        with ctx.store.read() as conn:
            due = list(
                conn.execute(
                    select(g.public_id)
                    .where(g.tenant_id == tid, g.state == "open", g.deadline <= now)
                    .order_by(g.id)
                ).scalars()
            )
        for public_id in due:
            with ctx.store.tenant_tx(tid) as tx:
                grow = rows.group_row(tx.conn, tid, public_id, lock=True)
                if grow.state != "open":
                    continue
                for p in rows.place_rows(tx.conn, tid, grow.id):
                    if p.status == "pending":  # its close frees the place
                        holds.cancel_unpaid(tx, p.order_ref, reason="group expired", now=now)
                grow = rows.group_row(tx.conn, tid, public_id, lock=True)
                group = rows.domain_group(tx.conn, tid, grow)
                done = gb.close(group, rows.at_of(now))
                if grow.state == "open":
                    group.state = gb.GroupState.FAILED
                rows.save_group(tx.conn, tid, grow, group, now)
                moves.carry_out(ctx, tx, grow.id, done, now)
                failed += 1
    return failed


def draw_due(ctx: OrderContext, now: float, *, tenant_id: int | None = None) -> int:
    """Draw every campaign whose ``next_draw_at`` came; returns how many draws ran."""
    c = s.group_campaigns.c
    count = 0
    for tid in _tenants(ctx, tenant_id):
        with ctx.store.read() as conn:
            due = list(
                conn.execute(
                    select(c.code).where(
                        c.tenant_id == tid, c.next_draw_at.is_not(None), c.next_draw_at <= now
                    )
                ).scalars()
            )
        for code in due:
            if draws.draw_campaign(ctx, tid, code, if_due=True) is not None:
                count += 1
    return count
