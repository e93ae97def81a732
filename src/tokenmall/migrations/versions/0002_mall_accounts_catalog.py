"""mall: api keys, member profiles, merchants, products, skus

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 18:40:00

Tables of the HTTP service (store/schema.py, section "the mall"). Children reference their
parent with (tenant_id, parent_id), so a row can never mix two tenants.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "merchants",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("accepts_sp", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_merchants_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merchants")),
        sa.UniqueConstraint("tenant_id", "code", name="uq_merchants_tenant_code"),
        sa.UniqueConstraint("tenant_id", "id", name="uq_merchants_tenant_id"),
    )
    op.create_table(
        "products",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("pool_amount_fen", sa.BigInteger(), nullable=True),
        sa.Column("fund_amount_fen", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.CheckConstraint(
            "pool_amount_fen >= 0 AND fund_amount_fen >= 0", name="ck_products_non_negative"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "merchant_id"],
            ["merchants.tenant_id", "merchants.id"],
            name="fk_products_merchant",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
        sa.UniqueConstraint("tenant_id", "id", name="uq_products_tenant_id"),
    )
    op.create_index(
        "ix_products_tenant_merchant", "products", ["tenant_id", "merchant_id", "id"], unique=False
    )
    op.create_table(
        "skus",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("price_fen", sa.BigInteger(), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.CheckConstraint("stock >= 0", name="ck_skus_stock_non_negative"),
        sa.CheckConstraint("price_fen > 0", name="ck_skus_price_positive"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "product_id"],
            ["products.tenant_id", "products.id"],
            name="fk_skus_product",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_skus")),
        sa.UniqueConstraint("tenant_id", "id", name="uq_skus_tenant_id"),
    )
    op.create_index("ix_skus_tenant_product", "skus", ["tenant_id", "product_id", "id"])
    op.create_table(
        "member_profiles",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("invite_code", sa.String(length=16), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=True),
        sa.Column("referrer", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.CheckConstraint(
            "referrer IS NULL OR referrer <> code", name="ck_member_profiles_no_self"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_member_profiles_tenant_id_tenants")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "referrer"],
            ["member_profiles.tenant_id", "member_profiles.code"],
            name="fk_member_profiles_referrer",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_profiles")),
        sa.UniqueConstraint("tenant_id", "code", name="uq_member_profiles_tenant_code"),
        sa.UniqueConstraint("tenant_id", "invite_code", name="uq_member_profiles_tenant_invite"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.CheckConstraint(
            "(scope = 'operator' AND merchant_id IS NULL) "
            "OR (scope = 'merchant' AND merchant_id IS NOT NULL)",
            name="ck_api_keys_scope",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_api_keys_tenant_id_tenants")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "merchant_id"],
            ["merchants.tenant_id", "merchants.id"],
            name="fk_api_keys_merchant",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_id", name=op.f("uq_api_keys_key_id")),
    )
    op.create_index("ix_api_keys_tenant", "api_keys", ["tenant_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_api_keys_tenant", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("member_profiles")
    op.drop_index("ix_skus_tenant_product", table_name="skus")
    op.drop_table("skus")
    op.drop_index("ix_products_tenant_merchant", table_name="products")
    op.drop_table("products")
    op.drop_table("merchants")
