"""The tables of the features around the mall: webhooks (0011), shipping and after-sales
(0013), and running the service (0014).  Split from :mod:`tokenmall.store.schema`, which
re-exports every name here, so callers keep reading ``schema.webhook_endpoints``; the tables
share its ``metadata`` (:mod:`tokenmall.store.metadata`)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
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
)

from tokenmall.store.metadata import metadata

__all__ = [
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


# ----------------------------------------------------------------------------- webhooks (0011)
# A tenant's webhook endpoints and the outbox of deliveries to them (service/webhooks/).  A
# delivery row is written by an event handler in the transaction that makes the fact true, so
# it commits or rolls back with the fact; the scheduler sends it afterwards.


WEBHOOK_DELIVERY_STATES = ("pending", "delivered", "failed")

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    # endpoints and deliveries are numbered per tenant (store/numbers.py, migration 0019)
    Column("id", Integer, nullable=False, autoincrement=False),
    Column("tenant_id", Integer, ForeignKey("tenants.id"), nullable=False),
    Column("url", String(500), nullable=False),
    # the signing secret: kept in clear because every delivery is signed with it
    Column("secret", String(80), nullable=False),
    Column("events", String(1000), nullable=False),  # event types, comma-separated
    Column("description", String(200), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(120), nullable=False),
    Column("disabled_at", Float, nullable=True),
    PrimaryKeyConstraint("tenant_id", "id", name="pk_webhook_endpoints"),
    UniqueConstraint("tenant_id", "id", name="uq_webhook_endpoints_tenant_id"),
    Index("ix_webhook_endpoints_tenant", "tenant_id", "id"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, nullable=False, autoincrement=False),
    Column("tenant_id", Integer, ForeignKey("tenants.id"), nullable=False),
    Column("endpoint_id", Integer, nullable=False),
    Column("event_id", String(40), nullable=False),
    Column("event_type", String(40), nullable=False),
    # what the deliveries of one endpoint are ordered by ("order:<ref>", "withdrawal:<ref>",
    # "day"): a later row of a stream waits while an earlier one is pending
    Column("stream", String(120), nullable=False),
    Column("payload", Text, nullable=False),  # the JSON body, exactly as signed and sent
    Column("status", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False),
    # a scheduler that claimed the row owns it until then (a crash mid-send: it lapses)
    Column("claimed_until", Float, nullable=True),
    Column("claim", String(32), nullable=True),
    Column("last_status", Integer, nullable=True),  # the receiver's HTTP status, if any
    Column("last_error", String(300), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("delivered_at", Float, nullable=True),
    ForeignKeyConstraint(
        ["tenant_id", "endpoint_id"],
        ["webhook_endpoints.tenant_id", "webhook_endpoints.id"],
        name="fk_webhook_deliveries_endpoint",
    ),
    PrimaryKeyConstraint("tenant_id", "id", name="pk_webhook_deliveries"),
    UniqueConstraint(
        "tenant_id", "event_id", "endpoint_id", name="uq_webhook_deliveries_tenant_event"
    ),
    CheckConstraint(
        "status IN ('" + "', '".join(WEBHOOK_DELIVERY_STATES) + "')",
        name="ck_webhook_deliveries_status",
    ),
    # the scheduler's due rows per tenant, the order check per stream, the operator's list
    Index("ix_webhook_deliveries_due", "tenant_id", "status", "next_attempt_at"),
    Index("ix_webhook_deliveries_stream", "tenant_id", "endpoint_id", "stream", "id"),
    Index("ix_webhook_deliveries_tenant_status", "tenant_id", "status", "id"),
)

# ----------------------------------------------------------------------------- shipping (0013)

# Where the goods go: given with the order, shown only to its buyer, its merchants and operators.
order_addresses = Table(
    "order_addresses",
    metadata,
    Column("tenant_id", Integer, nullable=False),
    Column("order_id", Integer, primary_key=True, autoincrement=False),
    Column("recipient", String(50), nullable=False),
    Column("phone", String(11), nullable=False),
    Column("province", String(32), nullable=False),
    Column("city", String(32), nullable=False),
    Column("district", String(32), nullable=False),
    Column("detail", String(200), nullable=False),
    ForeignKeyConstraint(
        ["tenant_id", "order_id"],
        ["orders.tenant_id", "orders.id"],
        name="fk_order_addresses_order",
    ),
)

# One shipment per merchant of an order: its lines leave together, with one tracking number.
order_shipments = Table(
    "order_shipments",
    metadata,
    Column("tenant_id", Integer, nullable=False),
    Column("order_id", Integer, primary_key=True, autoincrement=False),
    Column("merchant_id", Integer, primary_key=True, autoincrement=False),
    Column("carrier", String(32), nullable=False),
    Column("tracking_no", String(40), nullable=False),
    Column("shipped_at", Float, nullable=False),
    Column("shipped_by", String(120), nullable=False),
    # a corrected tracking number: who and when (shipped_* keep the first shipment)
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(120), nullable=False),
    ForeignKeyConstraint(
        ["tenant_id", "order_id"],
        ["orders.tenant_id", "orders.id"],
        name="fk_order_shipments_order",
    ),
)

# ----------------------------------------------------------------------------- after-sales (0013)

AFTERSALES_STATES = ("requested", "accepted", "refunded", "refused", "cancelled")

# A member's request for a refund of a paid or delivered order.
aftersales_requests = Table(
    "aftersales_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, nullable=False),
    Column("ref", String(32), nullable=False),  # public id; also the refund id when accepted
    Column("order_id", Integer, nullable=False),
    Column("member", String(64), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("reason", String(200), nullable=False),
    Column("photos", Text, nullable=False),  # JSON array of https URLs
    Column("status", String(12), nullable=False),
    Column("decision_note", String(200), nullable=True),  # why it was refused
    # the order's id while the request is open, NULL once decided or cancelled: the unique
    # constraint below is what refuses a second open request for one order
    Column("open_order_id", Integer, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    ForeignKeyConstraint(
        ["tenant_id", "order_id"],
        ["orders.tenant_id", "orders.id"],
        name="fk_aftersales_requests_order",
    ),
    UniqueConstraint("tenant_id", "ref", name="uq_aftersales_requests_tenant_ref"),
    UniqueConstraint("tenant_id", "open_order_id", name="uq_aftersales_requests_open"),
    UniqueConstraint("tenant_id", "id", name="uq_aftersales_requests_tenant_id"),
    CheckConstraint("amount_fen > 0", name="ck_aftersales_requests_amount"),
    CheckConstraint(
        "status IN ('" + "', '".join(AFTERSALES_STATES) + "')",
        name="ck_aftersales_requests_status",
    ),
    Index("ix_aftersales_requests_tenant_order", "tenant_id", "order_id", "id"),
    Index("ix_aftersales_requests_tenant_member", "tenant_id", "member", "id"),
)

# Every state a request took, who moved it there and when (append-only).
aftersales_events = Table(
    "aftersales_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, nullable=False),
    Column("request_id", Integer, nullable=False),
    Column("status", String(12), nullable=False),
    Column("actor", String(120), nullable=False),
    Column("note", String(200), nullable=True),
    Column("at", Float, nullable=False),
    ForeignKeyConstraint(
        ["tenant_id", "request_id"],
        ["aftersales_requests.tenant_id", "aftersales_requests.id"],
        name="fk_aftersales_events_request",
    ),
    Index("ix_aftersales_events_tenant_request", "tenant_id", "request_id", "id"),
)

# ----------------------------------------------------------------------------- running (0014)


# Who runs the scheduler: one row per lease name, taken and renewed by a conditional update
# (store/lease.py).  Deployment-wide, not a tenant's: the one table whose key is not a tenant.
scheduler_lease = Table(
    "scheduler_lease",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("holder", String(200), nullable=False),  # host:pid:random of the process holding it
    Column("acquired_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

# The sandbox provider's payment intents (service/orders/sandbox_intents.py), so that every
# worker process of a server, and the same server after a restart, knows the intents any of
# them opened.  ``version`` makes each change a compare-and-set: two workers paying the same
# intent at once, one wins.
sandbox_intents = Table(
    "sandbox_intents",
    metadata,
    Column("tenant_id", Integer, ForeignKey("tenants.id"), primary_key=True),
    Column("intent_id", String(64), primary_key=True),
    Column("provider_order_id", String(64), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("description", String(200), nullable=False),
    Column("status", String(24), nullable=False),  # requires_payment | succeeded | failed
    Column("transaction_id", String(64), nullable=True),
    Column("refunds", Text, nullable=False),  # JSON list of the refunds accepted
    Column("created_at", Float, nullable=False),
    Column("version", Integer, nullable=False),
    UniqueConstraint(
        "tenant_id", "provider_order_id", name="uq_sandbox_intents_tenant_provider_order"
    ),
    sqlite_with_rowid=False,
)


# ------------------------------------------------------------------- per-tenant numbers (0019)
# The last number handed out per tenant and kind of row (store/numbers.py).
tenant_counters = Table(
    "tenant_counters",
    metadata,
    Column("tenant_id", Integer, ForeignKey("tenants.id"), primary_key=True),
    Column("kind", String(24), primary_key=True),
    Column("last", BigInteger, nullable=False),
    sqlite_with_rowid=False,
)
