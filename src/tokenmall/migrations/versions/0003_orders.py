"""orders: orders, lines, payments, refunds, provider events, payment settings

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 09:00:00

Tables of the order flow (store/schema.py, section "orders"). Children reference their order
with (tenant_id, order_id), so a line, payment or refund can never mix two tenants; the
primary key of provider_events is the deduplication of provider notifications.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_STATUSES = (
    "pending_payment",
    "paid",
    "delivered",
    "settled",
    "refunded",
    "cancelled",
    "expired",
    "failed",
)


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(length=32), nullable=False),
        sa.Column("client_ref", sa.String(length=64), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("member", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("total_fen", sa.BigInteger(), nullable=False),
        sa.Column("refunded_fen", sa.BigInteger(), nullable=False),
        sa.Column("paid_cny_fen", sa.BigInteger(), nullable=True),
        sa.Column("paid_sp_fen", sa.BigInteger(), nullable=True),
        sa.Column("payment_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("paid_at", sa.Float(), nullable=True),
        sa.Column("delivered_at", sa.Float(), nullable=True),
        sa.Column("settle_at", sa.Float(), nullable=True),
        sa.Column("settled_at", sa.Float(), nullable=True),
        sa.Column("closed_at", sa.Float(), nullable=True),
        sa.Column("close_reason", sa.String(length=200), nullable=True),
        sa.Column("settle_error", sa.String(length=300), nullable=True),
        sa.CheckConstraint(
            "total_fen > 0 AND refunded_fen >= 0 AND refunded_fen <= total_fen",
            name="ck_orders_amounts",
        ),
        sa.CheckConstraint("status IN ('" + "', '".join(_STATUSES) + "')", name="ck_orders_status"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_orders_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("tenant_id", "ref", name="uq_orders_tenant_ref"),
        sa.UniqueConstraint("tenant_id", "client_ref", name="uq_orders_tenant_client_ref"),
        sa.UniqueConstraint("tenant_id", "id", name="uq_orders_tenant_id"),
    )
    op.create_index(
        "ix_orders_tenant_status_expires", "orders", ["tenant_id", "status", "expires_at"]
    )
    op.create_index(
        "ix_orders_tenant_status_settle", "orders", ["tenant_id", "status", "settle_at"]
    )
    op.create_index("ix_orders_tenant_member", "orders", ["tenant_id", "member", "id"])
    op.create_table(
        "order_lines",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("line_no", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("sku_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=401), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price_fen", sa.BigInteger(), nullable=False),
        sa.Column("pool_unit_fen", sa.BigInteger(), nullable=True),
        sa.Column("fund_unit_fen", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("quantity > 0 AND unit_price_fen > 0", name="ck_order_lines_positive"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "order_id"],
            ["orders.tenant_id", "orders.id"],
            name="fk_order_lines_order",
        ),
        sa.PrimaryKeyConstraint("order_id", "line_no", name=op.f("pk_order_lines")),
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("provider_order_id", sa.String(length=64), nullable=False),
        sa.Column("intent_id", sa.String(length=64), nullable=True),
        sa.Column("cny_fen", sa.BigInteger(), nullable=False),
        sa.Column("sp_fen", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("note", sa.String(length=300), nullable=True),
        sa.Column("refund_status", sa.String(length=12), nullable=False),
        sa.Column("provider_refund_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.CheckConstraint("cny_fen >= 0 AND sp_fen >= 0", name="ck_payments_non_negative"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "order_id"], ["orders.tenant_id", "orders.id"], name="fk_payments_order"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint(
            "tenant_id", "order_id", "attempt", name="uq_payments_tenant_order_attempt"
        ),
        sa.UniqueConstraint(
            "tenant_id", "provider", "provider_order_id", name="uq_payments_tenant_provider_order"
        ),
    )
    op.create_table(
        "order_refunds",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("refund_ref", sa.String(length=64), nullable=False),
        sa.Column("requested_fen", sa.BigInteger(), nullable=True),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("cny_fen", sa.BigInteger(), nullable=False),
        sa.Column("sp_fen", sa.BigInteger(), nullable=False),
        sa.Column("phase", sa.String(length=20), nullable=False),
        sa.Column("ledger_seq", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("payment_id", sa.Integer(), nullable=True),
        sa.Column("provider_status", sa.String(length=12), nullable=False),
        sa.Column("provider_refund_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.CheckConstraint(
            "amount_fen > 0 AND cny_fen >= 0 AND sp_fen >= 0 AND cny_fen + sp_fen = amount_fen",
            name="ck_order_refunds_amounts",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "order_id"],
            ["orders.tenant_id", "orders.id"],
            name="fk_order_refunds_order",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_refunds")),
        sa.UniqueConstraint("tenant_id", "refund_ref", name="uq_order_refunds_tenant_ref"),
    )
    op.create_index(
        "ix_order_refunds_tenant_order", "order_refunds", ["tenant_id", "order_id", "id"]
    )
    op.create_table(
        "provider_events",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("event_id", sa.String(length=160), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("provider_order_id", sa.String(length=64), nullable=True),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.String(length=300), nullable=True),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_provider_events_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint(
            "tenant_id", "provider", "event_id", name=op.f("pk_provider_events")
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "payment_settings",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("updated_by", sa.String(length=120), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_payment_settings_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", "provider", name=op.f("pk_payment_settings")),
    )


def downgrade() -> None:
    op.drop_table("payment_settings")
    op.drop_table("provider_events")
    op.drop_index("ix_order_refunds_tenant_order", table_name="order_refunds")
    op.drop_table("order_refunds")
    op.drop_table("payments")
    op.drop_table("order_lines")
    op.drop_index("ix_orders_tenant_member", table_name="orders")
    op.drop_index("ix_orders_tenant_status_settle", table_name="orders")
    op.drop_index("ix_orders_tenant_status_expires", table_name="orders")
    op.drop_table("orders")
