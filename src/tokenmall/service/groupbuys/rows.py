"""Rows <-> the pure domain's objects: a group row with its paid places becomes a
:class:`~tokenmall.domain.groupbuy.Group` the rules run on, and what they changed is written
back.  The row locks of group buys are here too, in one place (tenant lock first, taken by
the unit of work; then the campaign; then the group; then its orders)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select, update

from tokenmall.domain import groupbuy as gb
from tokenmall.errors import NotFound
from tokenmall.money import cny_of_fen
from tokenmall.service.groupbuys.models import Campaign, GroupView, Offer, PlaceView
from tokenmall.store import schema as s

__all__ = [
    "ACTIVE",
    "PAID",
    "at_of",
    "campaign_of",
    "campaign_row",
    "domain_campaign",
    "domain_group",
    "domain_groups",
    "group_row",
    "group_view",
    "offer_of",
    "offer_row",
    "place_rows",
    "save_group",
    "ts_of",
]

ACTIVE = ("pending", "held", "confirmed")  # a place that counts (or will) in its group
PAID = ("held", "confirmed", "refunded")  # places the rules see: paid, in join order


def at_of(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def ts_of(at: datetime | None) -> float | None:
    return None if at is None else at.timestamp()


def _locked(conn: Connection, q: Any) -> Any:
    return q if conn.dialect.name == "sqlite" else q.with_for_update()


def offer_row(conn: Connection, tenant_id: int, code: str) -> Any:
    f = s.group_offers.c
    row = conn.execute(
        select(s.group_offers).where(f.tenant_id == tenant_id, f.code == code)
    ).first()
    if row is None:
        raise NotFound(f"no group-buy offer {code!r}")
    return row


def offer_by_id(conn: Connection, tenant_id: int, offer_id: int) -> Any:
    f = s.group_offers.c
    return conn.execute(
        select(s.group_offers).where(f.tenant_id == tenant_id, f.id == offer_id)
    ).one()


def campaign_row(
    conn: Connection,
    tenant_id: int,
    *,
    code: str | None = None,
    cid: int | None = None,
    lock: bool = False,
) -> Any:
    c = s.group_campaigns.c
    q = select(s.group_campaigns).where(c.tenant_id == tenant_id)
    q = q.where(c.code == code) if code is not None else q.where(c.id == cid)
    row = conn.execute(_locked(conn, q) if lock else q).first()
    if row is None:
        raise NotFound(f"no lottery campaign {code!r}")
    return row


def group_row(conn: Connection, tenant_id: int, public_id: str, *, lock: bool = False) -> Any:
    g = s.group_buys.c
    q = select(s.group_buys).where(g.tenant_id == tenant_id, g.public_id == public_id)
    row = conn.execute(_locked(conn, q) if lock else q).first()
    if row is None:
        raise NotFound(f"no group {public_id!r}")
    return row


def place_rows(conn: Connection, tenant_id: int, group_id: int) -> list[Any]:
    p = s.group_places.c
    return list(
        conn.execute(
            select(s.group_places)
            .where(p.tenant_id == tenant_id, p.group_id == group_id)
            .order_by(p.no)
        )
    )


def offer_of(row: Any, campaign: str | None) -> Offer:
    return Offer(
        code=row.code,
        sku_id=row.sku_id,
        mode=row.mode,
        price=cny_of_fen(row.price_fen),
        size=row.size,
        winners=row.winners,
        campaign=campaign,
        compensation=cny_of_fen(row.compensation_fen),
        subsidy=cny_of_fen(row.subsidy_fen),
        commission=cny_of_fen(row.commission_fen),
        commission_ratio=None if row.commission_ratio is None else Decimal(row.commission_ratio),
        steps=row.steps,
        daily_steps=row.daily_steps,
        deadline_hours=Decimal(row.deadline_seconds) / 3600,
        active=bool(row.active),
        created_at=row.created_at,
        closed_at=row.closed_at,
    )


def campaign_of(row: Any, waiting: int = 0) -> Campaign:
    every = None if row.draw_every is None else Decimal(str(row.draw_every)) / 3600
    return Campaign(
        code=row.code,
        public_id=row.public_id,
        winners=row.winners,
        commitment=row.commitment,
        draws=row.draws,
        draw_every_hours=every,
        next_draw_at=row.next_draw_at,
        waiting=waiting,
    )


def terms_of(offer: Any, campaign: str | None) -> gb.GroupTerms:
    return gb.GroupTerms(
        mode=gb.Mode(offer.mode),
        product=str(offer.sku_id),
        price=cny_of_fen(offer.price_fen),
        size=offer.size,
        winners=offer.winners,
        campaign=campaign,
        compensation=cny_of_fen(offer.compensation_fen),
        subsidy=cny_of_fen(offer.subsidy_fen),
        commission=cny_of_fen(offer.commission_fen),
        commission_ratio=None
        if offer.commission_ratio is None
        else Decimal(offer.commission_ratio),
        steps=offer.steps,
        daily_steps=offer.daily_steps,
    )


def domain_group(conn: Connection, tenant_id: int, row: Any) -> gb.Group:
    """The rules' view of a group: its terms and its paid places in join order."""
    return domain_groups(conn, tenant_id, [row])[0]


def domain_groups(conn: Connection, tenant_id: int, grows: Sequence[Any]) -> list[gb.Group]:
    """:func:`domain_group` of many groups, their offers, campaigns and places read in bulk
    (a campaign's draw loads every full group at once)."""
    f, c, p = s.group_offers.c, s.group_campaigns.c, s.group_places.c
    offer_ids = sorted({r.offer_id for r in grows})
    offers = {
        r.id: r
        for r in conn.execute(
            select(s.group_offers).where(f.tenant_id == tenant_id, f.id.in_(offer_ids))
        )
    }
    camp_ids = sorted({r.campaign_id for r in grows if r.campaign_id is not None})
    codes = {
        int(r.id): str(r.code)
        for r in conn.execute(
            select(c.id, c.code).where(c.tenant_id == tenant_id, c.id.in_(camp_ids))
        )
    }
    by_group: dict[int, list[Any]] = {r.id: [] for r in grows}
    ids = list(by_group)
    for lo in range(0, len(ids), 1000):
        for pr in conn.execute(
            select(s.group_places)
            .where(
                p.tenant_id == tenant_id,
                p.group_id.in_(ids[lo : lo + 1000]),
                p.status.in_(PAID),
            )
            .order_by(p.group_id, p.no)
        ):
            by_group[pr.group_id].append(pr)
    return [
        _domain_group(row, offers[row.offer_id], codes.get(row.campaign_id), by_group[row.id])
        for row in grows
    ]


def _domain_group(row: Any, offer: Any, campaign: str | None, paid: list[Any]) -> gb.Group:
    places = [
        gb.Place(
            p.no,
            p.member,
            p.order_ref,
            cny_of_fen(offer.price_fen),
            at_of(p.paid_at or p.joined_at),
            gb.PlaceStatus(p.status),
            p.reason or "",
        )
        for p in paid
    ]
    result = None
    if row.winners is not None:
        result = gb.DrawResult(
            tuple(json.loads(row.candidates)), int(row.k), tuple(json.loads(row.winners))
        )
    return gb.Group(
        id=row.public_id,
        terms=terms_of(offer, campaign),
        leader=row.leader,
        opened_at=at_of(row.opened_at),
        deadline=at_of(row.deadline),
        seed=None if row.seed is None else bytes.fromhex(row.seed),
        commitment=row.commitment,
        state=gb.GroupState(row.state),
        places=places,
        filled_at=None if row.filled_at is None else at_of(row.filled_at),
        fill_no=row.fill_no,
        result=result,
    )


def domain_campaign(row: Any) -> gb.Campaign:
    return gb.Campaign(
        id=row.code, seed=bytes.fromhex(row.seed), commitment=row.commitment, fills=row.fills
    )


def save_group(conn: Connection, tenant_id: int, row: Any, group: gb.Group, now: float) -> None:
    """Write back what the rules changed: the group's state and draw, and its places'."""
    values: dict[str, Any] = {
        "state": group.state.value,
        "filled_at": ts_of(group.filled_at),
        "fill_no": group.fill_no,
    }
    if group.result is not None:
        values.update(
            candidates=json.dumps(list(group.result.candidates)),
            k=group.result.k,
            winners=json.dumps(list(group.result.winners)),
        )
    if group.state.value != row.state and group.state is not gb.GroupState.FULL:
        values["ended_at"] = now
    g = s.group_buys.c
    conn.execute(
        update(s.group_buys).where(g.tenant_id == tenant_id, g.id == row.id).values(values)
    )
    p = s.group_places.c
    changed: dict[tuple[str, str], list[str]] = {}  # (status, reason) -> refs, in bulk
    for place in group.places:
        if place.status is not gb.PlaceStatus.HELD:
            changed.setdefault((place.status.value, place.reason), []).append(place.ref)
    for (status, reason), refs in changed.items():
        ended = {"ended_at": now} if status == gb.PlaceStatus.REFUNDED.value else {}
        conn.execute(
            update(s.group_places)
            .where(
                p.tenant_id == tenant_id,
                p.group_id == row.id,
                p.order_ref.in_(refs),
                p.status == "held",
            )
            .values(status=status, reason=reason or None, **ended)
        )


def group_view(conn: Connection, tenant_id: int, row: Any) -> GroupView:
    offer = offer_by_id(conn, tenant_id, row.offer_id)
    campaign = None
    commitment = row.commitment
    if row.campaign_id is not None:
        crow = campaign_row(conn, tenant_id, cid=row.campaign_id)
        campaign = crow.code
        if commitment is None:
            commitment = _lottery_commitment(conn, tenant_id, row, crow)
    places = [
        PlaceView(
            p.no, p.member, p.order_ref, p.status, p.joined_at, p.paid_at, p.ended_at, p.reason
        )
        for p in place_rows(conn, tenant_id, row.id)
    ]
    winners = [] if row.winners is None else list(json.loads(row.winners))
    return GroupView(
        public_id=row.public_id,
        offer=offer.code,
        mode=offer.mode,
        leader=row.leader,
        state=row.state,
        size=offer.size,
        price=cny_of_fen(offer.price_fen),
        opened_at=row.opened_at,
        deadline=row.deadline,
        commitment=commitment,
        campaign=campaign,
        places=places,
        winners=winners,
        filled_at=row.filled_at,
    )


def _lottery_commitment(conn: Connection, tenant_id: int, row: Any, crow: Any) -> str:
    """A lottery group's commitment: the one of the draw it took part in, else the next's."""
    if row.draw_no is None:
        return str(crow.commitment)
    d = s.group_campaign_draws.c
    return str(
        conn.execute(
            select(d.commitment).where(
                d.tenant_id == tenant_id, d.campaign_id == crow.id, d.no == row.draw_no
            )
        ).scalar_one()
    )
