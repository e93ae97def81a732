"""NFG primary purchases with the buyer's idempotency key

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07 00:15:00

A member buying a collection's next serial with SP or EP may send a key (the API's
``Idempotency-Key``, the page's one-time form key): ``nfg_tokens.purchase_key`` keeps
``<member>:<key>`` on the token that purchase minted, unique per tenant, so a retry or a
double tap answers with that token and takes nothing again.  Nothing existing changes but the
new nullable column and its unique index (NULLs never collide, so older tokens need nothing).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("nfg_tokens", sa.Column("purchase_key", sa.String(130), nullable=True))
    op.create_index(
        "ux_nfg_tokens_tenant_purchase_key",
        "nfg_tokens",
        ["tenant_id", "purchase_key"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("ux_nfg_tokens_tenant_purchase_key", table_name="nfg_tokens")
    with op.batch_alter_table("nfg_tokens") as batch:
        batch.drop_column("purchase_key")
