"""Provider notifications: verify, deduplicate, dispatch.

Notifications are verified (signature, freshness) before anything is read, then deduplicated by
the primary key of ``provider_events`` inside the unit of work that applies them: the same
notification delivered five times grants once.  A payment that arrives for an order that can no
longer take it (expired, cancelled, already paid by another attempt, or the SP part is no longer
in the wallet) is *voided*: recorded, and refunded through the provider after the commit.  The
provider's time of payment decides lateness: a customer who paid before ``expires_at`` gets the
order even if the notification arrives after it.

Also here: the sandbox's "customer" (:func:`complete_sandbox`) and the delivery of what the
in-process sandbox queued (:func:`pump_sandbox`), since both end in :func:`handle_notification`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from tokenmall.errors import NotFound
from tokenmall.money import cny_of_fen, fen_of
from tokenmall.payments import Notification, NotificationKind, UnsupportedNotification
from tokenmall.payments.errors import PaymentError, PaymentStateError, UnknownPayment
from tokenmall.service.orders import queries, refunds, transitions
from tokenmall.service.orders import statements as q
from tokenmall.service.orders.context import OrderContext
from tokenmall.service.orders.models import NotificationResult, OrderStateError, SandboxCompletion
from tokenmall.service.orders.paying import apply_payment
from tokenmall.service.orders.providers import SANDBOX, ProviderRefund
from tokenmall.service.uow import TenantTx
from tokenmall.store import schema as s
from tokenmall.store.rows import insert_row

log = logging.getLogger("tokenmall.orders")

_SANDBOX_DRAIN_ROUNDS = 10


class _HandedOver(Exception):
    """A sandbox notification given to the caller instead of delivered (not acknowledged)."""


def handle_notification(  # noqa: PLR0917 - the facade's signature
    ctx: OrderContext,
    tenant_id: int,
    tenant: str,
    provider: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    pump: bool = True,
) -> NotificationResult:
    """See :meth:`tokenmall.service.orders.OrderService.handle_notification`."""
    with ctx.store.read() as conn:
        verifier = ctx.providers.verifier(conn, tenant_id, tenant, provider)
    n = verifier.parse_notification(headers, body)
    if n.kind.is_payout and n.kind not in ctx.handlers:
        raise UnsupportedNotification(f"{n.kind} notifications are not handled here")
    return apply_event(ctx, tenant_id, tenant, n, pump=pump)


def apply_event(
    ctx: OrderContext, tenant_id: int, tenant: str, n: Notification, *, pump: bool = True
) -> NotificationResult:
    """Apply one verified event once (a notification, or what a query of the provider
    found: both carry the same ``event_id``, so whichever comes second is a replay)."""
    todo: list[ProviderRefund] = []
    try:
        with ctx.store.tenant_tx(tenant_id) as tx:
            seen = _seen(tx, n)
            if seen is not None:
                return seen
            outcome, detail, order_ref = _dispatch(ctx, tx, n, todo)
            insert_row(
                tx.conn,
                s.provider_events,
                {
                    "tenant_id": tenant_id,
                    "provider": n.provider,
                    "event_id": n.event_id,
                    "kind": n.kind.value,
                    "provider_order_id": n.order_id,
                    "amount_fen": fen_of(n.amount),
                    "outcome": outcome,
                    "detail": None if detail is None else detail[:300],
                    "received_at": ctx.clock(),
                },
            )
    except IntegrityError:
        # the same event applied concurrently: the primary key kept it to once
        with ctx.store.read() as conn:
            row = conn.execute(
                q.EVENT, {"t": tenant_id, "provider": n.provider, "event": n.event_id}
            ).first()
        if row is None:
            raise
        return NotificationResult(n.event_id, row.kind, row.outcome, True, None, row.detail)
    refunds.submit_refunds(ctx, tenant_id, tenant, todo)
    if pump and todo:
        pump_sandbox(ctx, tenant_id, tenant)
    return NotificationResult(n.event_id, n.kind.value, outcome, False, order_ref, detail)


def _seen(tx: TenantTx, n: Notification) -> NotificationResult | None:
    row = tx.conn.execute(
        q.EVENT, {"t": tx.tenant_id, "provider": n.provider, "event": n.event_id}
    ).first()
    if row is None:
        return None
    return NotificationResult(n.event_id, row.kind, row.outcome, True, None, row.detail)


def _dispatch(
    ctx: OrderContext, tx: TenantTx, n: Notification, todo: list[ProviderRefund]
) -> tuple[str, str | None, str | None]:
    handler = ctx.handlers.get(n.kind)
    if handler is not None:
        outcome, detail = handler(tx, n)
        return outcome, detail, None
    if n.kind is NotificationKind.PAYMENT_SUCCEEDED:
        return _on_paid(ctx, tx, n, todo)
    if n.kind is NotificationKind.PAYMENT_FAILED:
        return _on_payment_failed(ctx, tx, n)
    if n.kind.is_refund:
        return _on_refund(ctx, tx, n)
    raise UnsupportedNotification(f"{n.kind} notifications are not handled here")


def _payment_for(tx: TenantTx, n: Notification) -> Any:
    return tx.conn.execute(
        q.locked(tx.conn, q.PAYMENT_BY_PROVIDER_ID),
        {"t": tx.tenant_id, "provider": n.provider, "pid": n.order_id or ""},
    ).first()


def _on_paid(
    ctx: OrderContext, tx: TenantTx, n: Notification, todo: list[ProviderRefund]
) -> tuple[str, str | None, str | None]:
    pay = _payment_for(tx, n)
    if pay is None:
        return "unknown_payment", f"no payment {n.order_id!r}", None
    row = queries.order_by_id(tx.conn, tx.tenant_id, pay.order_id, lock=True)
    if fen_of(n.amount) != pay.cny_fen:
        # authentic, but not what we asked for: nothing moves; an operator must look
        return "amount_mismatch", f"paid {n.amount}, expected {cny_of_fen(pay.cny_fen)}", row.ref
    if pay.status in ("paid", "voided"):
        return "already_applied", f"payment {pay.provider_order_id} is {pay.status}", row.ref
    now = ctx.clock()
    # the customer paid at occurred_at: in time if that was before expires_at
    row = transitions.expire_if_due(tx, row, n.occurred_at.timestamp(), grace=False)
    if row.status == "pending_payment":
        refused = apply_payment(tx, row, pay, now)
        if refused is None:
            return "applied", None, row.ref
        reason = f"payment could not be applied: {refused.error}"
        transitions.close_unpaid(tx, [row.id], status="failed", reason=reason[:200], now=now)
    else:
        reason = f"order is {row.status}"
    _void(ctx, tx, pay, reason=reason, now=now, todo=todo)
    return "voided", reason, row.ref


def _void(
    ctx: OrderContext,
    tx: TenantTx,
    pay: Any,
    *,
    reason: str,
    now: float,
    todo: list[ProviderRefund],
) -> None:
    """Money came in for an order that cannot take it: record it and give it back."""
    refund_id = f"{pay.provider_order_id}-void"
    status = ctx.providers.refund_route(tx.conn, tx.tenant_id, pay.provider)
    py = s.payments.c
    tx.conn.execute(
        update(s.payments)
        .where(py.tenant_id == tx.tenant_id, py.id == pay.id)
        .values(
            status="voided",
            note=reason[:300],
            refund_status=status,
            provider_refund_id=refund_id,
            updated_at=now,
        )
    )
    if status == "pending":
        todo.append(ProviderRefund.of_void(pay, refund_id))


def fail_open_payment(
    tx: TenantTx, payment_id: int, note: str, now: float, *, checked_at: float | None = None
) -> bool:
    """requires_payment -> failed (the order stays open for another attempt); False if the
    payment had moved on already.  ``checked_at``: the provider was asked at that time."""
    values: dict[str, Any] = {"status": "failed", "note": note[:300], "updated_at": now}
    if checked_at is not None:
        values["checked_at"] = checked_at
    py = s.payments.c
    done = tx.conn.execute(
        update(s.payments)
        .where(py.tenant_id == tx.tenant_id, py.id == payment_id, py.status == "requires_payment")
        .values(values)
    )
    return bool(done.rowcount == 1)


def _on_payment_failed(
    ctx: OrderContext, tx: TenantTx, n: Notification
) -> tuple[str, str | None, str | None]:
    pay = _payment_for(tx, n)
    if pay is None:
        return "unknown_payment", f"no payment {n.order_id!r}", None
    row = queries.order_by_id(tx.conn, tx.tenant_id, pay.order_id)
    if pay.status != "requires_payment":
        return "ignored", f"payment {pay.provider_order_id} is {pay.status}", row.ref
    fail_open_payment(tx, pay.id, "the provider reported a failed payment", ctx.clock())
    # the order stays open: the customer may try again until it expires
    return "payment_failed", None, row.ref


def _on_refund(
    ctx: OrderContext, tx: TenantTx, n: Notification
) -> tuple[str, str | None, str | None]:
    status = "succeeded" if n.kind is NotificationKind.REFUND_SUCCEEDED else "failed"
    now = ctx.clock()
    conn, tid = tx.conn, tx.tenant_id
    rf, py = s.order_refunds.c, s.payments.c
    row = conn.execute(
        select(rf.id, rf.order_id).where(rf.tenant_id == tid, rf.provider_refund_id == n.refund_id)
    ).first()
    if row is not None:
        conn.execute(
            update(s.order_refunds)
            .where(rf.tenant_id == tid, rf.id == row.id)
            .values(provider_status=status, updated_at=now)
        )
        return f"refund_{status}", None, queries.order_by_id(conn, tid, row.order_id).ref
    pay = conn.execute(
        select(py.id, py.order_id).where(py.tenant_id == tid, py.provider_refund_id == n.refund_id)
    ).first()
    if pay is not None:
        conn.execute(
            update(s.payments)
            .where(py.tenant_id == tid, py.id == pay.id)
            .values(refund_status=status, updated_at=now)
        )
        return f"refund_{status}", None, queries.order_by_id(conn, tid, pay.order_id).ref
    return "unknown_refund", f"no refund {n.refund_id!r}", None


# ----------------------------------------------------------------------------- sandbox


def pump_sandbox(ctx: OrderContext, tenant_id: int, tenant: str) -> None:
    """Deliver what the tenant's in-process sandbox has queued (refunds' notifications)."""

    def deliver(headers: Mapping[str, str], body: bytes) -> None:
        handle_notification(ctx, tenant_id, tenant, SANDBOX, headers, body, pump=False)

    ctx.providers.drain_sandbox(tenant, deliver)


def complete_sandbox(
    ctx: OrderContext,
    tenant_id: int,
    tenant: str,
    intent_id: str,
    *,
    succeed: bool = True,
    deliver: bool = True,
    member: str | None = None,
) -> SandboxCompletion:
    """See :meth:`tokenmall.service.orders.OrderService.complete_sandbox`."""
    ctx.providers.check_sandbox()
    with ctx.store.read() as conn:
        pay = conn.execute(q.ORDER_OF_INTENT, {"t": tenant_id, "i": intent_id}).first()
    if pay is None:
        raise NotFound(f"no sandbox intent {intent_id!r}")
    if member is not None and pay.member != member:
        raise NotFound(f"no order {pay.ref!r}")
    box = ctx.hub.sandbox(tenant)
    captured: list[tuple[dict[str, str], bytes]] = []
    results: list[NotificationResult] = []

    def hand_over(headers: Mapping[str, str], body: bytes) -> None:
        captured.append((dict(headers), body))
        # not an acknowledgement: the outbox keeps the event until this service takes it
        raise _HandedOver

    def handle(headers: Mapping[str, str], body: bytes) -> None:
        captured.append((dict(headers), body))
        results.append(
            handle_notification(ctx, tenant_id, tenant, SANDBOX, headers, body, pump=False)
        )

    with box.lock:
        gw = box.gateway
        before = set(gw.pending_event_ids)
        try:
            intent = gw.pay(intent_id) if succeed else gw.fail(intent_id)
        except UnknownPayment:
            raise OrderStateError(
                f"the sandbox does not know intent {intent_id!r} (this one kept it in another "
                "process's memory): start the payment again, which opens it anew"
            ) from None
        except PaymentStateError as exc:
            raise OrderStateError(str(exc)) from None
        if deliver:
            try:
                gw.drain(handle, max_rounds=_SANDBOX_DRAIN_ROUNDS)
            except PaymentError as exc:
                log.warning("sandbox outbox not drained: %s", exc)
        else:
            for event_id in [e for e in gw.pending_event_ids if e not in before]:
                gw.redeliver(event_id, hand_over)
    return SandboxCompletion(intent.intent_id, intent.status.value, captured, results)
