"""Group buys: offers, lottery campaigns and draws, groups, places, shopping funds, commissions

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 19:40:00

A group-buy place is an ordinary order held in escrow (``orders.hold = 'group'``) until its
group confirms it; the new tables record the offers an operator defines, the groups members
open and join, each place and its order, the draws (commitment, then the revealed seed), the
activity winners' locked shopping funds and the merchant leaders' pending commissions.
Nothing existing changes but the new nullable ``orders.hold``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_TABLES = (
    "group_commissions",
    "group_funds",
    "group_places",
    "group_buys",
    "group_offers",
    "group_campaign_draws",
    "group_campaigns",
)


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("hold", sa.String(16), nullable=True))
    op.create_table(
        "group_campaigns",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("winners", sa.Integer(), nullable=False),
        sa.Column("seed", sa.String(64), nullable=False),
        sa.Column("commitment", sa.String(64), nullable=False),
        sa.Column("fills", sa.Integer(), nullable=False),
        sa.Column("draws", sa.Integer(), nullable=False),
        sa.Column("draw_every", sa.Float(), nullable=True),
        sa.Column("next_draw_at", sa.Float(), nullable=True),
        sa.Column("public_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(120), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "code", name="uq_group_campaigns_tenant_code"),
        sa.UniqueConstraint("public_id", name="uq_group_campaigns_public_id"),
        sa.CheckConstraint("winners >= 0", name="ck_group_campaigns_winners"),
    )
    op.create_table(
        "group_campaign_draws",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("no", sa.Integer(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("commitment", sa.String(64), nullable=False),
        sa.Column("seed", sa.String(64), nullable=False),
        sa.Column("candidates", sa.Text(), nullable=False),
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column("winners", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.ForeignKeyConstraint(["campaign_id"], ["group_campaigns.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "campaign_id", "no", name="uq_group_campaign_draws_no"),
    )
    op.create_table(
        "group_offers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("sku_id", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("price_fen", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("winners", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("compensation_fen", sa.BigInteger(), nullable=False),
        sa.Column("subsidy_fen", sa.BigInteger(), nullable=False),
        sa.Column("commission_fen", sa.BigInteger(), nullable=False),
        sa.Column("commission_ratio", sa.String(24), nullable=True),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("daily_steps", sa.Integer(), nullable=False),
        sa.Column("deadline_seconds", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(120), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.ForeignKeyConstraint(["campaign_id"], ["group_campaigns.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "code", name="uq_group_offers_tenant_code"),
        sa.CheckConstraint(
            "mode IN ('multi', 'lottery', 'merchant', 'activity')", name="ck_group_offers_mode"
        ),
    )
    op.create_table(
        "group_buys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(32), nullable=False),
        sa.Column("offer_id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("leader", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("opened_at", sa.Float(), nullable=False),
        sa.Column("deadline", sa.Float(), nullable=False),
        sa.Column("seed", sa.String(64), nullable=True),
        sa.Column("commitment", sa.String(64), nullable=True),
        sa.Column("filled_at", sa.Float(), nullable=True),
        sa.Column("fill_no", sa.Integer(), nullable=True),
        sa.Column("candidates", sa.Text(), nullable=True),
        sa.Column("k", sa.Integer(), nullable=True),
        sa.Column("winners", sa.Text(), nullable=True),
        sa.Column("draw_no", sa.Integer(), nullable=True),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.ForeignKeyConstraint(["offer_id"], ["group_offers.id"]),
        sa.ForeignKeyConstraint(["campaign_id"], ["group_campaigns.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.CheckConstraint(
            "state IN ('open', 'full', 'succeeded', 'failed', 'lost')", name="ck_group_buys_state"
        ),
        sa.UniqueConstraint("tenant_id", "id", name="uq_group_buys_tenant_id"),
        sa.UniqueConstraint("public_id", name="uq_group_buys_public_id"),
    )
    op.create_index(
        "ix_group_buys_tenant_state_deadline", "group_buys", ["tenant_id", "state", "deadline"]
    )
    op.create_index(
        "ix_group_buys_tenant_campaign_state", "group_buys", ["tenant_id", "campaign_id", "state"]
    )
    op.create_table(
        "group_places",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("no", sa.Integer(), nullable=False),
        sa.Column("member", sa.String(64), nullable=False),
        sa.Column("order_ref", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("joined_at", sa.Float(), nullable=False),
        sa.Column("paid_at", sa.Float(), nullable=True),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("reason", sa.String(200), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.ForeignKeyConstraint(["group_id"], ["group_buys.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "order_ref", name="uq_group_places_order"),
        sa.UniqueConstraint("tenant_id", "group_id", "no", name="uq_group_places_no"),
        sa.CheckConstraint(
            "status IN ('pending', 'held', 'confirmed', 'refunded', 'released')",
            name="ck_group_places_status",
        ),
    )
    op.create_index("ix_group_places_tenant_member", "group_places", ["tenant_id", "member", "id"])
    op.create_table(
        "group_funds",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("order_ref", sa.String(32), nullable=False),
        sa.Column("member", sa.String(64), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("steps", sa.Integer(), nullable=False),
        sa.Column("daily_steps", sa.Integer(), nullable=False),
        sa.Column("released_fen", sa.BigInteger(), nullable=False),
        sa.Column("released_steps", sa.Integer(), nullable=False),
        sa.Column("refunded_fen", sa.BigInteger(), nullable=False),
        sa.Column("day", sa.String(10), nullable=True),
        sa.Column("steps_today", sa.Integer(), nullable=False),
        sa.Column("task_refs", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.ForeignKeyConstraint(["group_id"], ["group_buys.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "order_ref", name="uq_group_funds_order"),
    )
    op.create_index("ix_group_funds_tenant_member", "group_funds", ["tenant_id", "member"])
    op.create_table(
        "group_commissions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("leader", sa.String(64), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("after_refs", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.ForeignKeyConstraint(["group_id"], ["group_buys.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "group_id", name="uq_group_commissions_group"),
        sa.CheckConstraint("status IN ('pending', 'paid', 'dropped')", name="ck_group_commissions"),
    )


def downgrade() -> None:
    for name in _TABLES:
        op.drop_table(name)
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("hold")
