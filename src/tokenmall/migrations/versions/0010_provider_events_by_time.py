"""Provider events listed in the order received

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 11:30:00

``GET /payments/events`` pages through a tenant's provider events by the time they were
received; the index serves it without sorting the table.  Nothing existing changes.
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_provider_events_tenant_received", "provider_events", ["tenant_id", "received_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_provider_events_tenant_received", table_name="provider_events")
