"""wallet: withdrawals; indexes for wallet, reward history and holder board

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-26 10:00:00

A branch beside 0003 (orders): the two touch different tables, and ``migrate()`` upgrades to
every head.  The partial indexes on ``transfers`` cover member accounts only (store/schema.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0002"
branch_labels = None
depends_on = None

_CREDIT = "credit LIKE 'm:%'"
_DEBIT = "debit LIKE 'm:%'"


def upgrade() -> None:
    op.create_table(
        "withdrawals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(length=40), nullable=False),
        sa.Column("member", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=128), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("fee_fen", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("requested_at", sa.Float(), nullable=False),
        sa.Column("reviewed_at", sa.Float(), nullable=True),
        sa.Column("reviewer", sa.String(length=120), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("payout_sent_at", sa.Float(), nullable=True),
        sa.Column("provider_payout_id", sa.String(length=64), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.CheckConstraint(
            "status IN ('requested', 'approved', 'rejected', 'paid', 'failed')",
            name="ck_withdrawals_status",
        ),
        sa.CheckConstraint(
            "amount_fen > 0 AND fee_fen >= 0 AND fee_fen < amount_fen",
            name="ck_withdrawals_amounts",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_withdrawals_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_withdrawals")),
        sa.UniqueConstraint("tenant_id", "ref", name="uq_withdrawals_tenant_ref"),
        sa.UniqueConstraint(
            "tenant_id", "member", "idempotency_key", name="uq_withdrawals_tenant_member_key"
        ),
    )
    op.create_index("ix_withdrawals_tenant_member", "withdrawals", ["tenant_id", "member", "id"])
    op.create_index("ix_withdrawals_tenant_status", "withdrawals", ["tenant_id", "status", "id"])
    op.create_index(
        "ix_transfers_member_credit",
        "transfers",
        ["tenant_id", "credit", "seq"],
        sqlite_where=sa.text(_CREDIT),
        postgresql_where=sa.text(_CREDIT),
    )
    op.create_index(
        "ix_transfers_member_debit",
        "transfers",
        ["tenant_id", "debit", "seq"],
        sqlite_where=sa.text(_DEBIT),
        postgresql_where=sa.text(_DEBIT),
    )
    op.create_index("ix_members_tenant_ep", "members", ["tenant_id", "ep"])


def downgrade() -> None:
    op.drop_index("ix_members_tenant_ep", table_name="members")
    op.drop_index("ix_transfers_member_debit", table_name="transfers")
    op.drop_index("ix_transfers_member_credit", table_name="transfers")
    op.drop_index("ix_withdrawals_tenant_status", table_name="withdrawals")
    op.drop_index("ix_withdrawals_tenant_member", table_name="withdrawals")
    op.drop_table("withdrawals")
