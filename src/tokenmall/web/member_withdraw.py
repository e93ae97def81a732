"""The member's withdrawals: ask for one, see them all with their states (newest first, twenty
a page, ``?cursor=`` for older ones: ``GET .../members/{member}/withdrawals?order=newest``),
take back one still awaiting review.

The form shows the tenant's minimum and fee rate, and a preview of the fee and what reaches the
account (``wallet.withdrawal_fee``, the rule the request applies).  Confirming calls
``wallet.request_withdrawal`` (behind ``POST .../members/{member}/withdrawals``) with the
form's idempotency key: a double tap finds the first request.  Cancelling calls
``wallet.cancel_withdrawal`` as the member (``POST .../withdrawals/{id}/cancel`` with a member
token): another member's withdrawal is absent (404), a reviewed one is refused.
"""

from __future__ import annotations

import re
import secrets
from decimal import Decimal
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tokenmall.errors import NotFound, TokenmallError
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
from tokenmall.web.member_sp import KEY_RE
from tokenmall.web.wallet import WITHDRAWAL_LABELS

__all__ = ["parse_account", "router"]

router = APIRouter(include_in_schema=False)
LIST_PAGE: Final = 20
MAX_CURSOR: Final = 200
# a payee handle (an openid, an account number, an e-mail): what the payout providers take
_ACCOUNT_RE: Final = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
_REF_RE: Final = re.compile(r"wd_[0-9a-f]{29}")


def parse_account(text: str) -> str:
    text = text.strip()
    if not text:
        raise FormError(N_("Enter the account to pay."))
    if not _ACCOUNT_RE.fullmatch(text):
        raise FormError(N_("An account is at most 64 letters, digits and the characters _ - . @"))
    return text


def _page(
    request: Request,
    who: Viewer,
    *,
    typed: str = "",
    account: str = "",
    error: str | None = None,
    notice: str | None = None,
    http_status: int = 200,
    cursor: str | None = None,
) -> Response:
    tid, member = who.session.tenant_id, who.session.member or ""
    amount: Decimal | None = None
    fee: Decimal | None = None
    with read_only(services(request).engine).connect() as conn:
        held = wallet.balance(conn, tid, member)
        params = reads.tenant_params(conn, tid)
        if typed and error is None and notice is None:
            try:
                amount = parse_amount(typed, required=True)
                assert amount is not None
                parse_account(account)
                if amount < params.withdraw_min:
                    raise FormError(
                        N_("The smallest withdrawal is %(min)s."),
                        min=format_money(params.withdraw_min),
                    )
                if amount > held.stable:
                    raise FormError(N_("Your SP wallet holds less than that."))
                fee = wallet.withdrawal_fee(amount, params.withdraw_fee_rate)
                if fee >= amount:
                    raise FormError(N_("The fee would take the whole amount."))
            except FormError as exc:
                error, http_status, amount, fee = form_error(request, exc), 400, None, None
        try:
            found = wallet.list_withdrawals(
                conn, tid, member=member, limit=LIST_PAGE, cursor=cursor, newest_first=True
            )
        except TokenmallError:
            raise ConsoleError(400, N_("This page of the list does not exist.")) from None
    return render(
        request,
        "m_withdrawals.html",
        who,
        held=held,
        minimum=params.withdraw_min,
        fee_percent=f"{format_points(params.withdraw_fee_rate * 100)}%",
        typed=typed,
        account=account,
        amount=amount,
        fee=fee,
        withdrawals=found.items,  # newest first on a phone, older ones a page further
        next_cursor=found.next_cursor,
        paged=cursor is not None,
        labels=WITHDRAWAL_LABELS,
        key=f"m-{secrets.token_hex(8)}",
        error=error,
        notice=notice,
        http_status=http_status,
    )


@router.get("/m/{tenant}/withdrawals")
def withdrawals(request: Request, tenant: str) -> Response:
    who = member_viewer(request, tenant)
    typed = (request.query_params.get("amount") or "")[:40]
    account = (request.query_params.get("account") or "")[:100]
    cursor = request.query_params.get("cursor") or None
    if cursor is not None and len(cursor) > MAX_CURSOR:
        raise ConsoleError(400, N_("This page of the list does not exist."))
    return _page(request, who, typed=typed, account=account, cursor=cursor)


@router.post("/m/{tenant}/withdrawals")
async def request_withdrawal(request: Request, tenant: str) -> Response:
    who = await in_thread(member_viewer, request, tenant)
    form = await posted(request, who)
    try:
        amount = parse_amount(field(form, "amount")[:40], required=True)
        assert amount is not None
        account = parse_account(field(form, "account")[:100])
        key = field(form, "key")
        if not KEY_RE.fullmatch(key):
            raise FormError(N_("The form has expired or did not come from this console."))
    except FormError as exc:
        return await in_thread(_page, request, who, error=form_error(request, exc), http_status=400)
    try:
        wd, _ = await in_thread(
            wallet.request_withdrawal,
            services(request).store.ledger,
            who.session.tenant_id,
            who.session.member or "",
            amount=amount,
            account=account,
            key=key,
        )
    except TokenmallError as exc:
        return await in_thread(
            _page, request, who, error=service_error(request, exc), http_status=409
        )
    notice = tr(
        request,
        N_("Withdrawal of %(amount)s requested: %(net)s will reach %(account)s once approved."),
        amount=format_money(wd.amount),
        net=format_money(wd.net),
        account=wd.account,
    )
    return await in_thread(_page, request, who, notice=notice)


@router.post("/m/{tenant}/withdrawals/{ref}/cancel")
async def cancel_withdrawal(request: Request, tenant: str, ref: str) -> Response:
    who = await in_thread(member_viewer, request, tenant)
    await posted(request, who)
    if not _REF_RE.fullmatch(ref):
        raise ConsoleError(404, N_("No such page."))
    try:
        wd = await in_thread(
            wallet.cancel_withdrawal,
            services(request).store.ledger,
            who.session.tenant_id,
            ref,
            member=who.session.member or "",
            actor=who.session.actor,
        )
    except NotFound:
        raise ConsoleError(404, N_("No such page.")) from None
    except TokenmallError as exc:
        return await in_thread(
            _page, request, who, error=service_error(request, exc), http_status=409
        )
    notice = tr(
        request,
        N_("Withdrawal cancelled: %(amount)s is back in your SP wallet."),
        amount=format_money(wd.amount),
    )
    return await in_thread(_page, request, who, notice=notice)
