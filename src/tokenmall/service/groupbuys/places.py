"""A member's places: open a group, join one, cancel before it fills.

A place is reserved by an order at the group price (stock reserved with it) in the unit of
work that inserts the place, under the group's row lock: so of members racing for the last
place exactly one gets it and the others are refused (409 ``group_full``) before paying
anything.  The place counts in the rules once its order is paid (:mod:`.reactions`); an order
that closes unpaid frees it.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import func, insert, select

from tokenmall.domain import draw
from tokenmall.domain import groupbuy as gb
from tokenmall.errors import NotFound, UnknownMember
from tokenmall.service import members
from tokenmall.service.groupbuys import moves, rows
from tokenmall.service.groupbuys.models import GroupFull, GroupStateError, GroupView
from tokenmall.service.orders import holds
from tokenmall.service.orders.context import OrderContext
from tokenmall.service.uow import TenantTx
from tokenmall.store import schema as s

__all__ = ["HOLD", "cancel", "join", "open_group"]

HOLD = "group"  # orders.hold of a group place


def _check_member(tx: TenantTx, member: str) -> None:
    members.check_member_code(member)
    try:
        members.get_profile(tx.conn, tx.tenant_id, member)
    except NotFound:
        raise UnknownMember(f"no member {member!r}") from None


def _add_place(
    ctx: OrderContext, tx: TenantTx, group: Any, offer: Any, *, member: str, now: float
) -> None:
    p = s.group_places.c
    last = tx.conn.execute(
        select(func.max(p.no)).where(p.tenant_id == tx.tenant_id, p.group_id == group.id)
    ).scalar()
    order = holds.create_held(
        ctx, tx, member=member, sku_id=offer.sku_id, price_fen=offer.price_fen, hold=HOLD
    )
    tx.conn.execute(
        insert(s.group_places).values(
            tenant_id=tx.tenant_id,
            group_id=group.id,
            no=int(last or 0) + 1,
            member=member,
            order_ref=order.ref,
            status="pending",
            joined_at=now,
        )
    )


def open_group(ctx: OrderContext, tenant_id: int, *, offer: str, member: str) -> GroupView:
    """``member`` opens a group of ``offer`` and is its leader, with the first place (its order
    to pay).  A merchant or activity group commits to its draw's seed now, before anyone joins;
    a lottery group is drawn by its campaign, which committed when it was created."""
    now = ctx.clock()
    with ctx.store.tenant_tx(tenant_id, lock=False) as tx:
        _check_member(tx, member)
        orow = rows.offer_row(tx.conn, tenant_id, offer)
        if not orow.active:
            raise GroupStateError(f"offer {offer!r} is closed")
        seed = None
        if gb.Mode(orow.mode) in (gb.Mode.MERCHANT, gb.Mode.ACTIVITY):
            seed = draw.new_seed()
        public_id = "g" + secrets.token_hex(8)
        tx.conn.execute(
            insert(s.group_buys).values(
                tenant_id=tenant_id,
                public_id=public_id,
                offer_id=orow.id,
                campaign_id=orow.campaign_id,
                leader=member,
                state="open",
                opened_at=now,
                deadline=now + orow.deadline_seconds,
                seed=None if seed is None else seed.hex(),
                commitment=None if seed is None else draw.commitment(seed),
            )
        )
        grow = rows.group_row(tx.conn, tenant_id, public_id)
        _add_place(ctx, tx, grow, orow, member=member, now=now)
        return rows.group_view(tx.conn, tenant_id, grow)


def join(ctx: OrderContext, tenant_id: int, public_id: str, *, member: str) -> GroupView:
    """``member`` takes a place in an open group (its order to pay), if one is free."""
    now = ctx.clock()
    with ctx.store.tenant_tx(tenant_id) as tx:
        _check_member(tx, member)
        grow = rows.group_row(tx.conn, tenant_id, public_id, lock=True)
        if grow.state != "open":
            raise GroupStateError(f"group {public_id} is {grow.state}, not open")
        if now >= grow.deadline:
            raise GroupStateError(f"group {public_id} is past its deadline")
        places = rows.place_rows(tx.conn, tenant_id, grow.id)
        active = [p for p in places if p.status in rows.ACTIVE]
        if any(p.member == member for p in active):
            raise GroupStateError(f"{member} already has a place in group {public_id}")
        orow = rows.offer_by_id(tx.conn, tenant_id, grow.offer_id)
        if len(active) >= orow.size:
            raise GroupFull(f"every place of group {public_id} is taken")
        _add_place(ctx, tx, grow, orow, member=member, now=now)
        return rows.group_view(tx.conn, tenant_id, grow)


def cancel(ctx: OrderContext, tenant_id: int, public_id: str, *, member: str) -> GroupView:
    """``member`` leaves an open group: an unpaid place's order is cancelled, a paid one is
    refunded in full at once.  The leader may leave only while alone (the group then fails)."""
    now = ctx.clock()
    with ctx.store.tenant_tx(tenant_id) as tx:
        grow = rows.group_row(tx.conn, tenant_id, public_id, lock=True)
        if grow.state != "open":
            raise GroupStateError(f"group {public_id} is {grow.state}: too late to cancel")
        places = rows.place_rows(tx.conn, tenant_id, grow.id)
        mine = [p for p in places if p.member == member and p.status in ("pending", "held")]
        if not mine:
            raise NotFound(f"{member} has no place in group {public_id}")
        place = mine[0]
        others = [p for p in places if p.member != member and p.status in ("pending", "held")]
        if member == grow.leader and others:
            raise GroupStateError(
                f"the leader of group {public_id} cannot cancel once others have joined"
            )
        if place.status == "pending":
            holds.cancel_unpaid(tx, place.order_ref, reason="left the group", now=now)
            # the order's close frees the place (reactions.on_closed); a leader alone: it fails
            if not others:
                fail_if_empty(tx, public_id, now)
        else:
            group = rows.domain_group(tx.conn, tenant_id, grow)
            done = gb.cancel(group, member, rows.at_of(now))
            rows.save_group(tx.conn, tenant_id, grow, group, now)
            moves.carry_out(ctx, tx, grow.id, done, now)
            if not others:
                fail_if_empty(tx, public_id, now)
        return rows.group_view(tx.conn, tenant_id, rows.group_row(tx.conn, tenant_id, public_id))


def fail_if_empty(tx: TenantTx, public_id: str, now: float) -> None:
    """An open group with no place left (paid or being paid) has failed."""
    grow = rows.group_row(tx.conn, tx.tenant_id, public_id)
    if grow.state != "open":
        return
    places = rows.place_rows(tx.conn, tx.tenant_id, grow.id)
    if any(p.status in ("pending", "held") for p in places):
        return
    g = s.group_buys.c
    tx.conn.execute(
        s.group_buys.update()
        .where(g.tenant_id == tx.tenant_id, g.id == grow.id, g.state == "open")
        .values(state="failed", ended_at=now)
    )
