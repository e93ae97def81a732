"""Members' SP debt from reward take-backs

Revision ID: 0015
Revises: 0010
Create Date: 2026-12-06 17:00:00

A marketing model's reward taken back from a member who no longer holds the SP leaves a debt
(``members.sp_debt``, SP atoms), set off against the member's next SP credits.  The partial
index serves the day close's set-off pass, which reads only the indebted members.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_PREDICATE = "sp_debt > 0"


def upgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("sp_debt", sa.BigInteger(), nullable=False, server_default="0"))
    op.create_index(
        "ix_members_tenant_sp_debt",
        "members",
        ["tenant_id", "no"],
        sqlite_where=sa.text(_PREDICATE),
        postgresql_where=sa.text(_PREDICATE),
    )


def downgrade() -> None:
    op.drop_index("ix_members_tenant_sp_debt", table_name="members")
    with op.batch_alter_table("members") as batch:
        batch.drop_column("sp_debt")
