"""Shared set-up for the NFG service tests: a tenant, a collection, members with SP."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine

from tokenmall.bootstrap import event_handlers
from tokenmall.domain.commands import Join, RewardGrant
from tokenmall.domain.economy import Asset
from tokenmall.domain.nfg import Collection, Kind, Mode
from tokenmall.service.ledger import Ledger
from tokenmall.service.messagebus import EventBus
from tokenmall.service.nfg import collections
from tokenmall.service.uow import Store

T0 = 1_767_225_600.0  # 2026-01-01 08:00 Beijing time
DAY = 86_400.0


def store_for(engine: Engine) -> Store:
    return Store(engine, bus=EventBus(event_handlers()))


def tenant(engine: Engine) -> int:
    return Ledger(engine).create_tenant(f"t-{uuid.uuid4().hex[:12]}")


def card(**over: Any) -> Collection:
    base: dict[str, Any] = {
        "code": "BLACK",
        "name": "Black Card",
        "max_supply": 5000,
        "price": Decimal("999.00"),
        "kind": Kind.RIGHT,
        "uses": 12,
        "accepted": frozenset({Asset.CNY, Asset.SP, Asset.EP}),
        "royalty_bps": 500,
        "fee_bps": 250,
        "fee_to_pool_ratio": Decimal("0.5"),
        "transfer_policy": Mode.OPEN,
    }
    base.update(over)
    return Collection(**base)


def setup(store: Store, tid: int, coll: Collection, sp: dict[str, Decimal]) -> None:
    with store.tenant_tx(tid) as tx:
        collections.create_collection(tx, coll)
        for m, amount in sp.items():
            tx.apply_one(f"join:{m}:None", Join(m, None))
            if amount > 0:
                tx.apply_one(f"grant:{m}", RewardGrant(m, amount, "test"))


def sums(engine: Engine, tid: int) -> dict[str, Decimal]:
    """Each asset's balances summed over every account: zero when value is conserved."""
    out: dict[str, Decimal] = {}
    for (_, asset), v in Ledger(engine).balances(tid).items():
        out[asset] = out.get(asset, Decimal(0)) + v
    return out
