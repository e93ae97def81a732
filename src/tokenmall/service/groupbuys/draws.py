"""Lottery campaigns' draws and the public draw records anyone can check.

A campaign's draw takes every group of it that filled since the last draw (in the order they
filled), draws ``k`` of them with the seed the campaign committed to, confirms the winners'
places (groups in fill order, members in join order: the EP price moves as if they were
bought one after another), refunds every member of the other groups in full with the offer's
compensation in SP, reveals the seed in the draw's record and commits to the next seed.  The
number of winners is the campaign's, fixed before the draw; nobody can name a winner.

The public record (no credentials, by the group's or campaign's opaque id) is exactly what
:func:`tokenmall.domain.draw.verify` and ``tokenmall groupbuy verify`` recompute.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, insert, select, update

from tokenmall.domain import draw
from tokenmall.domain import groupbuy as gb
from tokenmall.errors import NotFound
from tokenmall.service.groupbuys import moves, rows
from tokenmall.service.orders.context import OrderContext
from tokenmall.store import schema as s

__all__ = ["campaign_draws", "draw_campaign", "public_campaign_draw", "public_group_record"]


def draw_campaign(
    ctx: OrderContext, tenant_id: int, code: str, *, if_due: bool = False
) -> dict[str, Any] | None:
    """Run the campaign's draw now; returns its public record.  ``if_due``: only if its
    scheduled time has come (re-read under the campaign's lock, so two schedulers draw once);
    None if it was not due."""
    now = ctx.clock()
    with ctx.store.tenant_tx(tenant_id) as tx:
        crow = rows.campaign_row(tx.conn, tenant_id, code=code, lock=True)
        if if_due and (crow.next_draw_at is None or crow.next_draw_at > now):
            return None
        g = s.group_buys.c
        q = (
            select(s.group_buys)
            .where(g.tenant_id == tenant_id, g.campaign_id == crow.id, g.state == "full")
            .order_by(g.fill_no)
        )
        grows = list(
            tx.conn.execute(q if tx.conn.dialect.name == "sqlite" else q.with_for_update())
        )
        groups = rows.domain_groups(tx.conn, tenant_id, grows)
        campaign = rows.domain_campaign(crow)
        done = gb.campaign_draw(campaign, groups, crow.winners, rows.at_of(now), draw.new_seed())
        record = campaign.draws[-1]
        no = crow.draws + 1
        for r, group in zip(grows, groups, strict=True):
            rows.save_group(tx.conn, tenant_id, r, group, now)
        tx.conn.execute(
            update(s.group_buys)
            .where(g.tenant_id == tenant_id, g.id.in_([r.id for r in grows]))
            .values(draw_no=no)
        )
        tx.conn.execute(
            insert(s.group_campaign_draws).values(
                tenant_id=tenant_id,
                campaign_id=crow.id,
                no=no,
                at=now,
                commitment=record.commitment,
                seed=record.seed.hex(),
                candidates=json.dumps(list(record.candidates)),
                k=record.k,
                winners=json.dumps(list(record.winners)),
            )
        )
        c = s.group_campaigns.c
        every = crow.draw_every
        tx.conn.execute(
            update(s.group_campaigns)
            .where(c.tenant_id == tenant_id, c.id == crow.id)
            .values(
                seed=campaign.seed.hex(),
                commitment=campaign.commitment,
                draws=no,
                next_draw_at=None if every is None else max(now, crow.next_draw_at or now) + every,
            )
        )
        # the rules list the winners' confirmations first (groups in fill order, members in
        # join order), then each lost group's refunds and compensation: one pass, one ledger
        # batch of compensation (a lottery has no commission or fund tied to a group)
        moves.carry_out(ctx, tx, None, done, now)
        return _campaign_record(crow.public_id, no, record.public())


def _campaign_record(public_id: str, no: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"campaign": public_id, "draw": no, **body}


def public_campaign_draw(conn: Connection, public_id: str, no: int) -> dict[str, Any]:
    """A campaign's draw ``no`` as published (NotFound if there is none)."""
    c, d = s.group_campaigns.c, s.group_campaign_draws.c
    row = conn.execute(
        select(s.group_campaign_draws)
        .select_from(
            s.group_campaign_draws.join(
                s.group_campaigns,
                (c.tenant_id == d.tenant_id) & (c.id == d.campaign_id),
            )
        )
        .where(c.public_id == public_id, d.no == no)
    ).first()
    if row is None:
        raise NotFound(f"no draw {no} of campaign {public_id!r}")
    return _campaign_record(public_id, no, _draw_body(row))


def campaign_draws(conn: Connection, tenant_id: int, code: str) -> list[dict[str, Any]]:
    """A campaign's draws, newest first, each as its public record with its time (``at``)."""
    crow = rows.campaign_row(conn, tenant_id, code=code)
    d = s.group_campaign_draws.c
    found = conn.execute(
        select(s.group_campaign_draws)
        .where(d.tenant_id == tenant_id, d.campaign_id == crow.id)
        .order_by(d.no.desc())
    )
    return [
        {**_campaign_record(crow.public_id, int(r.no), _draw_body(r)), "at": r.at} for r in found
    ]


def _draw_body(row: Any) -> dict[str, Any]:
    return {
        "commitment": row.commitment,
        "seed": row.seed,
        "candidates": json.loads(row.candidates),
        "k": int(row.k),
        "winners": json.loads(row.winners),
    }


def public_group_record(conn: Connection, public_id: str) -> dict[str, Any]:
    """What anyone may see of a group's draw: the commitment from the moment it opened, the
    seed, candidates and winners once drawn.  A lottery group shows its campaign's draw."""
    g = s.group_buys.c
    row = conn.execute(select(s.group_buys).where(g.public_id == public_id)).first()
    if row is None:
        raise NotFound(f"no group {public_id!r}")
    tid = int(row.tenant_id)
    offer = rows.offer_by_id(conn, tid, row.offer_id)
    head: dict[str, Any] = {"group": public_id, "mode": offer.mode, "state": row.state}
    if offer.mode in (gb.Mode.MERCHANT.value, gb.Mode.ACTIVITY.value):
        drawn = row.winners is not None
        return {
            **head,
            "commitment": row.commitment,
            "seed": row.seed if drawn else None,
            "candidates": json.loads(row.candidates) if drawn else [],
            "k": int(row.k) if drawn else int(offer.winners),
            "winners": json.loads(row.winners) if drawn else [],
        }
    if offer.mode == gb.Mode.LOTTERY.value:
        crow = rows.campaign_row(conn, tid, cid=row.campaign_id)
        head["campaign"] = crow.public_id
        if row.draw_no is not None:
            d = s.group_campaign_draws.c
            drow = conn.execute(
                select(s.group_campaign_draws).where(
                    d.tenant_id == tid, d.campaign_id == crow.id, d.no == row.draw_no
                )
            ).one()
            return {**head, "draw": int(row.draw_no), **_draw_body(drow)}
        return {
            **head,
            "draw": None,
            "commitment": crow.commitment,
            "seed": None,
            "candidates": [],
            "k": int(crow.winners),
            "winners": [],
        }
    return {**head, "commitment": None, "seed": None, "candidates": [], "k": 0, "winners": []}
