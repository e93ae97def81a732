"""Withdrawals keep the payee's real name sealed for WeChat Pay

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 11:00:00

WeChat Pay transfers of 2,000 CNY or more must carry the payee's real name, encrypted with the
platform key (RSA-OAEP).  A withdrawal stores that ciphertext and the key's serial, never the
name itself: only WeChat can read it, and a resend of the transfer sends the same bytes.
Nothing existing changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("withdrawals") as batch_op:
        batch_op.add_column(sa.Column("payee_name_cipher", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("payee_name_serial", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("withdrawals") as batch_op:
        batch_op.drop_column("payee_name_serial")
        batch_op.drop_column("payee_name_cipher")
