"""The outbox: event handlers that write a delivery row in the transaction of the fact.

Registered in :func:`tokenmall.bootstrap.event_handlers`.  Because the row is written on the
emitting transaction's connection, a fact that commits has its deliveries (none lost if the
process dies before sending: the scheduler finds them), and a fact that rolls back has none
(nothing is ever sent for it).  Sending is the scheduler's job (:mod:`.delivery`), after
commit and outside any transaction.

An event's id is derived from the fact (tenant, type and the fact's own key: the order and
its refund id, the withdrawal, the date), so the same fact always has the same id: a receiver
de-duplicates on it, and the unique key ``(tenant, event id, endpoint)`` means the outbox never
holds the fact twice for one endpoint.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, insert, select

from tokenmall.domain.events import (
    DayClosed,
    MemberExit,
    MembersExited,
    OrderPaid,
    OrderRefunded,
    OrderSettled,
    WithdrawalFailed,
    WithdrawalPaid,
)
from tokenmall.service.codec import cny, dec
from tokenmall.service.uow import TenantTx
from tokenmall.store import schema as s
from tokenmall.store.numbers import next_numbers

__all__ = ["Fact", "event_id", "facts_of", "record_event"]


@dataclass(frozen=True, slots=True)
class Fact:
    """What one event becomes on the wire."""

    type: str
    key: str  # the fact's own identity within the tenant and type
    stream: str  # deliveries of one stream go out in the order written
    at: float | None
    data: dict[str, Any]


def _amount(d: Decimal) -> str:
    return cny(d)  # the API's format for the same fields


def _order_paid(e: OrderPaid) -> Fact:
    data = {
        "order": e.order,
        "member": e.member,
        "total": _amount(e.total),
        "cny": _amount(e.cny),
        "sp": _amount(e.sp),
        "points_value": _amount(e.points_value),
    }
    return Fact("order.paid", e.order, f"order:{e.order}", e.at, data)


def _order_settled(e: OrderSettled) -> Fact:
    data = {"order": e.order, "member": e.member, "amount": _amount(e.amount)}
    return Fact("order.settled", e.order, f"order:{e.order}", e.at, data)


def _order_refunded(e: OrderRefunded) -> Fact:
    data = {
        "order": e.order,
        "member": e.member,
        "refund_id": e.refund_id,
        "amount": _amount(e.amount),
        "refunded": _amount(e.refunded),
        "total": _amount(e.total),
        "ratio": _amount(e.ratio),
        "settled": e.settled,
    }
    return Fact("order.refunded", f"{e.order}:{e.refund_id}", f"order:{e.order}", e.at, data)


def _withdrawal(kind: str, e: WithdrawalPaid | WithdrawalFailed) -> Fact:
    data = {
        "withdrawal": e.withdrawal,
        "member": e.member,
        "amount": _amount(e.amount),
        "fee": _amount(e.fee),
        "net": _amount(e.amount - e.fee),
    }
    return Fact(kind, e.withdrawal, f"withdrawal:{e.withdrawal}", e.at, data)


def _day_closed(e: DayClosed) -> Fact:
    data = {
        "day": e.day,
        "paid": _amount(e.paid),
        "recipients": e.recipients,
        "exits": e.exits,
    }
    return Fact("day.closed", e.day, "day", None, data)


def _member_exited(e: MembersExited, x: MemberExit) -> Fact:
    data = {
        "member": x.member,
        "points": dec(x.points),
        "payout": _amount(x.payout),
        "ledger_seq": e.seq,
    }
    # a member can exit again after buying again: the ledger entry names this exit
    return Fact("member.exited", f"{e.seq}:{x.member}", f"member:{x.member}", e.at, data)


_FACTS: dict[type, Callable[[Any], Fact]] = {
    OrderPaid: _order_paid,
    OrderSettled: _order_settled,
    OrderRefunded: _order_refunded,
    WithdrawalPaid: lambda e: _withdrawal("withdrawal.paid", e),
    WithdrawalFailed: lambda e: _withdrawal("withdrawal.failed", e),
    DayClosed: _day_closed,
}


def facts_of(event: object) -> list[Fact]:
    """The wire form of a domain event: one fact, or one per exit of a ``MembersExited``
    (a type without a form is a wiring mistake: KeyError)."""
    if isinstance(event, MembersExited):
        return [_member_exited(event, x) for x in event.exits]
    return [_FACTS[type(event)](event)]


def event_id(tenant_id: int, kind: str, key: str) -> str:
    """A stable id: the same fact always gets the same one, another fact never does."""
    digest = hashlib.sha256(f"{tenant_id}\x00{kind}\x00{key}".encode()).hexdigest()
    return f"evt_{digest[:32]}"


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


# built once with a bound tenant: it runs for every event of every tenant, endpoints or not,
# and building a Core statement costs more than running this one (DESIGN.md, "Statements
# built once")
_e, _t = s.webhook_endpoints.c, s.tenants.c
_ENDPOINTS = (
    select(_e.id, _e.events, _t.code)
    .join(s.tenants, _t.id == _e.tenant_id)
    .where(_e.tenant_id == bindparam("t"), _e.disabled_at.is_(None))
    .order_by(_e.id)
)


def record_event(tx: TenantTx, event: object) -> None:
    """The handler: one pending delivery per enabled endpoint of the tenant that asked for
    this event's type, in the emitting transaction.  A tenant without endpoints pays one
    indexed read per event."""
    conn, tid = tx.conn, tx.tenant_id
    rows = conn.execute(_ENDPOINTS, {"t": tid}).all()
    if not rows:
        return
    facts = facts_of(event)
    if not facts:
        return
    now = time.time()
    d = s.webhook_deliveries.c
    pending: list[dict[str, Any]] = []
    for fact in facts:
        targets = [r.id for r in rows if fact.type in r.events.split(",")]
        if not targets:
            continue
        eid = event_id(tid, fact.type, fact.key)
        written = set(
            conn.execute(
                select(d.endpoint_id).where(d.tenant_id == tid, d.event_id == eid)
            ).scalars()
        )
        created = fact.at if fact.at is not None else now
        body = json.dumps(
            {
                "id": eid,
                "type": fact.type,
                "tenant": rows[0].code,
                "created_at": _iso(created),
                "data": fact.data,
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )
        pending.extend(
            {
                "tenant_id": tid,
                "endpoint_id": endpoint,
                "event_id": eid,
                "event_type": fact.type,
                "stream": fact.stream[:120],
                "payload": body,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for endpoint in targets
            if endpoint not in written
        )
    if pending:
        first = next_numbers(conn, tid, "webhook_delivery", len(pending))
        for i, row in enumerate(pending):
            row["id"] = first + i
        conn.execute(insert(s.webhook_deliveries), pending)
