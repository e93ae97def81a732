"""WeChat Pay outbound calls: refunds retried by the scheduler, transfers awaiting the payee

Revision ID: 0007
Revises: 0003, 0006
Create Date: 2026-11-26 08:00:00

Refunds whose provider call did not get through stay ``pending`` and the scheduler sends them
again: two indexes let it find them per tenant without reading every payment.  A WeChat
transfer can wait for the payee to confirm it in the mini-program
(``WAIT_USER_CONFIRM``); ``withdrawals.payout_package`` keeps what the mini-program needs for
that (``package_info``).  Nothing existing changes.

It also merges the two branches that grew from 0002 (orders in 0003; the wallet in
0004-0006), since it touches tables of both.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = ("0003", "0006")
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_payments_tenant_refund_status", "payments", ["tenant_id", "refund_status"])
    op.create_index(
        "ix_order_refunds_tenant_provider_status",
        "order_refunds",
        ["tenant_id", "provider_status"],
    )
    with op.batch_alter_table("withdrawals") as batch_op:
        batch_op.add_column(sa.Column("payout_package", sa.String(1024), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("withdrawals") as batch_op:
        batch_op.drop_column("payout_package")
    op.drop_index("ix_order_refunds_tenant_provider_status", table_name="order_refunds")
    op.drop_index("ix_payments_tenant_refund_status", table_name="payments")
