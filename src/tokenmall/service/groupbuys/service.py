"""The group buys' facade: one object the API, the scheduler, the CLI and the tests call.

It works through the order flow (:class:`~tokenmall.service.orders.OrderService`): each place
is an order paid like any other, held in escrow until its group confirms it.  The handlers it
hands to the composition root (:meth:`GroupBuys.handlers`) are how a payment, a refund or an
order's close reaches a group.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from tokenmall.domain.events import (
    OrderClosed,
    OrderPaid,
    OrderRefunded,
    OrderSettled,
    TaskDone,
)
from tokenmall.errors import InvalidCommand
from tokenmall.service import tasks
from tokenmall.service.codec import cny
from tokenmall.service.groupbuys import draws, funds, jobs, moves, offers, places, rows
from tokenmall.service.groupbuys.models import Campaign, GroupView, Offer
from tokenmall.service.groupbuys.reactions import Reactions
from tokenmall.service.messagebus import Handler
from tokenmall.service.orders import OrderService
from tokenmall.service.orders.context import OrderContext
from tokenmall.service.pages import Page, fetch_page
from tokenmall.store import schema as s

__all__ = ["GroupBuys"]


class GroupBuys:
    """Group buys of every tenant.  ``orders``: the order flow, or a callable returning it
    (the composition root builds the event handlers before the order service)."""

    def __init__(self, orders: OrderService | Callable[[], OrderService]) -> None:
        self._orders = orders
        self.reactions = Reactions(lambda: self.ctx)

    @property
    def orders(self) -> OrderService:
        return self._orders if isinstance(self._orders, OrderService) else self._orders()

    @property
    def ctx(self) -> OrderContext:
        return self.orders.ctx

    def handlers(self) -> dict[type, list[Handler]]:
        r = self.reactions
        return {
            OrderPaid: [r.on_paid],
            OrderRefunded: [r.on_refunded],
            OrderClosed: [r.on_closed],
            OrderSettled: [r.on_settled],
            TaskDone: [r.on_task_done],
        }

    # ------------------------------------------------------------------ the operator's

    def create_campaign(
        self,
        tenant_id: int,
        *,
        code: str,
        winners: int,
        draw_every_hours: Decimal | None = None,
        actor: str,
    ) -> Campaign:
        """A lottery campaign; it commits to its first draw's seed now."""
        return offers.create_campaign(
            self.ctx.store,
            tenant_id,
            code=code,
            winners=winners,
            draw_every_hours=draw_every_hours,
            actor=actor,
            now=self.ctx.clock(),
        )

    def get_campaign(self, tenant_id: int, code: str) -> Campaign:
        with self.ctx.store.read() as conn:
            return offers.get_campaign(conn, tenant_id, code)

    def list_campaigns(self, tenant_id: int, *, limit: int, cursor: str | None) -> Page[Campaign]:
        with self.ctx.store.read() as conn:
            return offers.list_campaigns(conn, tenant_id, limit=limit, cursor=cursor)

    def create_offer(self, tenant_id: int, *, actor: str, **terms: Any) -> Offer:
        """An offer on a SKU: mode and parameters (see :func:`.offers.create_offer`)."""
        return offers.create_offer(
            self.ctx.store, tenant_id, actor=actor, now=self.ctx.clock(), **terms
        )

    def list_offers(
        self,
        tenant_id: int,
        *,
        limit: int,
        cursor: str | None,
        active: bool | None = None,
        campaign: str | None = None,
    ) -> Page[Offer]:
        with self.ctx.store.read() as conn:
            return offers.list_offers(
                conn, tenant_id, limit=limit, cursor=cursor, active=active, campaign=campaign
            )

    def close_offer(self, tenant_id: int, code: str, *, actor: str) -> Offer:
        """Stop an offer: no new groups; open ones run to their end (docs/GROUPBUY.md)."""
        return offers.close_offer(
            self.ctx.store, tenant_id, code, actor=actor, now=self.ctx.clock()
        )

    def draw_campaign(self, tenant_id: int, code: str) -> dict[str, Any]:
        """The campaign's draw now (an operator's, or the scheduler's at its time)."""
        record = draws.draw_campaign(self.ctx, tenant_id, code)
        assert record is not None
        return record

    def list_groups(
        self,
        tenant_id: int,
        *,
        limit: int,
        cursor: str | None,
        state: str | None = None,
        member: str | None = None,
        campaign: str | None = None,
    ) -> Page[GroupView]:
        """Groups in opening order (``member``: those where they have or had a place;
        ``campaign``: the groups of a campaign, lottery and activity alike)."""
        g, p = s.group_buys.c, s.group_places.c
        q = select(s.group_buys).where(g.tenant_id == tenant_id)
        if state is not None:
            if state not in s.GROUP_STATES:
                raise InvalidCommand(f"state must be one of {', '.join(s.GROUP_STATES)}")
            q = q.where(g.state == state)
        if member is not None:
            q = q.where(
                g.id.in_(select(p.group_id).where(p.tenant_id == tenant_id, p.member == member))
            )
        with self.ctx.store.read() as conn:
            if campaign is not None:
                q = q.where(g.campaign_id == rows.campaign_row(conn, tenant_id, code=campaign).id)
            return fetch_page(
                conn,
                q,
                g.id,
                limit=limit,
                cursor=cursor,
                convert=lambda r: rows.group_view(conn, tenant_id, r),
            )

    # ------------------------------------------------------------------ the member's

    def open_group(self, tenant_id: int, *, offer: str, member: str) -> GroupView:
        return places.open_group(self.ctx, tenant_id, offer=offer, member=member)

    def join(self, tenant_id: int, public_id: str, *, member: str) -> GroupView:
        return places.join(self.ctx, tenant_id, public_id, member=member)

    def cancel(self, tenant_id: int, public_id: str, *, member: str) -> GroupView:
        return places.cancel(self.ctx, tenant_id, public_id, member=member)

    def get_group(self, tenant_id: int, public_id: str) -> GroupView:
        with self.ctx.store.read() as conn:
            return rows.group_view(conn, tenant_id, rows.group_row(conn, tenant_id, public_id))

    def task(
        self, tenant_id: int, *, member: str, task: str, ref: str, day: date | None = None
    ) -> list[dict[str, str]]:
        """A task ``member`` did (invite, sign_in, share; ``ref`` is its key, so a repeat
        releases nothing): the member's :class:`~tokenmall.domain.events.TaskDone`
        (:mod:`tokenmall.service.tasks`), which also releases chain21's held money.  Returns
        what this call released of activity funds (nothing for a replay)."""
        done = tasks.report(
            self.ctx.store,
            tenant_id,
            member=member,
            task=task,
            key=ref,
            now=self.ctx.clock(),
            day=day,
        )
        if done.replayed:
            return []
        return [
            {"order": r.order, "released": cny(r.amount)}
            for r in done.released
            if r.source == moves.GROUPBUY
        ]

    def funds(self, tenant_id: int, member: str) -> list[dict[str, Any]]:
        """A member's activity funds: amount, released, still locked."""
        with self.ctx.store.read() as conn:
            out = []
            for row in funds.fund_rows(conn, tenant_id, member):
                fund = funds.fund_of(row)
                out.append(
                    {
                        "order": fund.order,
                        "amount": fund.amount,
                        "released": fund.released,
                        "locked": fund.locked,
                        "steps": fund.steps,
                        "released_steps": fund.released_steps,
                    }
                )
            return out

    # ------------------------------------------------------------------ public and jobs

    def public_group(self, public_id: str) -> dict[str, Any]:
        with self.ctx.store.read() as conn:
            return draws.public_group_record(conn, public_id)

    def campaign_draws(self, tenant_id: int, code: str) -> list[dict[str, Any]]:
        """The campaign's draws, newest first: each its public record and its time."""
        with self.ctx.store.read() as conn:
            return draws.campaign_draws(conn, tenant_id, code)

    def public_campaign_draw(self, public_id: str, no: int) -> dict[str, Any]:
        with self.ctx.store.read() as conn:
            return draws.public_campaign_draw(conn, public_id, no)

    def close_expired(self, now: float | None = None, *, tenant_id: int | None = None) -> int:
        at = self.ctx.clock() if now is None else now
        return jobs.close_expired(self.ctx, at, tenant_id=tenant_id)

    def draw_due(self, now: float | None = None, *, tenant_id: int | None = None) -> int:
        at = self.ctx.clock() if now is None else now
        return jobs.draw_due(self.ctx, at, tenant_id=tenant_id)
