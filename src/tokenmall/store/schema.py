"""The database schema (SQLAlchemy Core).  Alembic migrations are the source of DDL in
deployments; this metadata is what they were generated from and what queries use.

Amounts are stored as integer *atoms* (BigInteger): CNY and SP at 4 decimal places, EP at 8
(see :mod:`tokenmall.money`).  Integers are exact in SQLite and PostgreSQL alike, sum exactly in
SQL, and are an order of magnitude faster to read and write than decimal text.

Tables on the write path are ``WITHOUT ROWID`` in SQLite: their composite primary key is the
table's only B-tree, which halves the work of each insert.

Every table's key starts with ``tenant_id``: the schema is multi-tenant from the start and can
be sharded by tenant later.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
    true,
)

from tokenmall.store.metadata import metadata

__all__ = [
    "accounts",
    "escrows",
    "grants",
    "ledger_tx",
    "members",
    "metadata",
    "param_changes",
    "payout_holds",
    "tenant_state",
    "tenants",
    "transfers",
]


tenants = Table(
    "tenants",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("code", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("timezone", String(64), nullable=False, server_default="Asia/Shanghai"),
    Column("params", Text, nullable=False),  # JSON of TenantParams.to_mapping()
    Column("created_at", Float, nullable=False),
)

# The hot row of a tenant: locked (FOR UPDATE / BEGIN IMMEDIATE) by every batch that moves
# value, which is what puts a tenant's events in one total order across processes.
tenant_state = Table(
    "tenant_state",
    metadata,
    Column("tenant_id", Integer, ForeignKey("tenants.id"), primary_key=True),
    Column("seq", BigInteger, nullable=False, default=0),
    Column("head", String(64), nullable=False),
    Column("member_count", Integer, nullable=False, default=0),
    Column("empty_pool", BigInteger, nullable=False, default=0),
    Column("empty_circulating", BigInteger, nullable=False, default=0),
    # Added to every stored members.trigger (quota/EP, CNY per EP) when it is written; a day
    # close under "points" weighting raises it by its water level instead of rewriting the
    # trigger of every paid holder.  A pre-filter only: see service/ledger.py (migration 0005).
    Column("trigger_shift", Float, nullable=False, default=0.0, server_default="0"),
)

accounts = Table(
    "accounts",
    metadata,
    Column("tenant_id", Integer, ForeignKey("tenants.id"), primary_key=True),
    Column("account", String(32), primary_key=True),
    Column("asset", String(3), primary_key=True),
    Column("balance", BigInteger, nullable=False, default=0),
    # the last line of defence for "cannot go negative": the domain refuses first
    CheckConstraint(
        "balance >= 0 OR account IN ('world', 'revenue', 'issuance', 'sp_issuance')",
        name="ck_accounts_non_negative",
    ),
    sqlite_with_rowid=False,
)

members = Table(
    "members",
    metadata,
    Column("tenant_id", Integer, ForeignKey("tenants.id"), primary_key=True),
    Column("no", Integer, primary_key=True, autoincrement=False),
    Column("code", String(64), nullable=False),
    Column("referrer", String(64), nullable=True),
    Column("ep", BigInteger, nullable=False, default=0),
    Column("sp", BigInteger, nullable=False, default=0),
    Column("quota", BigInteger, nullable=False, default=0),
    Column("spent", BigInteger, nullable=False, default=0),
    Column("dividends", BigInteger, nullable=False, default=0),
    Column("ep_debt", BigInteger, nullable=False, default=0),
    Column("exited", Boolean, nullable=False, default=False),
    # quota/EP as a float: an index for the exit query, a pre-filter only; the domain decides
    # exactly.  NULL when the member can never be due (no EP or never bought).
    Column("trigger", Float, nullable=True),
    # SP owed from reward take-backs (migration 0015), set off against the next SP credits
    Column("sp_debt", BigInteger, nullable=False, default=0, server_default="0"),
    UniqueConstraint("tenant_id", "code", name="uq_members_tenant_code"),
    CheckConstraint("ep >= 0 AND sp >= 0 AND quota >= 0", name="ck_members_non_negative"),
    # (trigger, no) is the exit order: the index serves the paged due query without a sort
    Index("ix_members_tenant_trigger", "tenant_id", "trigger", "no"),
    sqlite_with_rowid=False,
)

grants = Table(
    "grants",
    metadata,
    Column("tenant_id", Integer, ForeignKey("tenants.id"), primary_key=True),
    Column("order_ref", String(64), primary_key=True),
    Column("member", String(64), nullable=False),
    Column("referrer", String(64), nullable=True),
    Column("amount", BigInteger, nullable=False),
    Column("pool_in", BigInteger, nullable=False),
    Column("fund_in", BigInteger, nullable=False),
    Column("ep_member", BigInteger, nullable=False),
    Column("ep_referrer", BigInteger, nullable=False),
    Column("quota", BigInteger, nullable=False),
    Column("refunded", BigInteger, nullable=False, default=0),
    # order total (CNY + SP + value of EP redeemed) and its CNY part: refunds return money in
    # the mix it was paid; for a plain purchase both equal ``amount``
    Column("total", BigInteger, nullable=False),
    Column("cny_part", BigInteger, nullable=False),
    sqlite_with_rowid=False,
)

# Money of a paid order waiting for settlement (R11: rewards are pending until then).
escrows = Table(
    "escrows",
    metadata,
    Column("tenant_id", Integer, ForeignKey("tenants.id"), primary_key=True),
    Column("order_ref", String(64), primary_key=True),
    Column("member", String(64), nullable=False),
    Column("cny", BigInteger, nullable=False),
    Column("sp", BigInteger, nullable=False),
    Column("ep_points", BigInteger, nullable=False),
    Column("ep_value", BigInteger, nullable=False),
    Column("refunded", BigInteger, nullable=False, default=0),
    Column("settled", Boolean, nullable=False, default=False),
    sqlite_with_rowid=False,
)

# SP taken out of a wallet for a withdrawal until the provider confirms or it is rejected.
payout_holds = Table(
    "payout_holds",
    metadata,
    Column("tenant_id", Integer, ForeignKey("tenants.id"), primary_key=True),
    Column("request_ref", String(64), primary_key=True),
    Column("member", String(64), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("fee", BigInteger, nullable=False),
    Column("status", String(12), nullable=False),  # held | paid | released
    sqlite_with_rowid=False,
)

# One row per committed ledger transaction: the tenant's event log, hash-chained.
ledger_tx = Table(
    "ledger_tx",
    metadata,
    Column("tenant_id", Integer, ForeignKey("tenants.id"), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("key", String(160), nullable=False),
    Column("kind", String(24), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("payload", Text, nullable=False),
    Column("result", Text, nullable=False),
    Column("leaf_hash", String(64), nullable=False),
    Column("chain_hash", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("tenant_id", "key", name="uq_ledger_tx_tenant_key"),
    sqlite_with_rowid=False,
)

transfers = Table(
    "transfers",
    metadata,
    Column("tenant_id", Integer, ForeignKey("tenants.id"), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("n", Integer, primary_key=True, autoincrement=False),
    Column("asset", String(3), nullable=False),
    Column("debit", String(32), nullable=False),
    Column("credit", String(32), nullable=False),
    Column("amount", BigInteger, nullable=False),
    sqlite_with_rowid=False,
)

param_changes = Table(
    "param_changes",
    metadata,
    Column("tenant_id", Integer, ForeignKey("tenants.id"), primary_key=True),
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("at", Float, nullable=False),
    Column("actor", String(120), nullable=False),
    Column("before", Text, nullable=False),
    Column("after", Text, nullable=False),
)

# ----------------------------------------------------------------------------- the mall (0002)
# Credentials, member registry and catalog of the HTTP service (migration 0002).  Merchants,
# products and SKUs are numbered per tenant (what URLs and orders reference; migration 0019,
# store/numbers.py: a global id would show every tenant the others' volume), and children point
# at their parent with (tenant_id, parent_id): the database itself refuses a product of tenant A
# under a merchant of tenant B.  Every query still filters on tenant_id first.
# Catalog money is whole fen (BigInteger): prices are paid by people, so they have no sub-fen.

__all__ += ["api_keys", "member_profiles", "merchants", "products", "skus"]

merchants = Table(
    "merchants",
    metadata,
    # numbered per tenant (store/numbers.py, migration 0019): (tenant_id, id) is the key
    Column("id", Integer, nullable=False, autoincrement=False),
    Column("tenant_id", Integer, ForeignKey("tenants.id"), nullable=False),
    Column("code", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("accepts_sp", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("tenant_id", "code", name="uq_merchants_tenant_code"),
    PrimaryKeyConstraint("tenant_id", "id", name="pk_merchants"),
    # the key's twin, from when ids were global: the composite foreign keys point at it
    UniqueConstraint("tenant_id", "id", name="uq_merchants_tenant_id"),
)

products = Table(
    "products",
    metadata,
    # numbered per tenant (store/numbers.py, migration 0019): (tenant_id, id) is the key
    Column("id", Integer, nullable=False, autoincrement=False),
    Column("tenant_id", Integer, nullable=False),
    Column("merchant_id", Integer, nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False, default=""),
    # docs/RULES.md section 1: a fixed CNY amount per unit into the pool / dividend fund, overriding
    # pool_rate / dividend_rate for this product (NULL: the tenant's rates apply)
    Column("pool_amount_fen", BigInteger, nullable=True),
    Column("fund_amount_fen", BigInteger, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # migration 0012: a product taken off the shelf stays listed, its SKUs cannot be ordered
    Column("on_shelf", Boolean, nullable=False, default=True, server_default=true()),
    ForeignKeyConstraint(
        ["tenant_id", "merchant_id"],
        ["merchants.tenant_id", "merchants.id"],
        name="fk_products_merchant",
    ),
    PrimaryKeyConstraint("tenant_id", "id", name="pk_products"),
    # the key's twin, from when ids were global: the composite foreign keys point at it
    UniqueConstraint("tenant_id", "id", name="uq_products_tenant_id"),
    CheckConstraint(
        "pool_amount_fen >= 0 AND fund_amount_fen >= 0", name="ck_products_non_negative"
    ),
    Index("ix_products_tenant_merchant", "tenant_id", "merchant_id", "id"),
)

skus = Table(
    "skus",
    metadata,
    # numbered per tenant (store/numbers.py, migration 0019): (tenant_id, id) is the key
    Column("id", Integer, nullable=False, autoincrement=False),
    Column("tenant_id", Integer, nullable=False),
    Column("product_id", Integer, nullable=False),
    Column("name", String(200), nullable=False),
    Column("price_fen", BigInteger, nullable=False),
    # reserved with a conditional UPDATE (catalog.reserve_stock); the CHECK is the last line
    # of defence against overselling
    Column("stock", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    ForeignKeyConstraint(
        ["tenant_id", "product_id"],
        ["products.tenant_id", "products.id"],
        name="fk_skus_product",
    ),
    PrimaryKeyConstraint("tenant_id", "id", name="pk_skus"),
    # the key's twin, from when ids were global: the composite foreign keys point at it
    UniqueConstraint("tenant_id", "id", name="uq_skus_tenant_id"),
    CheckConstraint("stock >= 0", name="ck_skus_stock_non_negative"),
    CheckConstraint("price_fen > 0", name="ck_skus_price_positive"),
    Index("ix_skus_tenant_product", "tenant_id", "product_id", "id"),
)

# The member registry of the mall.  The ledger's ``members`` row is created by the engine on a
# member's first movement; this row exists from sign-up and holds the invite code.  ``referrer``
# is the referrer's member code: the order flow passes it to the engine as Purchase.referrer.
member_profiles = Table(
    "member_profiles",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id"), nullable=False),
    Column("code", String(64), nullable=False),
    Column("invite_code", String(16), nullable=False),
    Column("display_name", String(200), nullable=True),
    Column("referrer", String(64), nullable=True),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("tenant_id", "code", name="uq_member_profiles_tenant_code"),
    UniqueConstraint("tenant_id", "invite_code", name="uq_member_profiles_tenant_invite"),
    ForeignKeyConstraint(
        ["tenant_id", "referrer"],
        ["member_profiles.tenant_id", "member_profiles.code"],
        name="fk_member_profiles_referrer",
    ),
    CheckConstraint("referrer IS NULL OR referrer <> code", name="ck_member_profiles_no_self"),
)

# Per-tenant API keys.  Only SHA-256 of the secret is stored: the secret has 256 bits of
# entropy, so a slow password hash would add latency to every request and no safety.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id"), nullable=False),
    Column("key_id", String(32), nullable=False, unique=True),  # public part of the key
    Column("secret_hash", String(64), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("merchant_id", Integer, nullable=True),
    Column("name", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(120), nullable=False),
    Column("revoked_at", Float, nullable=True),
    ForeignKeyConstraint(
        ["tenant_id", "merchant_id"],
        ["merchants.tenant_id", "merchants.id"],
        name="fk_api_keys_merchant",
    ),
    CheckConstraint(
        "(scope = 'operator' AND merchant_id IS NULL) "
        "OR (scope = 'merchant' AND merchant_id IS NOT NULL)",
        name="ck_api_keys_scope",
    ),
    Index("ix_api_keys_tenant", "tenant_id", "id"),
)

# ----------------------------------------------------------------------------- wallet (0004)
# Withdrawal requests of the SP wallet (service/wallet.py) and the indexes its read models need.
# The SP itself leaves the wallet in the ledger (Withdraw) in the same transaction that inserts
# the row; this table holds what the ledger does not: payee account, review and payout state.

__all__ += ["withdrawals"]

WITHDRAWAL_STATES = ("requested", "approved", "rejected", "paid", "failed", "cancelled")

withdrawals = Table(
    "withdrawals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id"), nullable=False),
    # the public id, the ledger's payout hold (Withdraw.request) and the provider's payout id
    Column("ref", String(40), nullable=False),
    Column("member", String(64), nullable=False),
    Column("account", String(128), nullable=False),  # the provider's payee handle (openid)
    Column("amount_fen", BigInteger, nullable=False),
    Column("fee_fen", BigInteger, nullable=False),
    Column("status", String(12), nullable=False),
    Column("idempotency_key", String(64), nullable=False),
    Column("requested_at", Float, nullable=False),
    Column("reviewed_at", Float, nullable=True),
    Column("reviewer", String(120), nullable=True),
    Column("note", String(500), nullable=True),
    Column("payout_sent_at", Float, nullable=True),
    Column("provider_payout_id", String(64), nullable=True),
    Column("finished_at", Float, nullable=True),
    # WeChat transfers that wait for the payee (WAIT_USER_CONFIRM): what the mini-program
    # passes to wx.requestMerchantTransfer (since migration 0007)
    Column("payout_package", String(1024), nullable=True),
    # the payee's real name sealed for WeChat Pay (base64 RSA-OAEP under the platform key
    # ``payee_name_serial``): only WeChat can read it, a resend sends it as is (migration 0009)
    Column("payee_name_cipher", Text, nullable=True),
    Column("payee_name_serial", String(64), nullable=True),
    UniqueConstraint("tenant_id", "ref", name="uq_withdrawals_tenant_ref"),
    UniqueConstraint(
        "tenant_id", "member", "idempotency_key", name="uq_withdrawals_tenant_member_key"
    ),
    CheckConstraint(
        # 'cancelled' since migration 0006
        "status IN ('requested', 'approved', 'rejected', 'paid', 'failed', 'cancelled')",
        name="ck_withdrawals_status",
    ),
    CheckConstraint(
        "amount_fen > 0 AND fee_fen >= 0 AND fee_fen < amount_fen", name="ck_withdrawals_amounts"
    ),
    Index("ix_withdrawals_tenant_member", "tenant_id", "member", "id"),
    Index("ix_withdrawals_tenant_status", "tenant_id", "status", "id"),
)

# A member's wallet and reward history read their own transfers.  Partial indexes (member
# accounts only): most transfers of a purchase are between system accounts, and every index
# entry is paid for on the ledger's write path.  Queries must repeat the predicate literally.
MEMBER_CREDIT_PREDICATE = "credit LIKE 'm:%'"
MEMBER_DEBIT_PREDICATE = "debit LIKE 'm:%'"
Index(
    "ix_transfers_member_credit",
    transfers.c.tenant_id,
    transfers.c.credit,
    transfers.c.seq,
    sqlite_where=text(MEMBER_CREDIT_PREDICATE),
    postgresql_where=text(MEMBER_CREDIT_PREDICATE),
)
Index(
    "ix_transfers_member_debit",
    transfers.c.tenant_id,
    transfers.c.debit,
    transfers.c.seq,
    sqlite_where=text(MEMBER_DEBIT_PREDICATE),
    postgresql_where=text(MEMBER_DEBIT_PREDICATE),
)
# the top-N holder board, partners and level counts (R10) walk members by EP held
Index("ix_members_tenant_ep", members.c.tenant_id, members.c.ep)
# the day close's set-off pass reads the few members with an SP debt (migration 0015)
MEMBER_SP_DEBT_PREDICATE = "sp_debt > 0"
Index(
    "ix_members_tenant_sp_debt",
    members.c.tenant_id,
    members.c.no,
    sqlite_where=text(MEMBER_SP_DEBT_PREDICATE),
    postgresql_where=text(MEMBER_SP_DEBT_PREDICATE),
)

# ----------------------------------------------------------------------------- orders (0003)
# Orders, their lines, payment attempts, refunds, provider notifications and per-tenant
# payment settings (service/orders.py, migration 0003).  Money is whole fen (BigInteger).
# The ledger knows an order by ``ref`` (escrows.order_ref, grants.order_ref, keys
# ``pay:<ref>``, ``settle:<ref>``, ``refund:<ref>:<refund id>``).

__all__ += [
    "order_lines",
    "order_refunds",
    "orders",
    "payment_settings",
    "payments",
    "provider_events",
]

ORDER_STATUSES = (
    "pending_payment",
    "paid",
    "delivered",
    "settled",
    "refunded",
    "cancelled",
    "expired",
    "failed",
)

orders = Table(
    "orders",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id"), nullable=False),
    # the public order number, the ledger's order id and the stem of provider order ids
    Column("ref", String(32), nullable=False),
    # the caller's own order id: creating an order again with it returns the first one
    Column("client_ref", String(64), nullable=True),
    Column("request_hash", String(64), nullable=False),
    Column("member", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("total_fen", BigInteger, nullable=False),
    Column("refunded_fen", BigInteger, nullable=False, default=0),
    # how the order was paid (set with status paid): the CNY and SP parts, and the attempt
    Column("paid_cny_fen", BigInteger, nullable=True),
    Column("paid_sp_fen", BigInteger, nullable=True),
    Column("payment_id", Integer, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("paid_at", Float, nullable=True),
    Column("delivered_at", Float, nullable=True),
    # end of the return window (delivered_at + settle_days); what settle_due looks at
    Column("settle_at", Float, nullable=True),
    Column("settled_at", Float, nullable=True),
    Column("closed_at", Float, nullable=True),  # cancelled, expired, failed or fully refunded
    Column("close_reason", String(200), nullable=True),
    Column("settle_error", String(300), nullable=True),
    # why a paid order may not deliver or settle yet (``group``: a group-buy place in escrow
    # until its group confirms it); None for an ordinary order (migration 0017)
    Column("hold", String(16), nullable=True),
    UniqueConstraint("tenant_id", "ref", name="uq_orders_tenant_ref"),
    UniqueConstraint("tenant_id", "client_ref", name="uq_orders_tenant_client_ref"),
    UniqueConstraint("tenant_id", "id", name="uq_orders_tenant_id"),
    CheckConstraint(
        "total_fen > 0 AND refunded_fen >= 0 AND refunded_fen <= total_fen",
        name="ck_orders_amounts",
    ),
    CheckConstraint("status IN ('" + "', '".join(ORDER_STATUSES) + "')", name="ck_orders_status"),
    Index("ix_orders_tenant_status_expires", "tenant_id", "status", "expires_at"),
    Index("ix_orders_tenant_status_settle", "tenant_id", "status", "settle_at"),
    Index("ix_orders_tenant_member", "tenant_id", "member", "id"),
)

order_lines = Table(
    "order_lines",
    metadata,
    Column("tenant_id", Integer, nullable=False),
    Column("order_id", Integer, primary_key=True, autoincrement=False),
    Column("line_no", Integer, primary_key=True, autoincrement=False),
    Column("sku_id", Integer, nullable=False),
    Column("product_id", Integer, nullable=False),
    Column("merchant_id", Integer, nullable=False),
    Column("name", String(401), nullable=False),  # product and SKU name when ordered
    Column("quantity", Integer, nullable=False),
    Column("unit_price_fen", BigInteger, nullable=False),
    # the product's per-unit pool / dividend amounts when ordered (NULL: the tenant's rates)
    Column("pool_unit_fen", BigInteger, nullable=True),
    Column("fund_unit_fen", BigInteger, nullable=True),
    ForeignKeyConstraint(
        ["tenant_id", "order_id"], ["orders.tenant_id", "orders.id"], name="fk_order_lines_order"
    ),
    CheckConstraint("quantity > 0 AND unit_price_fen > 0", name="ck_order_lines_positive"),
    # a merchant's orders (GET /merchants/{id}/orders; migration 0013)
    Index("ix_order_lines_tenant_merchant", "tenant_id", "merchant_id", "order_id"),
)

# One row per attempt to collect an order's money (a provider intent, or an SP-only payment).
payments = Table(
    "payments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, nullable=False),
    Column("order_id", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("provider", String(16), nullable=False),  # sandbox | wechat | wallet (SP only)
    # the id the provider knows the payment by (out_trade_no): <order ref>-<attempt>
    Column("provider_order_id", String(64), nullable=False),
    Column("intent_id", String(64), nullable=True),
    Column("cny_fen", BigInteger, nullable=False),
    Column("sp_fen", BigInteger, nullable=False),
    # requires_payment | paid | failed | voided (the money came but the order could not take it)
    Column("status", String(20), nullable=False),
    Column("note", String(300), nullable=True),
    # the provider refund of a voided payment: none | pending | submitted | succeeded | failed
    # | manual
    Column("refund_status", String(12), nullable=False, default="none"),
    Column("provider_refund_id", String(64), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # when the provider was last asked about this payment, or about the refund of it once
    # voided (OrderService.reconcile_payments)
    Column("checked_at", Float, nullable=True),
    ForeignKeyConstraint(
        ["tenant_id", "order_id"], ["orders.tenant_id", "orders.id"], name="fk_payments_order"
    ),
    # the scheduler's retry of provider refunds that never reached the provider
    Index("ix_payments_tenant_refund_status", "tenant_id", "refund_status"),
    # the scheduler's reconciliation of open provider payments (and the expiry's grace check)
    Index("ix_payments_tenant_provider_status", "tenant_id", "provider", "status"),
    UniqueConstraint("tenant_id", "order_id", "attempt", name="uq_payments_tenant_order_attempt"),
    UniqueConstraint(
        "tenant_id", "provider", "provider_order_id", name="uq_payments_tenant_provider_order"
    ),
    CheckConstraint("cny_fen >= 0 AND sp_fen >= 0", name="ck_payments_non_negative"),
)

order_refunds = Table(
    "order_refunds",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, nullable=False),
    Column("order_id", Integer, nullable=False),
    Column("refund_ref", String(64), nullable=False),  # the caller's refund id
    Column("requested_fen", BigInteger, nullable=True),  # NULL: "all that is left"
    Column("amount_fen", BigInteger, nullable=False),
    Column("cny_fen", BigInteger, nullable=False),  # back to the payer through the provider
    Column("sp_fen", BigInteger, nullable=False),  # back to the wallet as SP
    Column("phase", String(20), nullable=False),  # before_settlement | after_settlement
    Column("ledger_seq", BigInteger, nullable=False),
    Column("reason", String(200), nullable=True),
    Column("payment_id", Integer, nullable=True),
    Column("provider_status", String(12), nullable=False),  # as payments.refund_status
    Column("provider_refund_id", String(64), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # when the provider was last asked about this refund (OrderService.reconcile_payments)
    Column("checked_at", Float, nullable=True),
    ForeignKeyConstraint(
        ["tenant_id", "order_id"], ["orders.tenant_id", "orders.id"], name="fk_order_refunds_order"
    ),
    UniqueConstraint("tenant_id", "refund_ref", name="uq_order_refunds_tenant_ref"),
    CheckConstraint(
        "amount_fen > 0 AND cny_fen >= 0 AND sp_fen >= 0 AND cny_fen + sp_fen = amount_fen",
        name="ck_order_refunds_amounts",
    ),
    Index("ix_order_refunds_tenant_provider_status", "tenant_id", "provider_status"),
    Index("ix_order_refunds_tenant_order", "tenant_id", "order_id", "id"),
)

# Every provider notification applied (or deliberately ignored), once: the primary key is the
# deduplication, inside the transaction that applies the event.
provider_events = Table(
    "provider_events",
    metadata,
    Column("tenant_id", Integer, ForeignKey("tenants.id"), primary_key=True),
    Column("provider", String(16), primary_key=True),
    Column("event_id", String(160), primary_key=True),
    Column("kind", String(24), nullable=False),
    Column("provider_order_id", String(64), nullable=True),
    Column("amount_fen", BigInteger, nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("detail", String(300), nullable=True),
    Column("received_at", Float, nullable=False),
    # the operator's list of events in the order received (migration 0010)
    Index("ix_provider_events_tenant_received", "tenant_id", "received_at"),
    sqlite_with_rowid=False,
)

# A tenant's provider configuration (today: WeChat Pay notification keys), as JSON.
payment_settings = Table(
    "payment_settings",
    metadata,
    Column("tenant_id", Integer, ForeignKey("tenants.id"), primary_key=True),
    Column("provider", String(16), primary_key=True),
    Column("config", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(120), nullable=False),
)


# The tables of the features around the mall live in their own module; they are re-exported
# here so every caller reads them as ``schema.<table>``.
from tokenmall.store.schema_ops import (  # noqa: E402
    AFTERSALES_STATES,
    WEBHOOK_DELIVERY_STATES,
    aftersales_events,
    aftersales_requests,
    order_addresses,
    order_shipments,
    sandbox_intents,
    scheduler_lease,
    tenant_counters,
    webhook_deliveries,
    webhook_endpoints,
)

__all__ += [
    "AFTERSALES_STATES",
    "WEBHOOK_DELIVERY_STATES",
    "aftersales_events",
    "aftersales_requests",
    "order_addresses",
    "order_shipments",
    "sandbox_intents",
    "scheduler_lease",
    "tenant_counters",
    "webhook_deliveries",
    "webhook_endpoints",
]

from tokenmall.store.schema_marketing import (  # noqa: E402
    marketing_changes,
    marketing_config,
    marketing_moves,
    marketing_orders,
    marketing_rewards,
    marketing_state,
    member_tasks,
)

__all__ += [
    "marketing_changes",
    "marketing_config",
    "marketing_moves",
    "marketing_orders",
    "marketing_rewards",
    "marketing_state",
    "member_tasks",
]

from tokenmall.store.schema_groups import (  # noqa: E402
    GROUP_MODES,
    GROUP_PLACE_STATES,
    GROUP_STATES,
    group_buys,
    group_campaign_draws,
    group_campaigns,
    group_commissions,
    group_funds,
    group_offers,
    group_places,
)

__all__ += [
    "GROUP_MODES",
    "GROUP_PLACE_STATES",
    "GROUP_STATES",
    "group_buys",
    "group_campaign_draws",
    "group_campaigns",
    "group_commissions",
    "group_funds",
    "group_offers",
    "group_places",
]

from tokenmall.store.schema_nfg import (  # noqa: E402
    LISTING_STATES,
    NFG_EVENT_KINDS,
    nfg_anchors,
    nfg_collections,
    nfg_events,
    nfg_listings,
    nfg_operators,
    nfg_real_names,
    nfg_tokens,
)

__all__ += [
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
