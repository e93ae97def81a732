"""The rest of the operator's desk: members (search, holdings, referrer and referrals), the
catalog with its stock, the tenant's parameters with their audit trail, the day close (status
and a manual close, as ``POST .../day-close``) and the refund and payments desk."""

from __future__ import annotations

import datetime as dt
import re
import time
from decimal import Decimal
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from tokenmall.errors import TokenmallError
from tokenmall.service import catalog, console, dayclose, reads, tenants
from tokenmall.service.members import check_member_code, get_profile, list_profiles
from tokenmall.service.orders.aftersales import Viewer as DeskViewer
from tokenmall.store.db import read_only
from tokenmall.web.base import (
    ConsoleError,
    FormError,
    field,
    form_error,
    in_thread,
    operator_only,
    parse_text,
    posted,
    render,
    service_error,
    services,
    tr,
    viewer,
)
from tokenmall.web.i18n import N_
from tokenmall.web.member_points import MOVE_LABELS

__all__ = ["parse_param", "router"]

router = APIRouter(include_in_schema=False)
PAGE: Final = 50


def _cursor(request: Request) -> str | None:
    return (request.query_params.get("cursor") or "")[:200] or None


@router.get("/console/{tenant}/members")
def member_list(request: Request, tenant: str) -> Response:
    who = viewer(request, tenant)
    operator_only(who)
    q = (request.query_params.get("q") or "").strip()
    error = None
    if q:
        try:
            check_member_code(q)
            with read_only(services(request).engine).connect() as conn:
                get_profile(conn, who.session.tenant_id, q)
            return RedirectResponse(f"/console/{tenant}/members/{q}", status_code=303)
        except TokenmallError:
            error = tr(request, N_("No member %(code)s."), code=q[:64])
    rows: list[tuple[Any, Any]] = []
    page = None
    with read_only(services(request).engine).connect() as conn:
        try:
            page = list_profiles(conn, who.session.tenant_id, limit=PAGE, cursor=_cursor(request))
            rows = [(p, reads.holdings(conn, who.session.tenant_id, p.code)) for p in page.items]
        except TokenmallError as exc:
            error = service_error(request, exc)
    return render(request, "members.html", who, rows=rows, page=page, q=q, error=error)


@router.get("/console/{tenant}/members/{code}")
def member_detail(request: Request, tenant: str, code: str) -> Response:
    who = viewer(request, tenant)
    operator_only(who)
    tid = who.session.tenant_id
    with read_only(services(request).engine).connect() as conn:
        try:
            profile = get_profile(conn, tid, code[:64])
        except TokenmallError:
            raise ConsoleError(404, N_("No such member.")) from None
        held = reads.holdings(conn, tid, profile.code)
        brought = console.referrals(conn, tid, profile.code, limit=100)
        rewards = reads.reward_history(conn, tid, profile.code, limit=20, cursor=None)
        cursor = _cursor(request)
        try:
            points = reads.points_history(conn, tid, profile.code, limit=PAGE, cursor=cursor)
        except TokenmallError:
            raise ConsoleError(400, N_("This page of the history does not exist.")) from None
    return render(
        request,
        "member.html",
        who,
        profile=profile,
        held=held,
        referrals=brought,
        rewards=rewards.items,
        points=points,
        paged=cursor is not None,
        moves=MOVE_LABELS,
    )


@router.get("/console/{tenant}/products")
def product_list(request: Request, tenant: str) -> Response:
    who = viewer(request, tenant)
    error = None
    page = None
    with read_only(services(request).engine).connect() as conn:
        try:
            page = catalog.list_products(
                conn,
                who.session.tenant_id,
                limit=PAGE,
                cursor=_cursor(request),
                merchant_id=None if who.operator else who.session.merchant_id,
            )
        except TokenmallError as exc:
            error = service_error(request, exc)
    return render(request, "products.html", who, page=page, error=error)


MAX_PARAM: Final = 40  # the API's limit on a parameter's value
# a number typed into the parameters form: plain digits, no sign, no exponent, at most 12
# digits before the point and 8 after.  The page's limit only (the API takes any decimal
# string); the service then checks each parameter's range and the rules between them.
_PARAM_NUMBER: Final = re.compile(r"[0-9]{1,12}(\.[0-9]{1,8})?")


def parse_param(name: str, typed: str, current: object) -> str:
    """``typed`` for the parameter ``name`` if it is written as the page accepts it: a plain
    number for a numeric parameter, plain numbers separated by commas for a list."""
    if isinstance(current, Decimal):
        if not _PARAM_NUMBER.fullmatch(typed):
            raise FormError(
                N_("%(name)s: a number with at most 12 digits before the point and 8 after."),
                name=name,
            )
    elif name == "level_thresholds" and not all(
        _PARAM_NUMBER.fullmatch(part.strip()) for part in typed.split(",")
    ):
        raise FormError(N_("%(name)s: numbers separated by commas."), name=name)
    return typed


def _params_page(
    request: Request,
    tenant: str,
    *,
    error: str | None = None,
    notice: str | None = None,
    http_status: int = 200,
) -> Response:
    who = viewer(request, tenant)
    operator_only(who)
    with read_only(services(request).engine).connect() as conn:
        params = reads.tenant_params(conn, who.session.tenant_id)
        changes = tenants.list_param_changes(
            conn, who.session.tenant_id, limit=PAGE, cursor=_cursor(request)
        )
    return render(
        request,
        "params.html",
        who,
        params=_fields(params),
        changes=changes,
        error=error,
        notice=notice,
        http_status=http_status,
    )


@router.get("/console/{tenant}/params")
def params_page(request: Request, tenant: str) -> Response:
    return _params_page(request, tenant)


def _change_params(request: Request, who: Any, changes: dict[str, str]) -> None:
    with services(request).store.tenant_tx(who.session.tenant_id) as tx:
        tenants.change_params(tx, changes, actor=who.session.actor)


@router.post("/console/{tenant}/params")
async def change_params(request: Request, tenant: str) -> Response:
    """The fields whose value differs from the current one, as one change (the API's
    ``POST .../param-changes``): validated together, recorded with who and when."""
    who = await in_thread(viewer, request, tenant)
    operator_only(who)
    form = await posted(request, who)
    with read_only(services(request).engine).connect() as conn:
        current = dict(_fields(reads.tenant_params(conn, who.session.tenant_id)))
    changes: dict[str, str] = {}
    try:
        for name, value in current.items():
            typed = parse_text(field(form, f"p:{name}"), required=False, limit=MAX_PARAM)
            if typed is not None and typed != str(value):
                changes[name] = parse_param(name, typed, value)
    except FormError as exc:
        return await in_thread(
            _params_page, request, tenant, error=form_error(request, exc), http_status=400
        )
    if not changes:
        return await in_thread(
            _params_page, request, tenant, notice=tr(request, N_("Nothing changed."))
        )
    try:
        await in_thread(_change_params, request, who, changes)
    except TokenmallError as exc:
        return await in_thread(
            _params_page, request, tenant, error=service_error(request, exc), http_status=400
        )
    notice = tr(request, N_("Changed: %(names)s."), names=", ".join(sorted(changes)))
    return await in_thread(_params_page, request, tenant, notice=notice)


def _fields(params: Any) -> list[tuple[str, Any]]:
    return sorted((name, getattr(params, name)) for name in params.__dataclass_fields__)


def _day_page(
    request: Request, tenant: str, *, error: str | None = None, notice: str | None = None
) -> Response:
    who = viewer(request, tenant)
    operator_only(who)
    now = time.time()
    with read_only(services(request).engine).connect() as conn:
        clock = dayclose.tenant_clock(conn, who.session.tenant_id)
        status = dayclose.day_status(conn, clock, now)
    return render(
        request,
        "dayclose.html",
        who,
        status=status,
        next_close=status.next_close,
        error=error,
        notice=notice,
    )


@router.get("/console/{tenant}/day-close")
def day_close_page(request: Request, tenant: str) -> Response:
    return _day_page(request, tenant)


def _close(request: Request, tenant_id: int, day: dt.date) -> dayclose.CloseOutcome:
    with read_only(services(request).engine).connect() as conn:
        clock = dayclose.tenant_clock(conn, tenant_id)
    return dayclose.close_requested(services(request).store, clock, day, time.time())


@router.post("/console/{tenant}/day-close")
async def day_close(request: Request, tenant: str) -> Response:
    who = await in_thread(viewer, request, tenant)
    operator_only(who)
    form = await posted(request, who)
    try:
        day = dt.date.fromisoformat(field(form, "date").strip())
    except ValueError:
        return await in_thread(
            _day_page, request, tenant, error=tr(request, N_("A date is written YYYY-MM-DD."))
        )
    try:
        done = await in_thread(_close, request, who.session.tenant_id, day)
    except TokenmallError as exc:
        return await in_thread(_day_page, request, tenant, error=service_error(request, exc))
    notice = tr(
        request,
        N_("%(day)s was already closed: nothing paid.")
        if done.replayed
        else N_("%(day)s closed: %(paid)s paid to %(recipients)s members."),
        day=done.day.isoformat(),
        paid=done.paid,
        recipients=done.recipients,
    )
    return await in_thread(_day_page, request, tenant, notice=notice)


@router.get("/console/{tenant}/desk")
def desk(request: Request, tenant: str) -> Response:
    return _desk(request, tenant)


def _desk(
    request: Request,
    tenant: str,
    *,
    error: str | None = None,
    notice: str | None = None,
    http_status: int = 200,
) -> Response:
    """What needs a hand: refunds whose CNY did not go back through the provider, payments
    that came for an order that could not take them, and after-sales requests waiting."""
    who = viewer(request, tenant)
    operator_only(who)
    orders = services(request).orders
    tid = who.session.tenant_id
    stuck_refunds = [
        r
        for status in ("failed", "manual")
        for r in orders.list_all_refunds(tid, limit=PAGE, cursor=None, provider_status=status).items
    ]
    stray_payments = [
        p
        for status in ("failed", "manual")
        for p in orders.list_payments(
            tid, limit=PAGE, cursor=None, status="voided", refund_status=status
        ).items
    ]
    requests = orders.aftersales.list(
        tid, DeskViewer(), limit=PAGE, cursor=None, status="requested"
    ).items
    return render(
        request,
        "desk.html",
        who,
        refunds=stuck_refunds,
        payments=stray_payments,
        requests=requests,
        error=error,
        notice=notice,
        http_status=http_status,
    )


@router.post("/console/{tenant}/desk/{ref}/{decision}")
async def aftersales_decision(request: Request, tenant: str, ref: str, decision: str) -> Response:
    """Accept (the order is refunded by the request's amount) or refuse with a reason: the
    API's ``POST .../aftersales/{id}/accept`` and ``.../refuse``."""
    who = await in_thread(viewer, request, tenant)
    operator_only(who)
    if decision not in ("accept", "refuse"):
        raise ConsoleError(404, N_("No such page."))
    form = await posted(request, who)
    desk_ = services(request).orders.aftersales
    ref = ref[:64]
    try:
        if decision == "accept":
            await in_thread(
                desk_.accept,
                who.session.tenant_id,
                who.session.tenant,
                ref,
                viewer=DeskViewer(),
                actor=who.session.actor,
            )
        else:
            reason = parse_text(field(form, "reason"), required=True, limit=200) or ""
            await in_thread(
                desk_.refuse,
                who.session.tenant_id,
                ref,
                viewer=DeskViewer(),
                actor=who.session.actor,
                reason=reason,
            )
    except FormError as exc:
        return await in_thread(
            _desk, request, tenant, error=form_error(request, exc), http_status=400
        )
    except TokenmallError as exc:
        return await in_thread(
            _desk, request, tenant, error=service_error(request, exc), http_status=409
        )
    notice = tr(request, N_("Accepted and refunded.") if decision == "accept" else N_("Refused."))
    return await in_thread(_desk, request, tenant, notice=notice)
