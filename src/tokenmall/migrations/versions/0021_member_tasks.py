"""Members' tasks (the TaskDone event's record) and closing a group-buy offer

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 22:30:00

``member_tasks``: a task a member did, once per (tenant, member, key), with what it released
(chain21's held help money, activity funds' steps), so a task reported again is a replay that
answers the same.  ``group_offers.closed_at`` / ``closed_by``: who stopped an offer and when
(its ``active`` flag already refuses new groups).  Nothing existing changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "member_tasks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("member", sa.String(64), nullable=False),
        sa.Column("key", sa.String(80), nullable=False),
        sa.Column("task", sa.String(16), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("released", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name="fk_member_tasks_tenant_id_tenants"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_member_tasks"),
        sa.UniqueConstraint("tenant_id", "member", "key", name="uq_member_tasks_key"),
    )
    op.create_index("ix_member_tasks_member", "member_tasks", ["tenant_id", "member", "id"])
    with op.batch_alter_table("group_offers") as batch:
        batch.add_column(sa.Column("closed_at", sa.Float(), nullable=True))
        batch.add_column(sa.Column("closed_by", sa.String(120), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("group_offers") as batch:
        batch.drop_column("closed_by")
        batch.drop_column("closed_at")
    op.drop_index("ix_member_tasks_member", table_name="member_tasks")
    op.drop_table("member_tasks")
