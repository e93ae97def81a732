"""The models in the order flow: handlers of the service's events, registered in
:func:`tokenmall.bootstrap.event_handlers`.

Each runs inside the event's transaction, after the engine (model #0) applied its own
commands, under the tenant's lock: it maps the service's event onto the domain's small event,
runs the tenant's models in their documented order (:data:`tokenmall.domain.marketing.ORDER`)
on their persisted state (:mod:`.state`), writes the state back and pays the rewards in one
ledger batch (:func:`.rewards.pay`).  A handler that raises rolls the fact back with it.

* ``OrderSettled``: the order's base (the amount left after refunds so far) and products are
  recorded in ``marketing_orders``; a fact seen twice pays nothing the second time.
* ``OrderRefunded`` of a settled order: the cumulative ratio is taken over the base the models
  settled on (refunds before settlement already shrank it), so partial refunds add up to a
  full one; the models on *and* those switched off since reverse what they paid.
  Refunds before settlement move nothing here: no model had paid anything.
* ``DayClosed``: the models' day hook (rebate's release), after the engine's dividends.
* ``MemberJoined``: no model of today's set reacts to it (referral links are read from the
  member registry when an order settles), so the handler only runs models that do.
* ``TaskDone``: the models with a task hook (chain21 releases a member's held help money once
  they did ``help_tasks`` tasks); what they paid is noted on the task's record.  A model
  switched off releases nothing (it pays nothing more); its held money stays held.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import bindparam, insert, select

from tokenmall.domain import events as ev
from tokenmall.domain import marketing as dm
from tokenmall.domain.marketing.base import implements
from tokenmall.errors import NotFound
from tokenmall.money import CNY_PLACES, atoms, from_atoms
from tokenmall.service import members, tasks
from tokenmall.service.marketing import config, rewards
from tokenmall.service.marketing.state import Session
from tokenmall.service.orders import queries
from tokenmall.service.orders.models import line_of
from tokenmall.service.uow import TenantTx
from tokenmall.store import schema as s

__all__ = ["on_day_closed", "on_member_joined", "on_refunded", "on_settled", "on_task_done"]

DEFAULT_PRODUCT = "default"  # an order without lines (an imported one) is of this product

_o = s.marketing_orders.c
_RECORD = insert(s.marketing_orders)
_ORDER = select(_o.member, _o.amount, _o.products).where(
    _o.tenant_id == bindparam("t"), _o.order_ref == bindparam("o")
)


class _Links:
    """The models' :class:`~tokenmall.domain.marketing.Context`: referral links as the member
    registry holds them (the ledger's link for a member known only to the ledger)."""

    def __init__(self, tx: TenantTx) -> None:
        self._tx = tx
        self._cache: dict[str, str | None] = {}

    def referrer_of(self, member: str) -> str | None:
        if member not in self._cache:
            conn, tid = self._tx.conn, self._tx.tenant_id
            try:
                found = members.get_profile(conn, tid, member).referrer
            except NotFound:
                found = members.ledger_referrer(conn, tid, member)
            self._cache[member] = found
        return self._cache[member]


def _products(tx: TenantTx, order: str) -> list[str]:
    """The order's products (as the order's lines name them), in line order."""
    try:
        row = queries.order_row(tx.conn, tx.tenant_id, order)
    except NotFound:
        return []
    ids = [str(line_of(r).product_id) for r in queries.lines(tx.conn, tx.tenant_id, row.id)]
    return list(dict.fromkeys(ids))


def _product_for(model: dm.MarketingModel[Any, Any], products: Sequence[str]) -> str:
    """The product a model sees for an order: the first of its lines the model's product list
    names, else the first line's (a model without a list takes every product)."""
    wanted = getattr(model.params, "products", None) or getattr(
        model.params, "entry_products", None
    )
    if wanted:
        for p in products:
            if p in wanted:
                return p
    return products[0] if products else DEFAULT_PRODUCT


def _run(
    tx: TenantTx,
    models: Iterable[dm.MarketingModel[Any, Any]],
    hook: str,
    event_for: Any,
    *,
    keys: Iterable[str | None],
    at: float,
    links: _Links | None = None,
) -> list[dm.Reward]:
    session = Session(tx.conn, tx.tenant_id)
    session.prefetch(keys)
    links = links if links is not None else _Links(tx)
    paid: list[dm.Reward] = []
    for m in models:
        if implements(m, hook):
            paid += getattr(m, hook)(session.state(m), event_for(m), links)
    session.flush(at)
    rewards.pay(tx, paid, at)
    return paid


def on_settled(tx: TenantTx, event: ev.OrderSettled) -> None:
    """Run the tenant's models on a settled order (see the module docstring)."""
    models = config.active_models(tx.conn, tx.tenant_id)
    if models is None or event.amount <= 0:
        return
    tx.lock()
    conn, tid = tx.conn, tx.tenant_id
    if conn.execute(_ORDER, {"t": tid, "o": event.order}).first() is not None:
        return  # this fact was handled before (the models would pay nothing anyway)
    products = _products(tx, event.order)
    conn.execute(
        _RECORD,
        {
            "tenant_id": tid,
            "order_ref": event.order,
            "member": event.member,
            "amount": atoms(event.amount, CNY_PLACES),
            "products": json.dumps(products),
            "at": event.at,
        },
    )
    at = datetime.fromtimestamp(event.at, UTC)

    def settled(m: dm.MarketingModel[Any, Any]) -> dm.OrderSettled:
        return dm.OrderSettled(
            event.order, event.member, event.amount, _product_for(m, products), at
        )

    links = _Links(tx)
    _run(
        tx,
        models.models,
        "on_settled",
        settled,
        keys=(event.order, event.member, links.referrer_of(event.member)),
        at=event.at,
        links=links,
    )


def on_refunded(tx: TenantTx, event: ev.OrderRefunded) -> None:
    """Take back what the order's rewards lose at the refund's cumulative ratio."""
    if not event.settled:
        return
    conn, tid = tx.conn, tx.tenant_id
    row = conn.execute(_ORDER, {"t": tid, "o": event.order}).first()
    if row is None:
        return  # settled while no model was on: nothing was paid
    base = from_atoms(int(row.amount), CNY_PLACES)
    # refunds before settlement shrank the base already; count only those after it
    refunded = min(base, event.refunded - (event.total - base))
    if refunded <= 0:
        return
    models = config.reversing_models(conn, tid)
    if not models:
        return
    tx.lock()
    refund = dm.OrderRefunded(event.order, event.refund_id, refunded, base)
    _run(
        tx,
        models,
        "on_refunded",
        lambda _m: refund,
        keys=(event.order, row.member),
        at=event.at,
    )


def on_day_closed(tx: TenantTx, event: ev.DayClosed) -> None:
    """The models' day hook after the engine's close (rebate releases its daily amounts)."""
    models = config.active_models(tx.conn, tx.tenant_id)
    if models is None:
        return
    day = dm.DayClosed(date.fromisoformat(event.day))
    _run(tx, models.models, "on_day_closed", lambda _m: day, keys=(), at=time.time())


def on_member_joined(tx: TenantTx, event: ev.MemberJoined) -> None:
    """Run the models that react to a sign-up (none of today's: see the module docstring)."""
    models = config.active_models(tx.conn, tx.tenant_id)
    if models is None:
        return
    reacting = [m for m in models.models if implements(m, "on_member_joined")]
    if not reacting:
        return
    tx.lock()
    joined = dm.MemberJoined(event.member, event.referrer)
    _run(
        tx,
        reacting,
        "on_member_joined",
        lambda _m: joined,
        keys=(event.member, event.referrer),
        at=event.at,
    )


def on_task_done(tx: TenantTx, event: ev.TaskDone) -> None:
    """Run the models with a task hook (chain21's held money; see the module docstring)."""
    models = config.active_models(tx.conn, tx.tenant_id)
    if models is None:
        return
    reacting = [m for m in models.models if implements(m, "on_task_done")]
    if not reacting:
        return
    tx.lock()
    done = dm.TaskDone(event.member, event.task, date.fromisoformat(event.day))
    paid = _run(tx, reacting, "on_task_done", lambda _m: done, keys=(event.member,), at=event.at)
    for r in paid:
        if r.amount > 0:
            tasks.note_release(tx, event, r.model, r.order, r.amount)
