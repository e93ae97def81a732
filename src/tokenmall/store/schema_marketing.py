"""The tables of the marketing models in the service (migration 0016): a tenant's enabled
models and their audit trail, the models' persisted state, every reward paid and every move of
``chain21``; and the members' tasks that release held rewards (migration 0021).  Split from
:mod:`tokenmall.store.schema`, which re-exports every name here; the tables share its
``metadata``.

Amounts are integer atoms (CNY and SP at 4 decimal places), as in the ledger's tables.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
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
    "marketing_changes",
    "marketing_config",
    "marketing_moves",
    "marketing_orders",
    "marketing_rewards",
    "marketing_state",
    "member_tasks",
]

# The models a tenant has on, as JSON ``{name: {param: value}}`` (one row per tenant; no row:
# none on).  ``override_reason``: the compliance override that allowed a configuration paying
# through more referral levels than allowed (NULL when it needed none).
marketing_config = Table(
    "marketing_config",
    metadata,
    Column("tenant_id", Integer, ForeignKey("tenants.id"), primary_key=True),
    Column("config", Text, nullable=False),
    Column("override_reason", Text, nullable=True),
    # models switched off, with their last parameters: a refund of an order they rewarded
    # still takes their rewards back (JSON like ``config``)
    Column("retired", Text, nullable=False, server_default="{}"),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(120), nullable=False),
)

# The audit trail of model configuration changes: who, when, before, after, why.
marketing_changes = Table(
    "marketing_changes",
    metadata,
    Column("tenant_id", Integer, ForeignKey("tenants.id"), primary_key=True),
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("at", Float, nullable=False),
    Column("actor", String(120), nullable=False),
    Column("before", Text, nullable=False),
    Column("after", Text, nullable=False),
    Column("reason", Text, nullable=True),
    Column("override_reason", Text, nullable=True),
)

# An order the models saw settle: the amount they computed on and its products, what a later
# refund needs to compute its cumulative ratio over the same base.
marketing_orders = Table(
    "marketing_orders",
    metadata,
    Column("tenant_id", Integer, ForeignKey("tenants.id"), primary_key=True),
    Column("order_ref", String(64), primary_key=True),
    Column("member", String(64), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("products", Text, nullable=False),  # JSON list of product ids as strings
    Column("at", Float, nullable=False),
    sqlite_with_rowid=False,
)

# The models' state, one JSON document per (model, part, key): ``ns`` names a mapping of the
# model's state (``book.grants``, ``agents``, ...) and ``key`` its entry (an order, a member);
# ``ns = 'root'`` holds the model's scalar fields (queue_free's pot and queue, ...).  ``n``
# keeps the order entries were first written in (rebate pays grants in settlement order).
marketing_state = Table(
    "marketing_state",
    metadata,
    Column("tenant_id", Integer, ForeignKey("tenants.id"), nullable=False),
    Column("key", String(160), nullable=False),
    Column("model", String(24), nullable=False),
    Column("ns", String(24), nullable=False),
    Column("n", BigInteger, nullable=False),
    Column("doc", Text, nullable=False),
    # key second: an event reads the entries of every model under its order, buyer and
    # referrer in one range of the key (SQLite, without statistics, would otherwise walk the
    # tenant's whole state for ``tenant_id = ? AND key IN (...)``)
    PrimaryKeyConstraint("tenant_id", "key", "model", "ns", name="pk_marketing_state"),
    Index("ix_marketing_state_order", "tenant_id", "model", "ns", "n"),
    sqlite_with_rowid=False,
)

# Every reward a model paid (amount > 0) or took back (< 0), once per (order, model,
# beneficiary, step): the unique key is the idempotency the rules ask for, next to the
# ledger's own key.  ``withdrawable_at``: a frozen reward (distribution's freeze_days) can be
# spent but not withdrawn before then; a take-back carries its grant's time.
marketing_rewards = Table(
    "marketing_rewards",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id"), nullable=False),
    Column("order_ref", String(64), nullable=False),
    Column("model", String(24), nullable=False),
    Column("beneficiary", String(64), nullable=False),
    Column("step", String(160), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("withdrawable_at", Float, nullable=True),
    Column("at", Float, nullable=False),
    Column("ledger_seq", BigInteger, nullable=False),
    UniqueConstraint(
        "tenant_id", "order_ref", "model", "beneficiary", "step", name="uq_marketing_rewards_key"
    ),
    Index("ix_marketing_rewards_member", "tenant_id", "beneficiary", "model", "id"),
    Index("ix_marketing_rewards_model", "tenant_id", "model", "id"),
)

# chain21's log: every agent, placement, boss, bonus, hold, release and take-back, in order.
marketing_moves = Table(
    "marketing_moves",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id"), nullable=False),
    Column("model", String(24), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("member", String(64), nullable=False),
    Column("order_ref", String(64), nullable=False),
    Column("other", String(64), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("at", Float, nullable=False),
    Index("ix_marketing_moves_member", "tenant_id", "member", "id"),
    Index("ix_marketing_moves_tenant", "tenant_id", "id"),
)

# A task a member did (invite, sign_in, share), once per (member, key): the key is the
# integrator's idempotency key, so a task reported again releases nothing and answers what
# the first report released (``released``: JSON list of {"source", "order", "amount"}, in the
# order the handlers released it; ``source`` a model name or ``groupbuy``).
member_tasks = Table(
    "member_tasks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id"), nullable=False),
    Column("member", String(64), nullable=False),
    Column("key", String(80), nullable=False),
    Column("task", String(16), nullable=False),
    Column("day", String(10), nullable=False),  # the tenant's local day of the task
    Column("at", Float, nullable=False),
    Column("released", Text, nullable=False),
    UniqueConstraint("tenant_id", "member", "key", name="uq_member_tasks_key"),
    Index("ix_member_tasks_member", "tenant_id", "member", "id"),
)
