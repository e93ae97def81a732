"""The sandbox provider's intents in the database (``sandbox_intents``), one tenant's each.

The sandbox plays a payment provider inside the service's own process.  With one process its
intents could live in memory; ``tokenmall serve --workers N`` runs N processes behind one
port, and a customer's "pay" may reach another worker than the one that opened the intent,
and a restart would forget every intent a customer was about to pay.  So the gateway keeps its
intents here (:class:`~tokenmall.payments.sandbox_store.IntentStore`), like a real provider
keeps them on its side whatever happens to the merchant's servers.

Each call is its own short transaction, never inside another: the order flow calls the
provider outside its transactions (paying.py, refunds after the commit), as with any provider.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from tokenmall.errors import NotFound
from tokenmall.money import cny_of_fen, fen_of
from tokenmall.payments.base import IntentStatus, PaymentIntent, RefundResult, RefundStatus
from tokenmall.payments.sandbox import PROVIDER
from tokenmall.payments.sandbox_store import IntentRecord
from tokenmall.store import schema as s
from tokenmall.store.db import read_only

__all__ = ["DbIntents"]

_t = s.sandbox_intents.c


class DbIntents:
    """:class:`~tokenmall.payments.sandbox_store.IntentStore` of tenant ``tenant`` (its
    code: the gateway's name for it) in ``sandbox_intents``."""

    def __init__(self, engine: Engine, tenant: str) -> None:
        self.engine = engine
        self.tenant = tenant
        self._tenant_id: int | None = None

    def _tid(self) -> int:
        if self._tenant_id is None:
            t = s.tenants.c
            with read_only(self.engine).connect() as conn:
                tid = conn.execute(select(t.id).where(t.code == self.tenant)).scalar()
            if tid is None:
                raise NotFound(f"no tenant {self.tenant!r}")
            self._tenant_id = int(tid)
        return self._tenant_id

    def _one(self, where: Any) -> IntentRecord | None:
        with read_only(self.engine).connect() as conn:
            row = conn.execute(
                select(s.sandbox_intents).where(_t.tenant_id == self._tid(), where)
            ).first()
        return None if row is None else _record(row)

    def get(self, intent_id: str) -> IntentRecord | None:
        return self._one(_t.intent_id == intent_id)

    def of_order(self, order_id: str) -> IntentRecord | None:
        return self._one(_t.provider_order_id == order_id)

    def add(self, record: IntentRecord) -> IntentRecord:
        intent = record.intent
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(s.sandbox_intents).values(
                        tenant_id=self._tid(),
                        intent_id=intent.intent_id,
                        provider_order_id=intent.order_id,
                        amount_fen=fen_of(intent.amount),
                        description=intent.description[:200],
                        created_at=intent.created_at.timestamp(),
                        version=record.version,
                        **_state(record),
                    )
                )
        except IntegrityError:
            # another process opened this order's intent first: the provider has one per order
            first = self.of_order(intent.order_id)
            if first is None:
                raise
            return first
        return record

    def replace(self, old: IntentRecord, new: IntentRecord) -> bool:
        with self.engine.begin() as conn:
            swapped = conn.execute(
                update(s.sandbox_intents)
                .where(
                    _t.tenant_id == self._tid(),
                    _t.intent_id == old.intent.intent_id,
                    _t.version == old.version,
                )
                .values(version=new.version, **_state(new))
            ).rowcount
        return bool(swapped)


def _state(record: IntentRecord) -> dict[str, Any]:
    refunds = [
        {"id": r.refund_id, "fen": fen_of(r.amount), "provider_id": r.provider_refund_id}
        for r in record.refunds
    ]
    return {
        "status": record.intent.status.value,
        "transaction_id": record.transaction_id,
        "refunds": json.dumps(refunds, separators=(",", ":")),
    }


def _record(row: Any) -> IntentRecord:
    intent = PaymentIntent(
        provider=PROVIDER,
        intent_id=row.intent_id,
        order_id=row.provider_order_id,
        amount=cny_of_fen(row.amount_fen),
        description=row.description,
        status=IntentStatus(row.status),
        created_at=datetime.fromtimestamp(row.created_at, UTC),
    )
    refunds = tuple(
        RefundResult(
            provider=PROVIDER,
            refund_id=r["id"],
            intent_id=row.intent_id,
            order_id=row.provider_order_id,
            amount=cny_of_fen(r["fen"]),
            status=RefundStatus.PENDING,
            provider_refund_id=r["provider_id"],
        )
        for r in json.loads(row.refunds)
    )
    return IntentRecord(intent, row.transaction_id, refunds, row.version)
