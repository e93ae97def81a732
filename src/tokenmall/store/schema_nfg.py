"""The NFG tables (migration 0018): collections, tokens, operators, listings, real-name
verifications, the per-tenant hash chain of token events and its published Merkle anchors.

Re-exported by :mod:`tokenmall.store.schema`.  Money is whole fen (BigInteger), times are unix
seconds, a token is ``(tenant_id, collection_id, serial)``.  A burned token keeps its row
(``burned_at`` set) so its serial is never issued again and its provenance still resolves.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from tokenmall.store.metadata import metadata

__all__ = [
    "LISTING_STATES",
    "NFG_EVENT_KINDS",
    "nfg_anchors",
    "nfg_collections",
    "nfg_events",
    "nfg_listings",
    "nfg_operators",
    "nfg_real_names",
    "nfg_tokens",
]

LISTING_STATES = ("open", "sold", "cancelled")
NFG_EVENT_KINDS = ("mint", "transfer", "sale", "redeem", "burn")
_MODES = "('off', 'gift_only', 'open')"

nfg_collections = Table(
    "nfg_collections",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id"), nullable=False),
    Column("code", String(32), nullable=False),
    Column("name", String(200), nullable=False),
    Column("max_supply", Integer, nullable=False),
    Column("kind", String(8), nullable=False),  # item | right
    Column("uses", Integer, nullable=False, default=0),
    Column("expires_at", Float, nullable=True),
    Column("metadata", Text, nullable=False),  # JSON of the metadata template
    Column("price_fen", BigInteger, nullable=False),
    Column("accepted", String(16), nullable=False),  # assets, comma-separated: CNY,SP,EP
    Column("issuer", String(64), nullable=True),  # a member; NULL: the platform (revenue)
    Column("royalty_bps", Integer, nullable=False, default=0),
    Column("fee_bps", Integer, nullable=False, default=0),
    Column("fee_to_pool", String(16), nullable=False, default="0"),  # ratio, a decimal
    Column("transfer_policy", String(10), nullable=False),
    Column("exchange_mode", String(10), nullable=True),  # NULL: the transfer policy
    Column("min_holding_seconds", Float, nullable=False, default=0.0),
    Column("real_name_only", Boolean, nullable=False, default=False),
    Column("daily_transfer_limit", Integer, nullable=True),
    Column("no_transfer_when_used", Boolean, nullable=False, default=True),
    Column("appreciation_step", String(16), nullable=True),  # a decimal; NULL: off
    # the catalog product whose paid orders mint tokens of this collection
    Column("product_id", Integer, nullable=True),
    Column("minted", Integer, nullable=False, default=0),
    Column("burned", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("tenant_id", "code", name="uq_nfg_collections_tenant_code"),
    UniqueConstraint("tenant_id", "id", name="uq_nfg_collections_tenant_id"),
    CheckConstraint(
        "minted >= 0 AND burned >= 0 AND burned <= minted AND minted <= max_supply",
        name="ck_nfg_collections_counts",
    ),
    CheckConstraint(f"transfer_policy IN {_MODES}", name="ck_nfg_collections_policy"),
    Index("ix_nfg_collections_tenant_product", "tenant_id", "product_id"),
)

nfg_tokens = Table(
    "nfg_tokens",
    metadata,
    Column("tenant_id", Integer, primary_key=True, autoincrement=False),
    Column("collection_id", Integer, primary_key=True, autoincrement=False),
    Column("serial", Integer, primary_key=True, autoincrement=False),
    Column("owner", String(64), nullable=False),  # the last owner once burned
    Column("approved", String(64), nullable=True),
    Column("acquired_at", Float, nullable=False),
    Column("minted_at", Float, nullable=False),
    Column("uses_left", Integer, nullable=False),
    Column("last_price_fen", BigInteger, nullable=False),
    Column("item_no", String(64), nullable=True),
    Column("burned_at", Float, nullable=True),
    # the paid order that minted it, and whether a refund of that order took it back
    Column("order_ref", String(32), nullable=True),
    Column("revoked", Boolean, nullable=False, default=False),
    # ``<member>:<key>`` of the primary purchase (SP or EP) that minted it, when the buyer sent
    # a key: a retry with the same key answers this token (migration 0022)
    Column("purchase_key", String(130), nullable=True),
    CheckConstraint("uses_left >= 0 AND serial >= 1", name="ck_nfg_tokens_values"),
    Index("ix_nfg_tokens_tenant_owner", "tenant_id", "owner", "collection_id", "serial"),
    Index("ix_nfg_tokens_tenant_order", "tenant_id", "order_ref"),
    Index("ux_nfg_tokens_tenant_purchase_key", "tenant_id", "purchase_key", unique=True),
    sqlite_with_rowid=False,
)

nfg_operators = Table(
    "nfg_operators",
    metadata,
    Column("tenant_id", Integer, primary_key=True, autoincrement=False),
    Column("collection_id", Integer, primary_key=True, autoincrement=False),
    Column("owner", String(64), primary_key=True),
    Column("operator", String(64), primary_key=True),
    sqlite_with_rowid=False,
)

nfg_real_names = Table(
    "nfg_real_names",
    metadata,
    Column("tenant_id", Integer, primary_key=True, autoincrement=False),
    Column("member", String(64), primary_key=True),
    Column("verified_at", Float, nullable=False),
    Column("verified_by", String(120), nullable=False),
    sqlite_with_rowid=False,
)

nfg_listings = Table(
    "nfg_listings",
    metadata,
    Column("tenant_id", Integer, primary_key=True, autoincrement=False),
    Column("id", Integer, primary_key=True, autoincrement=False),  # per tenant, from 1
    Column("collection_id", Integer, nullable=False),
    Column("serial", Integer, nullable=False),
    Column("seller", String(64), nullable=False),
    Column("lister", String(64), nullable=False),
    Column("price_fen", BigInteger, nullable=False),
    Column("uses_left", Integer, nullable=False),
    Column("listed_at", Float, nullable=False),
    Column("state", String(10), nullable=False),
    Column("closed_at", Float, nullable=True),
    Column("buyer", String(64), nullable=True),
    # the CNY order that reserves the listing while it is paid (migration 0020); kept once
    # sold (the order that paid it), cleared when the order closes unpaid or is refunded
    Column("order_ref", String(32), nullable=True),
    CheckConstraint("price_fen > 0", name="ck_nfg_listings_price"),
    CheckConstraint("state IN ('open', 'sold', 'cancelled')", name="ck_nfg_listings_state"),
    Index("ix_nfg_listings_tenant_token", "tenant_id", "collection_id", "serial", "state"),
    Index("ix_nfg_listings_tenant_state", "tenant_id", "state", "id"),
    Index("ix_nfg_listings_tenant_order", "tenant_id", "order_ref"),
    sqlite_with_rowid=False,
)

# Every mint, transfer, sale, redemption and burn, hash-chained per tenant as the ledger's
# event log is: leaf = SHA-256(0x00 || entry), chain = SHA-256(previous chain || leaf).
nfg_events = Table(
    "nfg_events",
    metadata,
    Column("tenant_id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("collection_id", Integer, nullable=False),
    Column("serial", Integer, nullable=False),
    Column("kind", String(10), nullable=False),
    Column("from_member", String(64), nullable=True),
    Column("to_member", String(64), nullable=True),
    Column("at", Float, nullable=False),
    Column("price_fen", BigInteger, nullable=True),
    Column("asset", String(3), nullable=True),
    Column("uses_left", Integer, nullable=True),
    Column("entry", Text, nullable=False),  # the event's canonical JSON
    Column("leaf_hash", String(64), nullable=False),
    Column("chain_hash", String(64), nullable=False),
    CheckConstraint(
        "kind IN ('mint', 'transfer', 'sale', 'redeem', 'burn')", name="ck_nfg_events_kind"
    ),
    Index("ix_nfg_events_tenant_token", "tenant_id", "collection_id", "serial", "seq"),
    Index("ix_nfg_events_tenant_sender", "tenant_id", "collection_id", "from_member", "at"),
    sqlite_with_rowid=False,
)

# A published batch: the RFC 6962 root of events first_seq..last_seq (the previous anchor's
# last_seq + 1 up to the newest event when it was published).
nfg_anchors = Table(
    "nfg_anchors",
    metadata,
    Column("tenant_id", Integer, primary_key=True, autoincrement=False),
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("first_seq", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("root", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    CheckConstraint("first_seq >= 1 AND last_seq >= first_seq", name="ck_nfg_anchors_range"),
    UniqueConstraint("tenant_id", "last_seq", name="uq_nfg_anchors_tenant_last"),
    sqlite_with_rowid=False,
)
