"""Running several server processes: the scheduler's lease and the sandbox's intents

Revision ID: 0014
Revises: 0010
Create Date: 2026-11-27 09:00:00

``scheduler_lease`` holds which process runs the scheduler (one per database, whatever the
number of servers and workers); ``sandbox_intents`` keeps the sandbox provider's payment
intents in the database instead of one process's memory, so any worker can complete or
refund an intent another opened, and a restart loses none.  Nothing existing changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduler_lease",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("acquired_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_scheduler_lease"),
    )
    op.create_table(
        "sandbox_intents",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("intent_id", sa.String(64), nullable=False),
        sa.Column("provider_order_id", sa.String(64), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("description", sa.String(200), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("transaction_id", sa.String(64), nullable=True),
        sa.Column("refunds", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_sandbox_intents_tenant_id_tenants"
        ),
        sa.PrimaryKeyConstraint("tenant_id", "intent_id", name="pk_sandbox_intents"),
        sa.UniqueConstraint(
            "tenant_id", "provider_order_id", name="uq_sandbox_intents_tenant_provider_order"
        ),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("sandbox_intents")
    op.drop_table("scheduler_lease")
