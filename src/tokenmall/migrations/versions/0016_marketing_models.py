"""Marketing models in the service: configuration, audit, state, rewards, chain21's moves

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 19:30:00

A tenant enables marketing models with parameters (``marketing_config``, audited in
``marketing_changes``); the models' state is persisted per (model, part, key) in
``marketing_state``; ``marketing_orders`` keeps the base each settled order's rewards were
computed on (refunds take back by cumulative ratio over it); every reward and take-back is a
row of ``marketing_rewards`` (unique per order, model, beneficiary, step); ``marketing_moves``
is chain21's readable log.  Nothing existing changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenants.id"], name=f"fk_{table}_tenant_id_tenants"
    )


def upgrade() -> None:
    op.create_table(
        "marketing_config",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("override_reason", sa.Text(), nullable=True),
        sa.Column("retired", sa.Text(), nullable=False, server_default="{}"),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.String(120), nullable=False),
        _tenant_fk("marketing_config"),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_marketing_config"),
    )
    op.create_table(
        "marketing_changes",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.Column("before", sa.Text(), nullable=False),
        sa.Column("after", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("override_reason", sa.Text(), nullable=True),
        _tenant_fk("marketing_changes"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_marketing_changes"),
    )
    op.create_table(
        "marketing_orders",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("order_ref", sa.String(64), nullable=False),
        sa.Column("member", sa.String(64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("products", sa.Text(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        _tenant_fk("marketing_orders"),
        sa.PrimaryKeyConstraint("tenant_id", "order_ref", name="pk_marketing_orders"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "marketing_state",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(160), nullable=False),
        sa.Column("model", sa.String(24), nullable=False),
        sa.Column("ns", sa.String(24), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("doc", sa.Text(), nullable=False),
        _tenant_fk("marketing_state"),
        sa.PrimaryKeyConstraint("tenant_id", "key", "model", "ns", name="pk_marketing_state"),
        sqlite_with_rowid=False,
    )
    op.create_index(
        "ix_marketing_state_order", "marketing_state", ["tenant_id", "model", "ns", "n"]
    )
    op.create_table(
        "marketing_rewards",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("order_ref", sa.String(64), nullable=False),
        sa.Column("model", sa.String(24), nullable=False),
        sa.Column("beneficiary", sa.String(64), nullable=False),
        sa.Column("step", sa.String(160), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("withdrawable_at", sa.Float(), nullable=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("ledger_seq", sa.BigInteger(), nullable=False),
        _tenant_fk("marketing_rewards"),
        sa.PrimaryKeyConstraint("id", name="pk_marketing_rewards"),
        sa.UniqueConstraint(
            "tenant_id",
            "order_ref",
            "model",
            "beneficiary",
            "step",
            name="uq_marketing_rewards_key",
        ),
    )
    op.create_index(
        "ix_marketing_rewards_member",
        "marketing_rewards",
        ["tenant_id", "beneficiary", "model", "id"],
    )
    op.create_index("ix_marketing_rewards_model", "marketing_rewards", ["tenant_id", "model", "id"])
    op.create_table(
        "marketing_moves",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(24), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("member", sa.String(64), nullable=False),
        sa.Column("order_ref", sa.String(64), nullable=False),
        sa.Column("other", sa.String(64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        _tenant_fk("marketing_moves"),
        sa.PrimaryKeyConstraint("id", name="pk_marketing_moves"),
    )
    op.create_index("ix_marketing_moves_member", "marketing_moves", ["tenant_id", "member", "id"])
    op.create_index("ix_marketing_moves_tenant", "marketing_moves", ["tenant_id", "id"])


def downgrade() -> None:
    op.drop_table("marketing_moves")
    op.drop_table("marketing_rewards")
    op.drop_index("ix_marketing_state_order", table_name="marketing_state")
    op.drop_table("marketing_state")
    op.drop_table("marketing_orders")
    op.drop_table("marketing_changes")
    op.drop_table("marketing_config")
