"""Products can be taken off the shelf

Revision ID: 0012
Revises: 0010
Create Date: 2026-11-27 10:00:00

``products.on_shelf``: a product off the shelf stays listed, and its SKUs cannot be ordered.
Every existing product is on the shelf (the server default), so nothing that sells today stops.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "products",
        sa.Column("on_shelf", sa.Boolean(), nullable=False, server_default=sa.true()),
    )


def downgrade() -> None:
    with op.batch_alter_table("products") as batch:
        batch.drop_column("on_shelf")
