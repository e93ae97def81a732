"""tenant_state.trigger_shift: the day close leaves most holders' exit keys untouched

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 22:00:00

``members.trigger`` used to hold quota/EP exactly, so a day close rewrote the trigger index
entry of every paid holder (about 5.5 s of a 1,000,000-holder close).  It now holds
quota/EP + the tenant's shift at the time of writing; a close under ``points`` weighting adds
its water level to the shift instead of moving every entry (service/ledger.py, DESIGN.md).
Existing rows were written with a shift of 0, which is the column's starting value.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenant_state") as batch_op:
        batch_op.add_column(
            sa.Column("trigger_shift", sa.Float(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("tenant_state") as batch_op:
        batch_op.drop_column("trigger_shift")
