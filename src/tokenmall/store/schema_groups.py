"""The tables of group buys (migration 0017): offers, lottery campaigns and their draws,
groups, places, activity winners' shopping funds and merchant leaders' commissions.

Re-exported by :mod:`tokenmall.store.schema` (callers read ``schema.group_buys``); the tables
share its ``metadata``.  Money is whole fen (``*_fen``); times are unix seconds; a seed is
kept as hex and is secret until its draw (only the service's reads decide when to show it).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from tokenmall.store.metadata import metadata

__all__ = [
    "GROUP_MODES",
    "GROUP_PLACE_STATES",
    "GROUP_STATES",
    "group_buys",
    "group_campaign_draws",
    "group_campaigns",
    "group_commissions",
    "group_funds",
    "group_offers",
    "group_places",
]

GROUP_MODES = ("multi", "lottery", "merchant", "activity")
GROUP_STATES = ("open", "full", "succeeded", "failed", "lost")
# pending: reserved, its order not paid yet; held: paid, in escrow; confirmed: an ordinary
# order; refunded: paid back in full; released: its order closed unpaid (cancelled, expired)
GROUP_PLACE_STATES = ("pending", "held", "confirmed", "refunded", "released")


def _in(col: str, values: tuple[str, ...]) -> str:
    return f"{col} IN ('" + "', '".join(values) + "')"


group_campaigns = Table(
    "group_campaigns",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id"), nullable=False),
    Column("code", String(64), nullable=False),
    Column("winners", Integer, nullable=False),  # k: groups that win each draw
    # the next draw's secret seed (hex) and its published sha256
    Column("seed", String(64), nullable=False),
    Column("commitment", String(64), nullable=False),
    Column("fills", Integer, nullable=False, default=0),  # groups filled so far (fill order)
    Column("draws", Integer, nullable=False, default=0),
    Column("draw_every", Float, nullable=True),  # seconds between scheduled draws
    Column("next_draw_at", Float, nullable=True),
    Column("public_id", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(120), nullable=False),
    UniqueConstraint("tenant_id", "code", name="uq_group_campaigns_tenant_code"),
    UniqueConstraint("public_id", name="uq_group_campaigns_public_id"),
    CheckConstraint("winners >= 0", name="ck_group_campaigns_winners"),
)

group_campaign_draws = Table(
    "group_campaign_draws",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id"), nullable=False),
    Column("campaign_id", Integer, ForeignKey("group_campaigns.id"), nullable=False),
    Column("no", Integer, nullable=False),
    Column("at", Float, nullable=False),
    Column("commitment", String(64), nullable=False),
    Column("seed", String(64), nullable=False),  # revealed
    Column("candidates", Text, nullable=False),  # JSON list of group public ids
    Column("k", Integer, nullable=False),
    Column("winners", Text, nullable=False),  # JSON list, ascending ticket order
    UniqueConstraint("tenant_id", "campaign_id", "no", name="uq_group_campaign_draws_no"),
)

group_offers = Table(
    "group_offers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id"), nullable=False),
    Column("code", String(64), nullable=False),
    Column("sku_id", Integer, nullable=False),
    Column("mode", String(16), nullable=False),
    Column("price_fen", BigInteger, nullable=False),
    Column("size", Integer, nullable=False),
    Column("winners", Integer, nullable=False),
    Column("campaign_id", Integer, ForeignKey("group_campaigns.id"), nullable=True),
    Column("compensation_fen", BigInteger, nullable=False),
    Column("subsidy_fen", BigInteger, nullable=False),
    Column("commission_fen", BigInteger, nullable=False),
    Column("commission_ratio", String(24), nullable=True),  # a decimal string
    Column("steps", Integer, nullable=False),
    Column("daily_steps", Integer, nullable=False),
    Column("deadline_seconds", Integer, nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(120), nullable=False),
    # an operator closed the offer (migration 0021): no new group; open ones run to their end
    Column("closed_at", Float, nullable=True),
    Column("closed_by", String(120), nullable=True),
    UniqueConstraint("tenant_id", "code", name="uq_group_offers_tenant_code"),
    CheckConstraint(_in("mode", GROUP_MODES), name="ck_group_offers_mode"),
)

group_buys = Table(
    "group_buys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id"), nullable=False),
    # the opaque id shared in links and used by the public draw record
    Column("public_id", String(32), nullable=False),
    Column("offer_id", Integer, ForeignKey("group_offers.id"), nullable=False),
    Column("campaign_id", Integer, ForeignKey("group_campaigns.id"), nullable=True),
    Column("leader", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("opened_at", Float, nullable=False),
    Column("deadline", Float, nullable=False),
    Column("seed", String(64), nullable=True),  # merchant and activity: secret until drawn
    Column("commitment", String(64), nullable=True),
    Column("filled_at", Float, nullable=True),
    Column("fill_no", Integer, nullable=True),  # lottery: order of filling in the campaign
    Column("candidates", Text, nullable=True),  # JSON, once drawn
    Column("k", Integer, nullable=True),
    Column("winners", Text, nullable=True),  # JSON, once drawn
    Column("draw_no", Integer, nullable=True),  # lottery: the campaign draw it took part in
    Column("ended_at", Float, nullable=True),
    UniqueConstraint("public_id", name="uq_group_buys_public_id"),
    UniqueConstraint("tenant_id", "id", name="uq_group_buys_tenant_id"),
    CheckConstraint(_in("state", GROUP_STATES), name="ck_group_buys_state"),
    Index("ix_group_buys_tenant_state_deadline", "tenant_id", "state", "deadline"),
    Index("ix_group_buys_tenant_campaign_state", "tenant_id", "campaign_id", "state"),
)

group_places = Table(
    "group_places",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id"), nullable=False),
    Column("group_id", Integer, ForeignKey("group_buys.id"), nullable=False),
    Column("no", Integer, nullable=False),  # join order within the group, never reused
    Column("member", String(64), nullable=False),
    Column("order_ref", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("joined_at", Float, nullable=False),
    Column("paid_at", Float, nullable=True),
    Column("ended_at", Float, nullable=True),
    Column("reason", String(200), nullable=True),
    UniqueConstraint("tenant_id", "order_ref", name="uq_group_places_order"),
    UniqueConstraint("tenant_id", "group_id", "no", name="uq_group_places_no"),
    CheckConstraint(_in("status", GROUP_PLACE_STATES), name="ck_group_places_status"),
    Index("ix_group_places_tenant_member", "tenant_id", "member", "id"),
)

group_funds = Table(
    "group_funds",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id"), nullable=False),
    Column("group_id", Integer, ForeignKey("group_buys.id"), nullable=False),
    Column("order_ref", String(32), nullable=False),
    Column("member", String(64), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("steps", Integer, nullable=False),
    Column("daily_steps", Integer, nullable=False),
    Column("released_fen", BigInteger, nullable=False),
    Column("released_steps", Integer, nullable=False),
    Column("refunded_fen", BigInteger, nullable=False),
    Column("day", String(10), nullable=True),
    Column("steps_today", Integer, nullable=False),
    Column("task_refs", Text, nullable=False),  # JSON list
    UniqueConstraint("tenant_id", "order_ref", name="uq_group_funds_order"),
    Index("ix_group_funds_tenant_member", "tenant_id", "member"),
)

group_commissions = Table(
    "group_commissions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id"), nullable=False),
    Column("group_id", Integer, ForeignKey("group_buys.id"), nullable=False),
    Column("leader", String(64), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("after_refs", Text, nullable=False),  # JSON: the winners' orders that must settle
    Column("status", String(16), nullable=False),  # pending, paid, dropped
    UniqueConstraint("tenant_id", "group_id", name="uq_group_commissions_group"),
    CheckConstraint("status IN ('pending', 'paid', 'dropped')", name="ck_group_commissions"),
)
