"""Orders: the list with its filters and CSV export, an order's detail, and what staff do to
an order from the page: refund (all or part), confirm delivery (operator), ship (merchant).

Each action is the API's: ``POST .../orders/{ref}/refunds``, ``.../delivery`` and a
merchant's ``.../merchants/{id}/orders/{ref}/shipment``, through the same order service.  A
merchant sees only the orders with its own lines, as its desk in the API does.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import secrets
from collections.abc import Iterator
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from tokenmall.errors import TokenmallError
from tokenmall.service.codec import cny
from tokenmall.service.orders import ORDER_STATUSES, OrderService
from tokenmall.service.orders.models import check_ref
from tokenmall.web.base import (
    ConsoleError,
    FormError,
    Viewer,
    field,
    form_error,
    in_thread,
    operator_only,
    parse_amount,
    parse_text,
    posted,
    render,
    service_error,
    services,
    tr,
    viewer,
)
from tokenmall.web.i18n import N_, format_datetime, format_money

__all__ = ["STATUS_LABELS", "router"]

router = APIRouter(include_in_schema=False)
PAGE: Final = 50
CSV_MAX_ROWS: Final = 10_000
STATUS_LABELS: Final = {
    "pending_payment": N_("Awaiting payment"),
    "paid": N_("Paid"),
    "delivered": N_("Delivered"),
    "settled": N_("Settled"),
    "refunded": N_("Refunded"),
    "cancelled": N_("Cancelled"),
    "expired": N_("Expired"),
    "failed": N_("Failed"),
}
MAX_MEMBER: Final = 64


def _orders(request: Request) -> OrderService:
    return services(request).orders


def _filters(request: Request, who: Viewer) -> dict[str, Any]:
    """The list's filters from the query string; a bad one is a FormError (shown, ignored)."""
    q = request.query_params
    status = q.get("status") or None
    if status is not None and status not in ORDER_STATUSES:
        raise FormError(N_("Unknown status."))
    member = (q.get("member") or "").strip() or None
    if member is not None and len(member) > MAX_MEMBER:
        raise FormError(N_("At most %(limit)s characters."), limit=MAX_MEMBER)
    bounds: dict[str, float | None] = {}
    for name, extra in (("from", 0), ("to", 1)):
        text = (q.get(name) or "").strip()
        if not text:
            bounds[name] = None
            continue
        try:
            day = dt.date.fromisoformat(text)
        except ValueError:
            raise FormError(N_("A date is written YYYY-MM-DD.")) from None
        day = day + dt.timedelta(days=extra) if day < dt.date.max else day
        bounds[name] = dt.datetime.combine(day, dt.time(0), tzinfo=who.zone).timestamp()
    return {
        "status": status,
        "member": member,
        "created_from": bounds["from"],
        "created_to": bounds["to"],
    }


def _cursor(request: Request) -> str | None:
    text = request.query_params.get("cursor") or None
    return text[:200] if text else None


@router.get("/console/{tenant}/orders")
def order_list(request: Request, tenant: str) -> Response:
    who = viewer(request, tenant)
    error = None
    try:
        filters = _filters(request, who)
    except FormError as exc:
        error, filters = form_error(request, exc), {}
    try:
        if who.operator:
            page: Any = _orders(request).list_orders(
                who.session.tenant_id, limit=PAGE, cursor=_cursor(request), **filters
            )
        else:
            filters.pop("member", None)
            page = _orders(request).merchants.list_orders(
                who.session.tenant_id,
                who.session.merchant_id or 0,
                limit=PAGE,
                cursor=_cursor(request),
                **filters,
            )
    except TokenmallError as exc:  # a cursor this list did not hand out
        error = service_error(request, exc)
        page = None
    return render(
        request,
        "orders.html",
        who,
        page=page,
        error=error,
        error_inline=True,  # shown in the results, which htmx swaps
        statuses=STATUS_LABELS,
        query=request.query_params,
    )


def _csv_rows(request: Request, who: Viewer, filters: dict[str, Any]) -> Iterator[str]:
    _ = tr
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            _(request, N_("Order")),
            _(request, N_("Member")),
            _(request, N_("Status")),
            _(request, N_("Total (CNY)")),
            _(request, N_("Refunded (CNY)")),
            _(request, N_("Created")),
            _(request, N_("Paid at")),
        ]
    )
    cursor: str | None = None
    written = 0
    while written < CSV_MAX_ROWS:
        page = _orders(request).list_orders(
            who.session.tenant_id, limit=200, cursor=cursor, **filters
        )
        for o in page.items:
            writer.writerow(
                [
                    o.ref,
                    _csv_safe(o.member),
                    tr(request, STATUS_LABELS.get(o.status, o.status)),
                    cny(o.total),
                    cny(o.refunded),
                    format_datetime(o.created_at, who.zone),
                    format_datetime(o.paid_at, who.zone),
                ]
            )
            written += 1
        yield out.getvalue()
        out.seek(0)
        out.truncate()
        cursor = page.next_cursor
        if cursor is None:
            return


def _csv_safe(text: str) -> str:
    """A cell a spreadsheet would run as a formula (=, +, -, @) starts with a quote instead."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


@router.get("/console/{tenant}/orders.csv")
def order_csv(request: Request, tenant: str) -> Response:
    who = viewer(request, tenant)
    operator_only(who)
    try:
        filters = _filters(request, who)
    except FormError as exc:
        raise ConsoleError(400, exc.message) from None
    rows = list(_csv_rows(request, who, filters))  # read now: errors answer before the body
    return Response(
        "\ufeff" + "".join(rows),  # a BOM: Excel opens UTF-8 Chinese text correctly
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="orders.csv"'},
    )


def _order_page(
    request: Request,
    who: Viewer,
    ref: str,
    *,
    error: str | None = None,
    notice: str | None = None,
    status: int = 200,
) -> Response:
    try:
        check_ref(ref, "order")
        if who.operator:
            order: Any = _orders(request).get_order(who.session.tenant_id, ref)
        else:
            order = _orders(request).merchants.get_order(
                who.session.tenant_id, who.session.merchant_id or 0, ref
            )
    except TokenmallError:
        raise ConsoleError(404, N_("No such order.")) from None
    return render(
        request,
        "order.html",
        who,
        order=order,
        error=error,
        notice=notice,
        statuses=STATUS_LABELS,
        refund_id=f"console-{secrets.token_hex(8)}",
        http_status=status,
    )


@router.get("/console/{tenant}/orders/{ref}")
def order_detail(request: Request, tenant: str, ref: str) -> Response:
    who = viewer(request, tenant)
    return _order_page(request, who, ref)


@router.post("/console/{tenant}/orders/{ref}/refund")
async def order_refund(request: Request, tenant: str, ref: str) -> Response:
    who = await in_thread(viewer, request, tenant)
    operator_only(who)
    form = await posted(request, who)
    try:
        amount = parse_amount(field(form, "amount"), required=False)
        reason = parse_text(field(form, "reason"), required=False, limit=200)
        refund_id = check_ref(field(form, "refund_id") or "-", "refund_id")
    except FormError as exc:
        return await in_thread(
            _order_page, request, who, ref, error=form_error(request, exc), status=400
        )
    except TokenmallError as exc:
        return await in_thread(
            _order_page, request, who, ref, error=service_error(request, exc), status=400
        )
    try:
        refund, _ = await in_thread(
            _orders(request).refund,
            who.session.tenant_id,
            who.session.tenant,
            ref,
            refund_id=refund_id,
            amount=amount,
            reason=reason,
        )
    except TokenmallError as exc:
        return await in_thread(
            _order_page, request, who, ref, error=service_error(request, exc), status=409
        )
    notice = tr(request, N_("Refunded %(amount)s."), amount=format_money(refund.amount))
    return await in_thread(_order_page, request, who, ref, notice=notice)


@router.post("/console/{tenant}/orders/{ref}/delivery")
async def order_delivery(request: Request, tenant: str, ref: str) -> Response:
    who = await in_thread(viewer, request, tenant)
    operator_only(who)
    await posted(request, who)
    try:
        await in_thread(_orders(request).confirm_delivery, who.session.tenant_id, ref)
    except TokenmallError as exc:
        return await in_thread(
            _order_page, request, who, ref, error=service_error(request, exc), status=409
        )
    return RedirectResponse(f"/console/{tenant}/orders/{ref}", status_code=303)


@router.post("/console/{tenant}/orders/{ref}/ship")
async def order_ship(request: Request, tenant: str, ref: str) -> Response:
    who = await in_thread(viewer, request, tenant)
    if who.operator or who.session.merchant_id is None:
        raise ConsoleError(403, N_("Only the merchant ships its lines."))
    form = await posted(request, who)
    try:
        await in_thread(
            _orders(request).merchants.ship,
            who.session.tenant_id,
            who.session.merchant_id,
            ref,
            carrier=field(form, "carrier"),
            tracking_no=field(form, "tracking_no"),
            actor=who.session.actor,
        )
    except TokenmallError as exc:
        return await in_thread(
            _order_page, request, who, ref, error=service_error(request, exc), status=400
        )
    return RedirectResponse(f"/console/{tenant}/orders/{ref}", status_code=303)
