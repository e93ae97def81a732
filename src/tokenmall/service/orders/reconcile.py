"""Asking WeChat Pay about payments and refunds whose notification did not come.

WeChat's own advice: a payment still open a minute after it started is queried; paid, it is
applied exactly as its notification (same event id, so a late notification is a replay);
still open while the order can no longer take it, the WeChat order is closed so the customer
cannot pay it.  Refunds accepted a while ago without their notification are queried too.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

from sqlalchemy import select

from tokenmall.errors import NotFound
from tokenmall.payments import Notification, PaymentError, ProviderUnavailable
from tokenmall.payments.errors import ProviderRefused
from tokenmall.payments.wechat import PUBLIC_KEY_ID_PREFIX
from tokenmall.payments.wechat_api import WeChatPayApi
from tokenmall.service.errors import Conflict
from tokenmall.service.orders import queries
from tokenmall.service.orders import statements as q
from tokenmall.service.orders.context import OrderContext
from tokenmall.service.orders.lifecycle import get_order
from tokenmall.service.orders.models import Order, ProviderNotConfigured
from tokenmall.service.orders.notifications import apply_event, fail_open_payment
from tokenmall.service.orders.providers import WECHAT
from tokenmall.service.orders.wechat_config import refresh_wechat_certificates
from tokenmall.store import schema as s

log = logging.getLogger("tokenmall.orders")

CERTIFICATE_REFRESH: Final = 86_400.0  # the scheduler asks for WeChat's certificates daily


def reconcile_payments(
    ctx: OrderContext,
    *,
    now: float | None = None,
    older_than: float = 60.0,
    recheck: float = 60.0,
    limit: int = 200,
    refund_after: float = 600.0,
) -> int:
    """See :meth:`tokenmall.service.orders.OrderService.reconcile_payments`."""
    at = ctx.clock() if now is None else now
    ps, t = s.payment_settings.c, s.tenants.c
    with ctx.store.read() as conn:
        # only tenants with a WeChat configuration: one query, not one per tenant
        tenants = conn.execute(
            select(t.id, t.code, ps.config)
            .join(s.payment_settings, (ps.tenant_id == t.id) & (ps.provider == WECHAT))
            .order_by(t.id)
        ).all()
    for r in tenants:  # first: the queries below may be answered with a rotated key
        _refresh_certificates_due(ctx, int(r.id), json.loads(r.config), at)
    todo: list[tuple[int, str, WeChatPayApi, Sequence[Any], list[tuple[str, Any]]]] = []
    with ctx.store.read() as conn:
        for r in tenants:
            api = ctx.hub.wechat_api(conn, r.id)
            if api is None:
                continue
            rows = conn.execute(
                q.TO_RECONCILE,
                {"t": r.id, "created": at - older_than, "checked": at - recheck, "limit": limit},
            ).all()
            late = {"t": r.id, "since": at - refund_after, "checked": at - refund_after}
            refunds = [
                ("order_refunds", row)
                for row in conn.execute(q.REFUNDS_TO_CHECK, {**late, "limit": limit})
            ] + [
                ("payments", row)
                for row in conn.execute(q.VOID_REFUNDS_TO_CHECK, {**late, "limit": limit})
            ]
            if rows or refunds:
                todo.append((int(r.id), str(r.code), api, rows, refunds))
    return sum(_reconcile_tenant(ctx, *entry, at=at) for entry in todo)


def _refresh_certificates_due(
    ctx: OrderContext, tenant_id: int, config: Mapping[str, Any], at: float
) -> None:
    """:func:`refresh_wechat_certificates` once a :data:`CERTIFICATE_REFRESH` per tenant
    with outbound calls in certificate mode (``config``: its stored WeChat configuration);
    a failure is logged and tried again after the same interval."""
    if at - ctx.certificates_checked.get(tenant_id, -math.inf) < CERTIFICATE_REFRESH:
        return
    if not config.get("outbound") or all(
        k.startswith(PUBLIC_KEY_ID_PREFIX) for k in config["keys"]
    ):
        # public-key mode: nothing to download; looked at again each tick, in case that changes
        return
    ctx.certificates_checked[tenant_id] = at
    try:
        refresh_wechat_certificates(ctx, tenant_id, actor="scheduler")
    except (PaymentError, Conflict) as exc:
        log.warning("tenant %s: WeChat Pay certificates not refreshed: %s", tenant_id, exc)


def _reconcile_tenant(  # noqa: PLR0917 - one caller, reconcile_payments
    ctx: OrderContext,
    tenant_id: int,
    tenant: str,
    api: WeChatPayApi,
    payments: Sequence[Any],
    refunds: Sequence[tuple[str, Any]],
    *,
    at: float,
) -> int:
    """One tenant's share of :func:`reconcile_payments`; how many changed.

    WeChat unreachable (a timeout, a 5xx, an answer that does not verify) ends the
    tenant's run: every further call would wait out its timeout too, and the scheduler's
    other work (and other tenants) should not wait behind them.  The rest are asked on the
    next run.  A refusal concerns one payment or refund: the others go on.
    """
    changed = 0
    items: list[tuple[str, Any]] = [*refunds, *(("order", pay) for pay in payments)]
    # asked, nothing changed: not asked again before the next interval (one commit)
    asked: dict[str, list[int]] = {"payments": [], "order_refunds": []}
    try:
        for kind, row in items:
            table = "order_refunds" if kind == "order_refunds" else "payments"
            try:
                if kind == "order":
                    done = _reconcile(ctx, tenant_id, tenant, api, row, at)
                    if done is not None:
                        changed += done
                        continue
                else:
                    found = api.query_refund(row.provider_refund_id)
                    if found.notification is not None:
                        changed += _applied(ctx, tenant_id, tenant, found.notification)
                        continue
            except PaymentError as exc:
                what = row.provider_order_id if kind == "order" else row.provider_refund_id
                log.warning("WeChat %s not reconciled, will ask again: %s", what, exc)
                asked[table].append(row.id)
                if isinstance(exc, ProviderUnavailable):
                    return changed
                continue
            asked[table].append(row.id)
        return changed
    finally:
        _checked(ctx, tenant_id, asked, at)


def sync_payments(
    ctx: OrderContext, tenant_id: int, tenant: str, ref: str, *, member: str | None = None
) -> Order:
    """See :meth:`tokenmall.service.orders.OrderService.sync_payments`."""
    at = ctx.clock()
    with ctx.store.read() as conn:
        row = queries.order_row(conn, tenant_id, ref)
        if member is not None and row.member != member:
            raise NotFound(f"no order {ref!r}")
        api = ctx.hub.wechat_api(conn, tenant_id)
        if api is None:
            raise ProviderNotConfigured(
                "WeChat Pay outbound calls are not configured for this tenant"
            )
        pays = conn.execute(q.OPEN_WECHAT_OF, {"t": tenant_id, "id": row.id}).all()
    asked: list[int] = []
    try:
        for pay in pays:
            if _reconcile(ctx, tenant_id, tenant, api, pay, at) is None:
                asked.append(pay.id)
    finally:
        _checked(ctx, tenant_id, {"payments": asked}, at)
    return get_order(ctx, tenant_id, ref)


def _reconcile(  # noqa: PLR0917 - internal
    ctx: OrderContext, tenant_id: int, tenant: str, api: WeChatPayApi, pay: Any, at: float
) -> int | None:
    """One open WeChat payment against what WeChat says of it: 1 if its state changed, 0 if
    an event changed nothing, None if WeChat was asked and nothing is to be done yet (the
    caller records that it asked)."""
    no = pay.provider_order_id
    found = api.query_order(no)
    if found.notification is not None:
        return _applied(ctx, tenant_id, tenant, found.notification)
    if pay.order_status == "pending_payment" and at < pay.expires_at:
        return None  # the customer may still pay
    if found.is_open:
        # The order can no longer take this payment: make sure it is never made.  A close
        # refused because the customer paid just now is fine: the query below sees it.
        try:
            api.close_order(no)
        except ProviderRefused as exc:
            log.info("WeChat order %s not closed (%s); asking its state", no, exc)
        found = api.query_order(no)
        if found.notification is not None:
            return _applied(ctx, tenant_id, tenant, found.notification)
        return None
    # WeChat has no such order (its signed answer says so): nothing was or can be paid
    note = f"WeChat Pay has no order {no} ({found.trade_state})"
    with ctx.store.tenant_tx(tenant_id, lock=False) as tx:
        return int(fail_open_payment(tx, pay.id, note, ctx.clock(), checked_at=at))


def _applied(ctx: OrderContext, tenant_id: int, tenant: str, n: Notification) -> int:
    result = apply_event(ctx, tenant_id, tenant, n, pump=False)
    log.info("WeChat %s of %s: %s by query", n.event_id, n.order_id, result.outcome)
    return int(not result.duplicate)


def _checked(ctx: OrderContext, tenant_id: int, asked: Mapping[str, list[int]], at: float) -> None:
    """Record in one transaction that WeChat was asked about these ``payments`` and
    ``order_refunds`` rows at ``at``."""
    statements = (
        (q.PAYMENT_CHECKED, asked.get("payments", [])),
        (q.REFUND_CHECKED, asked.get("order_refunds", [])),
    )
    if not any(ids for _, ids in statements):
        return
    with ctx.store.tenant_tx(tenant_id, lock=False) as tx:
        for statement, ids in statements:
            if ids:
                tx.conn.execute(statement, [{"t": tenant_id, "b_id": i, "at": at} for i in ids])
