"""The demo tenant ``tokenmall serve`` creates on its default SQLite database.

A first-time user gets a mall they can call at once: a merchant, products with stock, two
members (bob referred by alice) and fresh credentials printed on every start.  Keys are stored
hashed, so the previous start's cannot be shown again: each start revokes the demo keys it
issued before and issues new ones.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select, update

from tokenmall.errors import NotFound
from tokenmall.service import catalog, credentials, members, tenants
from tokenmall.service.ledger import Ledger
from tokenmall.store import schema as s

__all__ = ["DEMO_MALL", "DemoCredentials", "seed_demo_mall"]

DEMO_MALL = "demo-mall"
_ACTOR = "tokenmall serve (demo)"
_TOKEN_TTL = 24 * 3600

# (product, description, per-unit pool amount or None, [(sku, price, stock)])
_PRODUCTS: list[tuple[str, str, str | None, list[tuple[str, str, int]]]] = [
    ("Longjing green tea", "West Lake, spring harvest", None, [("250 g", "100.00", 100)]),
    (
        "Tieguanyin oolong",
        "Anxi, light roast",
        None,
        [("100 g", "68.00", 50), ("500 g", "298.00", 20)],
    ),
    (
        "Ru kiln tea set",
        "Six cups and a pot; a fixed 30 CNY per set goes to the pool",
        "30.00",
        [
            ("celadon", "399.00", 10),
        ],
    ),
]


@dataclass(frozen=True, slots=True)
class DemoCredentials:
    tenant: str
    operator_key: str
    merchant_key: str
    merchant: str
    member_tokens: dict[str, str]


def seed_demo_mall(ledger: Ledger, secret: str) -> DemoCredentials:
    """Create the demo mall if it is missing, then issue this start's credentials."""
    with ledger.engine.connect() as conn:
        try:
            tid = tenants.tenant_id_for(conn, DEMO_MALL)
        except NotFound:
            tid = None
    if tid is None:
        tid = tenants.create_tenant(ledger, DEMO_MALL, name="tokenmall demo mall").id
    with ledger.engine.begin() as conn:
        m = s.merchants.c
        merchant_id = conn.execute(
            select(m.id).where(m.tenant_id == tid, m.code == "tea-house")
        ).scalar()
        if merchant_id is None:
            merchant_id = catalog.create_merchant(
                conn, tid, code="tea-house", name="Tea House", accepts_sp=True
            ).id
            for name, description, pool, skus in _PRODUCTS:
                product = catalog.create_product(
                    conn,
                    tid,
                    merchant_id=merchant_id,
                    name=name,
                    description=description,
                    pool_amount=None if pool is None else Decimal(pool),
                )
                for sku, price, stock in skus:
                    catalog.create_sku(
                        conn,
                        tid,
                        product_id=product.id,
                        name=sku,
                        price=Decimal(price),
                        stock=stock,
                    )
            alice = members.create_member(conn, tid, "alice", display_name="Alice")
            members.create_member(
                conn, tid, "bob", display_name="Bob", invite_code=alice.invite_code
            )
        k = s.api_keys.c
        conn.execute(
            update(s.api_keys)
            .where(k.tenant_id == tid, k.created_by == _ACTOR, k.revoked_at.is_(None))
            .values(revoked_at=time.time())
        )
        _, operator_key = credentials.create_api_key(
            conn, tid, scope="operator", name="demo operator", actor=_ACTOR
        )
        _, merchant_key = credentials.create_api_key(
            conn, tid, scope="merchant", name="demo merchant", actor=_ACTOR, merchant_id=merchant_id
        )
    tokens = {
        code: credentials.issue_member_token(secret, tid, code, ttl_seconds=_TOKEN_TTL)[0]
        for code in ("alice", "bob")
    }
    return DemoCredentials(
        tenant=DEMO_MALL,
        operator_key=operator_key,
        merchant_key=merchant_key,
        merchant="Tea House",
        member_tokens=tokens,
    )
