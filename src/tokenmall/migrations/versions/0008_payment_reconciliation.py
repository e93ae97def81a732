"""Payment reconciliation: open WeChat payments and refunds are queried; orders closed

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 10:30:00

``payments.checked_at`` and ``order_refunds.checked_at`` record when WeChat Pay was last asked
about a payment (or the refund of a voided one) and a refund, so the scheduler spaces its
queries; an index finds a tenant's open payments of one provider without reading every
payment.  Nothing existing changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payments") as batch_op:
        batch_op.add_column(sa.Column("checked_at", sa.Float(), nullable=True))
    op.create_index(
        "ix_payments_tenant_provider_status", "payments", ["tenant_id", "provider", "status"]
    )
    with op.batch_alter_table("order_refunds") as batch_op:
        batch_op.add_column(sa.Column("checked_at", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("order_refunds") as batch_op:
        batch_op.drop_column("checked_at")
    op.drop_index("ix_payments_tenant_provider_status", table_name="payments")
    with op.batch_alter_table("payments") as batch_op:
        batch_op.drop_column("checked_at")
