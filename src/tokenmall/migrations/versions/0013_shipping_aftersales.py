"""Merchants ship their orders; members ask for refunds (after-sales)

Revision ID: 0013
Revises: 0010
Create Date: 2026-11-27 10:00:00

An order may carry a shipping address (``order_addresses``); each merchant of an order records
its shipment with carrier and tracking number (``order_shipments``); a merchant's orders are
found through its order lines (a new index).  A member's refund requests and every state they
took, with who moved them, are ``aftersales_requests`` and ``aftersales_events``.  Nothing
existing changes but the new index.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_STATES = ("requested", "accepted", "refunded", "refused", "cancelled")


def _order_fk(name: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", "order_id"], ["orders.tenant_id", "orders.id"], name=name
    )


def upgrade() -> None:
    op.create_index(
        "ix_order_lines_tenant_merchant", "order_lines", ["tenant_id", "merchant_id", "order_id"]
    )
    op.create_table(
        "order_addresses",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("recipient", sa.String(50), nullable=False),
        sa.Column("phone", sa.String(11), nullable=False),
        sa.Column("province", sa.String(32), nullable=False),
        sa.Column("city", sa.String(32), nullable=False),
        sa.Column("district", sa.String(32), nullable=False),
        sa.Column("detail", sa.String(200), nullable=False),
        _order_fk("fk_order_addresses_order"),
        sa.PrimaryKeyConstraint("order_id"),
    )
    op.create_table(
        "order_shipments",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("merchant_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("carrier", sa.String(32), nullable=False),
        sa.Column("tracking_no", sa.String(40), nullable=False),
        sa.Column("shipped_at", sa.Float(), nullable=False),
        sa.Column("shipped_by", sa.String(120), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.String(120), nullable=False),
        _order_fk("fk_order_shipments_order"),
        sa.PrimaryKeyConstraint("order_id", "merchant_id"),
    )
    op.create_table(
        "aftersales_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(32), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("member", sa.String(64), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("photos", sa.Text(), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("decision_note", sa.String(200), nullable=True),
        sa.Column("open_order_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        _order_fk("fk_aftersales_requests_order"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "ref", name="uq_aftersales_requests_tenant_ref"),
        sa.UniqueConstraint("tenant_id", "open_order_id", name="uq_aftersales_requests_open"),
        sa.UniqueConstraint("tenant_id", "id", name="uq_aftersales_requests_tenant_id"),
        sa.CheckConstraint("amount_fen > 0", name="ck_aftersales_requests_amount"),
        sa.CheckConstraint(
            "status IN ('" + "', '".join(_STATES) + "')", name="ck_aftersales_requests_status"
        ),
    )
    op.create_index(
        "ix_aftersales_requests_tenant_order",
        "aftersales_requests",
        ["tenant_id", "order_id", "id"],
    )
    op.create_index(
        "ix_aftersales_requests_tenant_member",
        "aftersales_requests",
        ["tenant_id", "member", "id"],
    )
    op.create_table(
        "aftersales_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.Column("note", sa.String(200), nullable=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "request_id"],
            ["aftersales_requests.tenant_id", "aftersales_requests.id"],
            name="fk_aftersales_events_request",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_aftersales_events_tenant_request",
        "aftersales_events",
        ["tenant_id", "request_id", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_aftersales_events_tenant_request", table_name="aftersales_events")
    op.drop_table("aftersales_events")
    op.drop_index("ix_aftersales_requests_tenant_member", table_name="aftersales_requests")
    op.drop_index("ix_aftersales_requests_tenant_order", table_name="aftersales_requests")
    op.drop_table("aftersales_requests")
    op.drop_table("order_shipments")
    op.drop_table("order_addresses")
    op.drop_index("ix_order_lines_tenant_merchant", table_name="order_lines")
