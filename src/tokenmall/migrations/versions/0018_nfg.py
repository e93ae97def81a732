"""NFG: collections, tokens, operators, listings, real names, token events and anchors

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 19:30:00

Tokens of a collection are keyed by serial; token events form a per-tenant hash chain (the
same leaf and chain hashes as the ledger's event log) whose batches are anchored by Merkle
root in ``nfg_anchors``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nfg_collections",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.Integer(), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("max_supply", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("metadata", sa.Text(), nullable=False),
        sa.Column("price_fen", sa.BigInteger(), nullable=False),
        sa.Column("accepted", sa.String(16), nullable=False),
        sa.Column("issuer", sa.String(64), nullable=True),
        sa.Column("royalty_bps", sa.Integer(), nullable=False),
        sa.Column("fee_bps", sa.Integer(), nullable=False),
        sa.Column("fee_to_pool", sa.String(16), nullable=False),
        sa.Column("transfer_policy", sa.String(10), nullable=False),
        sa.Column("exchange_mode", sa.String(10), nullable=True),
        sa.Column("min_holding_seconds", sa.Float(), nullable=False),
        sa.Column("real_name_only", sa.Boolean(), nullable=False),
        sa.Column("daily_transfer_limit", sa.Integer(), nullable=True),
        sa.Column("no_transfer_when_used", sa.Boolean(), nullable=False),
        sa.Column("appreciation_step", sa.String(16), nullable=True),
        sa.Column("product_id", sa.Integer(), nullable=True),
        sa.Column("minted", sa.Integer(), nullable=False),
        sa.Column("burned", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.UniqueConstraint("tenant_id", "code", name="uq_nfg_collections_tenant_code"),
        sa.UniqueConstraint("tenant_id", "id", name="uq_nfg_collections_tenant_id"),
        sa.CheckConstraint(
            "minted >= 0 AND burned >= 0 AND burned <= minted AND minted <= max_supply",
            name="ck_nfg_collections_counts",
        ),
        sa.CheckConstraint(
            "transfer_policy IN ('off', 'gift_only', 'open')", name="ck_nfg_collections_policy"
        ),
    )
    op.create_index(
        "ix_nfg_collections_tenant_product", "nfg_collections", ["tenant_id", "product_id"]
    )
    op.create_table(
        "nfg_tokens",
        sa.Column("tenant_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("collection_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("serial", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("approved", sa.String(64), nullable=True),
        sa.Column("acquired_at", sa.Float(), nullable=False),
        sa.Column("minted_at", sa.Float(), nullable=False),
        sa.Column("uses_left", sa.Integer(), nullable=False),
        sa.Column("last_price_fen", sa.BigInteger(), nullable=False),
        sa.Column("item_no", sa.String(64), nullable=True),
        sa.Column("burned_at", sa.Float(), nullable=True),
        sa.Column("order_ref", sa.String(32), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.CheckConstraint("uses_left >= 0 AND serial >= 1", name="ck_nfg_tokens_values"),
        sqlite_with_rowid=False,
    )
    op.create_index(
        "ix_nfg_tokens_tenant_owner",
        "nfg_tokens",
        ["tenant_id", "owner", "collection_id", "serial"],
    )
    op.create_index("ix_nfg_tokens_tenant_order", "nfg_tokens", ["tenant_id", "order_ref"])
    op.create_table(
        "nfg_operators",
        sa.Column("tenant_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("collection_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("owner", sa.String(64), primary_key=True),
        sa.Column("operator", sa.String(64), primary_key=True),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "nfg_real_names",
        sa.Column("tenant_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("member", sa.String(64), primary_key=True),
        sa.Column("verified_at", sa.Float(), nullable=False),
        sa.Column("verified_by", sa.String(120), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "nfg_listings",
        sa.Column("tenant_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.Integer(), nullable=False),
        sa.Column("seller", sa.String(64), nullable=False),
        sa.Column("lister", sa.String(64), nullable=False),
        sa.Column("price_fen", sa.BigInteger(), nullable=False),
        sa.Column("uses_left", sa.Integer(), nullable=False),
        sa.Column("listed_at", sa.Float(), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("closed_at", sa.Float(), nullable=True),
        sa.Column("buyer", sa.String(64), nullable=True),
        sa.CheckConstraint("price_fen > 0", name="ck_nfg_listings_price"),
        sa.CheckConstraint("state IN ('open', 'sold', 'cancelled')", name="ck_nfg_listings_state"),
        sqlite_with_rowid=False,
    )
    op.create_index(
        "ix_nfg_listings_tenant_token",
        "nfg_listings",
        ["tenant_id", "collection_id", "serial", "state"],
    )
    op.create_index("ix_nfg_listings_tenant_state", "nfg_listings", ["tenant_id", "state", "id"])
    op.create_table(
        "nfg_events",
        sa.Column("tenant_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("from_member", sa.String(64), nullable=True),
        sa.Column("to_member", sa.String(64), nullable=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("price_fen", sa.BigInteger(), nullable=True),
        sa.Column("asset", sa.String(3), nullable=True),
        sa.Column("uses_left", sa.Integer(), nullable=True),
        sa.Column("entry", sa.Text(), nullable=False),
        sa.Column("leaf_hash", sa.String(64), nullable=False),
        sa.Column("chain_hash", sa.String(64), nullable=False),
        sa.CheckConstraint(
            "kind IN ('mint', 'transfer', 'sale', 'redeem', 'burn')", name="ck_nfg_events_kind"
        ),
        sqlite_with_rowid=False,
    )
    op.create_index(
        "ix_nfg_events_tenant_token", "nfg_events", ["tenant_id", "collection_id", "serial", "seq"]
    )
    op.create_index(
        "ix_nfg_events_tenant_sender",
        "nfg_events",
        ["tenant_id", "collection_id", "from_member", "at"],
    )
    op.create_table(
        "nfg_anchors",
        sa.Column("tenant_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.CheckConstraint("first_seq >= 1 AND last_seq >= first_seq", name="ck_nfg_anchors_range"),
        sa.UniqueConstraint("tenant_id", "last_seq", name="uq_nfg_anchors_tenant_last"),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    for table in (
        "nfg_anchors",
        "nfg_events",
        "nfg_listings",
        "nfg_real_names",
        "nfg_operators",
        "nfg_tokens",
        "nfg_collections",
    ):
        op.drop_table(table)
