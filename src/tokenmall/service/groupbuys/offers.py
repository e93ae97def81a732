"""What an operator defines: group-buy offers on a SKU (mode and parameters) and lottery
campaigns (how many groups win each draw, and when draws run).

A campaign commits to its first draw's seed when it is created, before any group of it can
open; each draw reveals the seed and commits to the next one.
"""

from __future__ import annotations

import secrets
from decimal import Decimal, InvalidOperation

from sqlalchemy import Connection, func, insert, select, update

from tokenmall.domain import draw
from tokenmall.domain import groupbuy as gb
from tokenmall.errors import InvalidCommand, NotFound
from tokenmall.money import ZERO, fen_of
from tokenmall.service import catalog
from tokenmall.service.errors import AlreadyExists
from tokenmall.service.groupbuys import rows
from tokenmall.service.groupbuys.models import (
    MAX_DEADLINE_HOURS,
    MAX_SIZE,
    Campaign,
    Offer,
)
from tokenmall.service.orders.models import check_ref
from tokenmall.service.pages import Page, fetch_page
from tokenmall.service.uow import Store
from tokenmall.store import schema as s

__all__ = [
    "close_offer",
    "create_campaign",
    "create_offer",
    "get_campaign",
    "list_campaigns",
    "list_offers",
]


def create_campaign(
    store: Store,
    tenant_id: int,
    *,
    code: str,
    winners: int,
    draw_every_hours: Decimal | None,
    actor: str,
    now: float,
) -> Campaign:
    check_ref(code, "campaign code")
    if isinstance(winners, bool) or not 0 <= winners <= MAX_SIZE * 1000:
        raise InvalidCommand(f"winners must be an integer from 0 to {MAX_SIZE * 1000}")
    every = None
    if draw_every_hours is not None:
        if not Decimal(1) / 60 <= draw_every_hours <= MAX_DEADLINE_HOURS:
            raise InvalidCommand(f"draw_every_hours must be from 1/60 to {MAX_DEADLINE_HOURS}")
        every = float(draw_every_hours * 3600)
    seed = draw.new_seed()
    with store.tenant_tx(tenant_id, lock=False) as tx:
        c = s.group_campaigns.c
        if tx.conn.execute(select(c.id).where(c.tenant_id == tenant_id, c.code == code)).first():
            raise AlreadyExists(f"campaign {code!r} exists")
        tx.conn.execute(
            insert(s.group_campaigns).values(
                tenant_id=tenant_id,
                code=code,
                winners=winners,
                seed=seed.hex(),
                commitment=draw.commitment(seed),
                fills=0,
                draws=0,
                draw_every=every,
                next_draw_at=None if every is None else now + every,
                public_id="c" + secrets.token_hex(8),
                created_at=now,
                created_by=actor,
            )
        )
        return rows.campaign_of(rows.campaign_row(tx.conn, tenant_id, code=code))


def get_campaign(conn: Connection, tenant_id: int, code: str) -> Campaign:
    row = rows.campaign_row(conn, tenant_id, code=code)
    g = s.group_buys.c
    waiting = conn.execute(
        select(func.count()).where(
            g.tenant_id == tenant_id, g.campaign_id == row.id, g.state == "full"
        )
    ).scalar_one()
    return rows.campaign_of(row, int(waiting))


def list_campaigns(
    conn: Connection, tenant_id: int, *, limit: int, cursor: str | None
) -> Page[Campaign]:
    c = s.group_campaigns.c
    q = select(s.group_campaigns).where(c.tenant_id == tenant_id)
    return fetch_page(conn, q, c.id, limit=limit, cursor=cursor, convert=rows.campaign_of)


def _money(value: Decimal | None, what: str) -> int:
    if value is None:
        return 0
    try:
        fen = fen_of(value)
    except (InvalidCommand, InvalidOperation, ValueError):
        raise InvalidCommand(f"{what} must be a whole-fen amount, got {value}") from None
    if fen < 0:
        raise InvalidCommand(f"{what} must not be negative")
    return fen


def create_offer(
    store: Store,
    tenant_id: int,
    *,
    code: str,
    sku_id: int,
    mode: str,
    price: Decimal,
    size: int,
    winners: int = 1,
    campaign: str | None = None,
    compensation: Decimal = ZERO,
    subsidy: Decimal = ZERO,
    commission: Decimal = ZERO,
    commission_ratio: Decimal | None = None,
    steps: int = 10,
    daily_steps: int = 1,
    deadline_hours: Decimal = Decimal(24),
    actor: str,
    now: float,
) -> Offer:
    """An offer members open groups of; its terms are checked by the rules before storing."""
    check_ref(code, "offer code")
    try:
        the_mode = gb.Mode(mode)
    except ValueError:
        raise InvalidCommand(f"mode must be one of {', '.join(m.value for m in gb.Mode)}") from None
    if isinstance(size, bool) or not 2 <= size <= MAX_SIZE:
        raise InvalidCommand(f"size must be an integer from 2 to {MAX_SIZE}")
    if not Decimal(1) / 60 <= deadline_hours <= MAX_DEADLINE_HOURS:
        raise InvalidCommand(f"deadline_hours must be from 1/60 to {MAX_DEADLINE_HOURS}")
    if the_mode is gb.Mode.LOTTERY and campaign is None:
        raise InvalidCommand("a lottery offer names its campaign")
    if the_mode not in (gb.Mode.LOTTERY, gb.Mode.ACTIVITY) and campaign is not None:
        raise InvalidCommand(f"a {mode} offer has no campaign")
    with store.tenant_tx(tenant_id, lock=False) as tx:
        try:
            catalog.get_sku(tx.conn, tenant_id, sku_id)
        except NotFound:
            raise InvalidCommand(f"no SKU {sku_id}") from None
        campaign_id = None
        if campaign is not None:
            try:
                campaign_id = rows.campaign_row(tx.conn, tenant_id, code=campaign).id
            except NotFound:
                raise InvalidCommand(f"no lottery campaign {campaign!r}") from None
        values = {
            "tenant_id": tenant_id,
            "code": code,
            "sku_id": sku_id,
            "mode": the_mode.value,
            "price_fen": _money(price, "price"),
            "size": size,
            "winners": winners,
            "campaign_id": campaign_id,
            "compensation_fen": _money(compensation, "compensation"),
            "subsidy_fen": _money(subsidy, "subsidy"),
            "commission_fen": _money(commission, "commission"),
            "commission_ratio": None if commission_ratio is None else str(commission_ratio),
            "steps": steps,
            "daily_steps": daily_steps,
            "deadline_seconds": int(deadline_hours * 3600),
            "active": True,
            "created_at": now,
            "created_by": actor,
        }
        rows.terms_of(_Row(values), campaign)  # the rules' own checks, before anything is stored
        f = s.group_offers.c
        if tx.conn.execute(select(f.id).where(f.tenant_id == tenant_id, f.code == code)).first():
            raise AlreadyExists(f"group-buy offer {code!r} exists")
        tx.conn.execute(insert(s.group_offers).values(values))
        return rows.offer_of(rows.offer_row(tx.conn, tenant_id, code), campaign)


def close_offer(store: Store, tenant_id: int, code: str, *, actor: str, now: float) -> Offer:
    """Stop the offer: no new group opens of it from now on.  Groups already open run to their
    end (members join until they fill or their deadline fails them; a lottery group still takes
    part in its campaign's draws), so nobody who paid is turned out by the operator.  Closing a
    closed offer changes nothing (who closed it and when stay the first close's)."""
    with store.tenant_tx(tenant_id, lock=False) as tx:
        row = rows.offer_row(tx.conn, tenant_id, code)
        if row.active:
            f = s.group_offers.c
            tx.conn.execute(
                update(s.group_offers)
                .where(f.tenant_id == tenant_id, f.id == row.id, f.active.is_(True))
                .values(active=False, closed_at=now, closed_by=actor)
            )
        row = rows.offer_row(tx.conn, tenant_id, code)
        campaign = None
        if row.campaign_id is not None:
            campaign = rows.campaign_row(tx.conn, tenant_id, cid=row.campaign_id).code
        return rows.offer_of(row, campaign)


class _Row:
    """Attribute access to a values dict (the rules check terms built from a row)."""

    def __init__(self, values: dict[str, object]) -> None:
        self.__dict__.update(values)


def list_offers(
    conn: Connection,
    tenant_id: int,
    *,
    limit: int,
    cursor: str | None,
    active: bool | None = None,
    campaign: str | None = None,
) -> Page[Offer]:
    """Offers in creation order; ``active``: only open (or only closed) ones; ``campaign``:
    only the offers of that campaign (lottery, or activity offers naming it)."""
    f, c = s.group_offers.c, s.group_campaigns.c
    codes = {
        int(r.id): str(r.code)
        for r in conn.execute(select(c.id, c.code).where(c.tenant_id == tenant_id))
    }
    q = select(s.group_offers).where(f.tenant_id == tenant_id)
    if active is not None:
        q = q.where(f.active.is_(active))
    if campaign is not None:
        q = q.where(f.campaign_id == rows.campaign_row(conn, tenant_id, code=campaign).id)
    return fetch_page(
        conn,
        q,
        f.id,
        limit=limit,
        cursor=cursor,
        convert=lambda r: rows.offer_of(r, codes.get(r.campaign_id)),
    )
