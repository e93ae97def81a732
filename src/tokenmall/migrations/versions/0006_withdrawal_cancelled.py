"""withdrawals.status: 'cancelled', a member taking back a request not yet reviewed

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 02:00:00

A member may cancel their own withdrawal while it waits for review (``requested``); the whole
amount, fee included, returns to the wallet, as on a rejection.  Only the CHECK constraint on
the status changes.  On SQLite, Alembic's batch mode copies the table (named CHECK constraints
are reflected and carried over); PostgreSQL drops and re-adds the constraint.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_BEFORE = "status IN ('requested', 'approved', 'rejected', 'paid', 'failed')"
_AFTER = "status IN ('requested', 'approved', 'rejected', 'paid', 'failed', 'cancelled')"


def upgrade() -> None:
    with op.batch_alter_table("withdrawals") as batch_op:
        batch_op.drop_constraint("ck_withdrawals_status", type_="check")
        batch_op.create_check_constraint("ck_withdrawals_status", _AFTER)


def downgrade() -> None:
    # a cancelled withdrawal returned its SP, as a rejected one does: keep it as rejected
    op.execute("UPDATE withdrawals SET status = 'rejected' WHERE status = 'cancelled'")
    with op.batch_alter_table("withdrawals") as batch_op:
        batch_op.drop_constraint("ck_withdrawals_status", type_="check")
        batch_op.create_check_constraint("ck_withdrawals_status", _BEFORE)
