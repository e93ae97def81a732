"""NFG listings bought with CNY through the order flow: the order that reserves a listing

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 22:30:00

A CNY buy of a listing creates an order (held ``nfg``, no lines) and reserves the listing for
it until the order is paid, cancelled or expires; ``nfg_listings.order_ref`` names that order
(and, once sold, the order that paid it).  Nothing existing changes but the new nullable
column and its index.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("nfg_listings", sa.Column("order_ref", sa.String(32), nullable=True))
    op.create_index("ix_nfg_listings_tenant_order", "nfg_listings", ["tenant_id", "order_ref"])


def downgrade() -> None:
    op.drop_index("ix_nfg_listings_tenant_order", table_name="nfg_listings")
    with op.batch_alter_table("nfg_listings") as batch:
        batch.drop_column("order_ref")
