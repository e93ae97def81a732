"""The member sells EP (R3) from the H5 pages, with a preview of exactly what will arrive.

Two steps, no script needed: ``GET /m/{mall}/sell?points=N`` shows what N points would pay
now (``reads.sale_preview``: the ledger's own rule on the current state, after the sell fee,
cut to the fen) and a confirmation form; posting it calls ``wallet.sell``, the call behind
``POST .../members/{member}/wallet/sell``, with the form's own idempotency key, so a double
tap sells once.  If the price moved between the preview and the tap, the ledger pays the
price of the moment and the page says what actually arrived.
"""

from __future__ import annotations

import re
import secrets
from decimal import Decimal
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tokenmall.errors import TokenmallError
from tokenmall.service import reads, wallet
from tokenmall.store.db import read_only
from tokenmall.web.base import (
    FormError,
    Viewer,
    field,
    form_error,
    in_thread,
    posted,
    render,
    service_error,
    services,
    tr,
)
from tokenmall.web.i18n import N_, format_money, format_points
from tokenmall.web.member import member_viewer

__all__ = ["parse_points", "router"]

router = APIRouter(include_in_schema=False)
_POINTS_RE: Final = re.compile(r"[0-9]{1,12}(\.[0-9]{1,8})?")
_KEY_RE: Final = re.compile(r"m-[0-9a-f]{16}")


def parse_points(text: str) -> Decimal:
    """EP as typed: digits with at most 8 places, above zero."""
    text = text.strip().replace(",", "")
    if not text:
        raise FormError(N_("Enter a number of points."))
    if not _POINTS_RE.fullmatch(text):
        raise FormError(N_("Points are a positive number with at most 8 decimal places."))
    points = Decimal(text)
    if points <= 0:
        raise FormError(N_("The number of points must be above zero."))
    return points


def _sell_page(
    request: Request,
    who: Viewer,
    *,
    typed: str = "",
    error: str | None = None,
    notice: str | None = None,
    http_status: int = 200,
) -> Response:
    tid, member = who.session.tenant_id, who.session.member or ""
    preview: Decimal | None = None
    points: Decimal | None = None
    with read_only(services(request).engine).connect() as conn:
        held = reads.holdings(conn, tid, member)
        if typed and error is None and notice is None:
            try:
                points = parse_points(typed)
                if points > held.points:
                    raise FormError(N_("You hold fewer points than that."))
                preview = reads.sale_preview(conn, tid, points, exchange=False)
            except FormError as exc:
                error, http_status, points = form_error(request, exc), 400, None
        fee = reads.tenant_params(conn, tid).sell_fee
    return render(
        request,
        "m_sell.html",
        who,
        held=held,
        typed=typed,
        points=points,
        preview=preview,
        fee_percent=f"{format_points(fee * 100)}%",
        key=f"m-{secrets.token_hex(8)}",
        error=error,
        notice=notice,
        http_status=http_status,
    )


@router.get("/m/{tenant}/sell")
def sell_form(request: Request, tenant: str) -> Response:
    who = member_viewer(request, tenant)
    typed = (request.query_params.get("points") or "")[:40]
    return _sell_page(request, who, typed=typed)


@router.post("/m/{tenant}/sell")
async def sell(request: Request, tenant: str) -> Response:
    who = await in_thread(member_viewer, request, tenant)
    form = await posted(request, who)
    member = who.session.member or ""
    try:
        points = parse_points(field(form, "points")[:40])
        key = field(form, "key")
        if not _KEY_RE.fullmatch(key):
            raise FormError(N_("The form has expired or did not come from this console."))
    except FormError as exc:
        return await in_thread(
            _sell_page, request, who, error=form_error(request, exc), http_status=400
        )
    try:
        done = await in_thread(
            wallet.sell, services(request).store.ledger, who.session.tenant_id, member, points, key
        )
    except TokenmallError as exc:
        return await in_thread(
            _sell_page, request, who, error=service_error(request, exc), http_status=409
        )
    paid = done.figures.get("payout", "0")
    notice = tr(
        request,
        N_("Sold %(points)s EP: %(amount)s arrived in your SP wallet."),
        points=format_points(points),
        amount=format_money(Decimal(paid)),
    )
    return await in_thread(_sell_page, request, who, notice=notice)
