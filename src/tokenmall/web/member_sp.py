"""The member's SP wallet (balance and paged history) and the conversions between EP and SP,
each with a preview of exactly what will arrive.

``GET /m/{mall}/wallet`` reads ``wallet.balance`` and ``reads.member_history`` (the calls
behind ``GET .../members/{member}/wallet`` and ``.../wallet/history``), twenty movements a
page, following the history's own cursor.

``GET /m/{mall}/exchange?dir=ep&amount=N`` previews exchanging N EP for SP (R5,
``reads.sale_preview`` with the exchange fee); ``dir=sp`` previews spending N SP on treasury
points (R6, ``reads.buy_preview``).  Both are the ledger's own rules on the current state.
Posting the confirmation calls ``wallet.exchange`` or ``wallet.buy_points`` (the calls behind
``POST .../wallet/exchange`` and ``.../wallet/buy-points``) with the form's idempotency key,
so a double tap converts once.
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
    ConsoleError,
    FormError,
    Viewer,
    field,
    form_error,
    in_thread,
    parse_amount,
    posted,
    render,
    service_error,
    services,
    tr,
)
from tokenmall.web.i18n import N_, format_money, format_points
from tokenmall.web.member import member_viewer
from tokenmall.web.member_wallet import parse_points

__all__ = ["HISTORY_LABELS", "router"]

router = APIRouter(include_in_schema=False)
HISTORY_PAGE: Final = 20
MAX_CURSOR: Final = 200
KEY_RE: Final = re.compile(r"m-[0-9a-f]{16}")
HISTORY_LABELS: Final = {
    "dividend": N_("Dividend"),
    "sale_payout": N_("Points sold"),
    "exit_payout": N_("Forced exit payout"),
    "exchange": N_("Points exchanged"),
    "refund": N_("Refund"),
    "withdrawal": N_("Withdrawal"),
    "withdrawal_returned": N_("Withdrawal returned"),
    "order_payment": N_("Order payment"),
    "bought_points": N_("Points bought"),
    "sp_in": N_("Received"),
    "sp_out": N_("Spent"),
    "other": N_("Other"),
}
DIRECTIONS: Final = ("ep", "sp")  # ep: EP -> SP (exchange, R5); sp: SP -> EP (buy, R6)


@router.get("/m/{tenant}/wallet")
def sp_wallet(request: Request, tenant: str) -> Response:
    who = member_viewer(request, tenant)
    tid, member = who.session.tenant_id, who.session.member or ""
    cursor = request.query_params.get("cursor") or None
    if cursor is not None and len(cursor) > MAX_CURSOR:
        raise ConsoleError(400, N_("This page of the history does not exist."))
    with read_only(services(request).engine).connect() as conn:
        held = wallet.balance(conn, tid, member)
        try:
            found = reads.member_history(
                conn, tid, member, asset="SP", limit=HISTORY_PAGE, cursor=cursor
            )
        except TokenmallError:
            raise ConsoleError(400, N_("This page of the history does not exist.")) from None
    return render(
        request,
        "m_wallet.html",
        who,
        held=held,
        entries=found.items,
        next_cursor=found.next_cursor,
        labels=HISTORY_LABELS,
    )


def _parse(direction: str, typed: str) -> Decimal:
    if direction == "ep":
        return parse_points(typed)
    amount = parse_amount(typed, required=True)
    assert amount is not None
    return amount


def _convert_page(
    request: Request,
    who: Viewer,
    *,
    direction: str,
    typed: str = "",
    error: str | None = None,
    notice: str | None = None,
    http_status: int = 200,
) -> Response:
    tid, member = who.session.tenant_id, who.session.member or ""
    amount: Decimal | None = None
    preview: Decimal | None = None
    with read_only(services(request).engine).connect() as conn:
        held = wallet.balance(conn, tid, member)
        if typed and error is None and notice is None:
            try:
                amount = _parse(direction, typed)
                if direction == "ep":
                    if amount > held.points:
                        raise FormError(N_("You hold fewer points than that."))
                    preview = reads.sale_preview(conn, tid, amount, exchange=True)
                else:
                    if amount > held.stable:
                        raise FormError(N_("Your SP wallet holds less than that."))
                    preview = reads.buy_preview(conn, tid, amount)
                if preview <= 0:
                    raise FormError(N_("That is too little to receive anything."))
            except FormError as exc:
                error, http_status, amount, preview = form_error(request, exc), 400, None, None
        params = reads.tenant_params(conn, tid)
        price = reads.economy(conn, tid).price
    return render(
        request,
        "m_exchange.html",
        who,
        held=held,
        direction=direction,
        typed=typed,
        amount=amount,
        preview=preview,
        price=price,
        fee_percent=f"{format_points(params.exchange_fee * 100)}%",
        key=f"m-{secrets.token_hex(8)}",
        error=error,
        notice=notice,
        http_status=http_status,
    )


def _direction(raw: str | None) -> str:
    return raw if raw in DIRECTIONS else "ep"


@router.get("/m/{tenant}/exchange")
def exchange_form(request: Request, tenant: str) -> Response:
    who = member_viewer(request, tenant)
    typed = (request.query_params.get("amount") or "")[:40]
    direction = _direction(request.query_params.get("dir"))
    return _convert_page(request, who, direction=direction, typed=typed)


@router.post("/m/{tenant}/exchange")
async def exchange(request: Request, tenant: str) -> Response:
    who = await in_thread(member_viewer, request, tenant)
    form = await posted(request, who)
    member = who.session.member or ""
    direction = _direction(field(form, "dir"))
    try:
        amount = _parse(direction, field(form, "amount")[:40])
        key = field(form, "key")
        if not KEY_RE.fullmatch(key):
            raise FormError(N_("The form has expired or did not come from this console."))
    except FormError as exc:
        return await in_thread(
            _convert_page,
            request,
            who,
            direction=direction,
            error=form_error(request, exc),
            http_status=400,
        )
    ledger = services(request).store.ledger
    tid = who.session.tenant_id
    try:
        if direction == "ep":
            done = await in_thread(wallet.exchange, ledger, tid, member, amount, key)
        else:
            done = await in_thread(wallet.buy_points, ledger, tid, member, amount, key)
    except TokenmallError as exc:
        return await in_thread(
            _convert_page,
            request,
            who,
            direction=direction,
            error=service_error(request, exc),
            http_status=409,
        )
    if direction == "ep":
        notice = tr(
            request,
            N_("Exchanged %(points)s EP: %(amount)s arrived in your SP wallet."),
            points=format_points(amount),
            amount=format_money(Decimal(done.figures.get("stable", "0"))),
        )
    else:
        notice = tr(
            request,
            N_("Spent %(amount)s SP: %(points)s EP arrived."),
            amount=format_money(amount),
            points=format_points(Decimal(done.figures.get("points", "0"))),
        )
    return await in_thread(_convert_page, request, who, direction=direction, notice=notice)
