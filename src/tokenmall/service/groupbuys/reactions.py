"""How group buys react to the order flow's events, inside the event's unit of work.

* ``OrderPaid`` of a place's order: the place is paid (held in escrow) and the rules run
  (:func:`tokenmall.domain.groupbuy.join`): the group may fill, succeed, draw.  A payment that
  arrives once its group is no longer open (failed, full, past its deadline) is refunded in
  full at once: nobody is charged for a place they cannot have.
* ``OrderRefunded`` of a place's order refunded from outside the group (an operator, an
  after-sales request): a held place in an open group is freed by a full refund, and a partial
  one is refused (the place is all or nothing until confirmed), as is any refund of a held
  place of a group waiting for its draw (the draw decides it).  A confirmed place is an
  ordinary order: its refund forfeits what is still locked of an activity fund, drops a
  merchant leader's commission that was waiting for it, and a full one takes the member out of
  the group's count.
* ``OrderClosed`` of a place's unpaid order: the place is freed.
* ``OrderSettled``: a merchant leader's commission is paid once every winner's order settled.
* ``TaskDone``: a step of each of the member's locked activity funds (a sign-up with an
  invitation is the referrer's ``invite`` task: :mod:`tokenmall.service.tasks`).
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from sqlalchemy import bindparam, select, update

from tokenmall.domain import groupbuy as gb
from tokenmall.domain.events import (
    OrderClosed,
    OrderPaid,
    OrderRefunded,
    OrderSettled,
    TaskDone,
)
from tokenmall.money import cny_of_fen, fen_of
from tokenmall.service import tasks
from tokenmall.service.groupbuys import funds, moves, rows
from tokenmall.service.groupbuys.models import GroupStateError
from tokenmall.service.groupbuys.places import fail_if_empty
from tokenmall.service.orders.context import OrderContext
from tokenmall.service.uow import TenantTx
from tokenmall.store import schema as s

__all__ = ["Reactions"]


_PLACE_BY_ORDER = select(s.group_places).where(  # built once: every order event runs it
    s.group_places.c.tenant_id == bindparam("t"), s.group_places.c.order_ref == bindparam("ref")
)


def _place(tx: TenantTx, ref: str) -> Any:
    return tx.conn.execute(_PLACE_BY_ORDER, {"t": tx.tenant_id, "ref": ref}).first()


def _set_place(tx: TenantTx, place: Any, now: float, **values: Any) -> None:
    p = s.group_places.c
    tx.conn.execute(
        update(s.group_places).where(p.tenant_id == tx.tenant_id, p.id == place.id).values(values)
    )


def _group_of(tx: TenantTx, place: Any, *, lock: bool = True) -> Any:
    g = s.group_buys.c
    q = select(s.group_buys).where(g.tenant_id == tx.tenant_id, g.id == place.group_id)
    if lock and tx.conn.dialect.name != "sqlite":
        q = q.with_for_update()
    return tx.conn.execute(q).one()


class Reactions:
    """The handlers, with the order flow's context (refunds go through its providers)."""

    def __init__(self, ctx: Any) -> None:
        # the order flow's context, or a callable returning it (built after the bus)
        self._ctx = ctx

    @property
    def ctx(self) -> OrderContext:
        ctx = self._ctx() if callable(self._ctx) else self._ctx
        assert isinstance(ctx, OrderContext)
        return ctx

    def on_paid(self, tx: TenantTx, event: OrderPaid) -> None:
        place = _place(tx, event.order)
        if place is None:
            return
        grow = _group_of(tx, place)
        now = event.at
        if place.status != "pending":  # pragma: no cover - an order is paid once
            return
        if grow.state != "open" or now >= grow.deadline:
            _set_place(
                tx,
                place,
                now,
                status="refunded",
                paid_at=now,
                ended_at=now,
                reason=f"group was {grow.state} when the payment arrived",
            )
            moves.refund_order(self.ctx, tx, event.order, "group no longer open")
            return
        group = rows.domain_group(tx.conn, tx.tenant_id, grow)  # the places paid before
        _set_place(tx, place, now, status="held", paid_at=now)
        campaign = None
        crow = None
        if grow.campaign_id is not None and group.terms.mode is gb.Mode.LOTTERY:
            crow = rows.campaign_row(tx.conn, tx.tenant_id, cid=grow.campaign_id, lock=True)
            campaign = rows.domain_campaign(crow)
        done = gb.join(group, place.member, place.order_ref, rows.at_of(now), campaign=campaign)
        rows.save_group(tx.conn, tx.tenant_id, grow, group, now)
        if campaign is not None and crow is not None and campaign.fills != crow.fills:
            c = s.group_campaigns.c
            tx.conn.execute(
                update(s.group_campaigns)
                .where(c.tenant_id == tx.tenant_id, c.id == crow.id)
                .values(fills=campaign.fills)
            )
        moves.carry_out(self.ctx, tx, grow.id, done, now)

    def on_refunded(self, tx: TenantTx, event: OrderRefunded) -> None:
        place = _place(tx, event.order)
        if place is None or place.status in ("refunded", "released"):
            return  # not a place, or refunded by the group itself
        grow = _group_of(tx, place)
        full = event.refunded == event.total
        if place.status == "held":
            if grow.state != "open":
                raise GroupStateError(
                    f"order {event.order} is a place of group {grow.public_id}, which is "
                    f"{grow.state}: its draw refunds or confirms it"
                )
            if not full:
                raise GroupStateError(
                    f"order {event.order} is a place of an open group: refund it in full "
                    "(it frees the place) or not at all"
                )
            _set_place(
                tx,
                place,
                event.at,
                status="refunded",
                ended_at=event.at,
                reason="refunded before the group filled",
            )
            fail_if_empty(tx, grow.public_id, event.at)
            return
        # confirmed: an ordinary order now
        funds.on_order_refunded(tx, event.order, fen_of(event.refunded))
        if full:
            _set_place(
                tx,
                place,
                event.at,
                status="refunded",
                ended_at=event.at,
                reason="refunded after confirmation",
            )
            if not event.settled:
                _drop_commission(tx, grow.id, event.order)

    def on_closed(self, tx: TenantTx, event: OrderClosed) -> None:
        """Only the place's row: the expiry job closes orders without the tenant's lock, after
        their SKU rows, so taking the group's row here could wait in a cycle with a join
        (which holds the group's, then reserves the SKU).  A group left with no place stays
        open for others to join until its deadline fails it (a leader leaving alone fails it
        in :func:`.places.cancel`, which holds the group's lock)."""
        place = _place(tx, event.order)
        if place is None or place.status != "pending":
            return
        _set_place(
            tx,
            place,
            event.at,
            status="released",
            ended_at=event.at,
            reason=f"order {event.status}",
        )

    def on_task_done(self, tx: TenantTx, event: TaskDone) -> None:
        """A task the member did: a step of each of their locked activity funds (noted on
        the task's record)."""
        day = date.fromisoformat(event.day)
        for released in funds.on_task(tx, event.member, event.task, day, event.key):
            tasks.note_release(tx, event, released.source, released.order, released.amount)

    def on_settled(self, tx: TenantTx, event: OrderSettled) -> None:
        place = _place(tx, event.order)
        if place is None:
            return
        cm = s.group_commissions.c
        row = tx.conn.execute(
            select(s.group_commissions).where(
                cm.tenant_id == tx.tenant_id,
                cm.group_id == place.group_id,
                cm.status == "pending",
            )
        ).first()
        if row is None:
            return
        refs = json.loads(row.after_refs)
        o = s.orders.c
        settled = set(
            tx.conn.execute(
                select(o.ref).where(
                    o.tenant_id == tx.tenant_id, o.ref.in_(refs), o.settled_at.is_not(None)
                )
            ).scalars()
        )
        if not set(refs) <= settled:
            return
        grow = _group_of(tx, place, lock=False)
        key = f"group:{grow.public_id}:commission:{row.leader}"
        moves.grant(tx, key, row.leader, cny_of_fen(row.amount_fen))
        tx.conn.execute(
            update(s.group_commissions)
            .where(cm.tenant_id == tx.tenant_id, cm.id == row.id)
            .values(status="paid")
        )


def _drop_commission(tx: TenantTx, group_id: int, ref: str) -> None:
    """A winner's order refunded in full before it settled: the leader earns no commission."""
    cm = s.group_commissions.c
    row = tx.conn.execute(
        select(s.group_commissions).where(
            cm.tenant_id == tx.tenant_id, cm.group_id == group_id, cm.status == "pending"
        )
    ).first()
    if row is not None and ref in json.loads(row.after_refs):
        tx.conn.execute(
            update(s.group_commissions)
            .where(cm.tenant_id == tx.tenant_id, cm.id == row.id)
            .values(status="dropped")
        )
