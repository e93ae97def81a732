"""Withdrawal review: the queue (by status and member, oldest or newest first, fifty a page
on the list's own cursor, as ``GET /v1/tenants/{tenant}/withdrawals``), one withdrawal with
the member's history beside it, and approve (then pay out) or reject with a reason.

The same calls as ``POST /v1/tenants/{tenant}/withdrawals/{id}/approve`` and ``.../reject``:
approving records the review and sends the payout through the tenant's provider; rejecting
returns the whole amount, fee included, to the member's wallet.  Operators only.
"""

from __future__ import annotations

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
from tokenmall.web.member_sp import HISTORY_LABELS

__all__ = ["WITHDRAWAL_LABELS", "router"]

router = APIRouter(include_in_schema=False)
WITHDRAWAL_LABELS: Final = {
    "requested": N_("Awaiting review"),
    "approved": N_("Approved, paying out"),
    "rejected": N_("Rejected"),
    "paid": N_("Paid out"),
    "failed": N_("Payout failed"),
    "cancelled": N_("Cancelled"),
}
HISTORY: Final = 20
PAGE: Final = 50
MAX_NOTE: Final = 200
MAX_MEMBER: Final = 64
MAX_CURSOR: Final = 200


@router.get("/console/{tenant}/withdrawals")
def withdrawal_list(request: Request, tenant: str) -> Response:
    who = viewer(request, tenant)
    operator_only(who)
    q = request.query_params
    status = q.get("status", "requested")
    if status not in WITHDRAWAL_LABELS and status != "all":
        status = "requested"
    newest = q.get("order") == "newest"
    member = (q.get("member") or "").strip()[: MAX_MEMBER + 1]
    cursor = (q.get("cursor") or "")[:MAX_CURSOR] or None
    error, page = None, None
    with read_only(services(request).engine).connect() as conn:
        try:
            if len(member) > MAX_MEMBER:
                raise FormError(N_("At most %(limit)s characters."), limit=MAX_MEMBER)
            page = wallet.list_withdrawals(
                conn,
                who.session.tenant_id,
                member=member or None,
                status=None if status == "all" else status,
                limit=PAGE,
                cursor=cursor,
                newest_first=newest,
            )
        except FormError as exc:
            error = form_error(request, exc)
        except TokenmallError as exc:
            error = service_error(request, exc)
    return render(
        request,
        "withdrawals.html",
        who,
        page=page,
        status=status,
        member=member,
        order="newest" if newest else "oldest",
        paged=cursor is not None,
        labels=WITHDRAWAL_LABELS,
        error=error,
        http_status=200 if error is None else 400,
    )


def _withdrawal_page(
    request: Request,
    who: Viewer,
    wd_id: str,
    *,
    error: str | None = None,
    notice: str | None = None,
    status: int = 200,
) -> Response:
    tid = who.session.tenant_id
    with read_only(services(request).engine).connect() as conn:
        try:
            wd = wallet.get_withdrawal(conn, tid, wd_id[:40])
        except TokenmallError:
            raise ConsoleError(404, N_("No such withdrawal.")) from None
        balance = wallet.balance(conn, tid, wd.member)
        earlier = wallet.list_withdrawals(
            conn, tid, member=wd.member, status=None, limit=HISTORY, cursor=None, newest_first=True
        )
        history = reads.member_history(conn, tid, wd.member, asset="SP", limit=HISTORY, cursor=None)
    return render(
        request,
        "withdrawal.html",
        who,
        wd=wd,
        balance=balance,
        earlier=earlier.items,
        more_earlier=earlier.next_cursor is not None,
        history=history.items,
        labels=WITHDRAWAL_LABELS,
        moves=HISTORY_LABELS,
        error=error,
        notice=notice,
        http_status=status,
    )


@router.get("/console/{tenant}/withdrawals/{wd_id}")
def withdrawal_detail(request: Request, tenant: str, wd_id: str) -> Response:
    who = viewer(request, tenant)
    operator_only(who)
    return _withdrawal_page(request, who, wd_id)


def _approve(request: Request, who: Viewer, wd_id: str, note: str | None) -> None:
    svc = services(request)
    wallet.approve_withdrawal(
        svc.store.ledger, who.session.tenant_id, wd_id, reviewer=who.session.actor, note=note
    )
    wallet.send_payout(svc.store, svc.payouts, who.session.tenant_id, who.session.tenant, wd_id)


def _reject(request: Request, who: Viewer, wd_id: str, note: str) -> None:
    wallet.reject_withdrawal(
        services(request).store.ledger,
        who.session.tenant_id,
        wd_id,
        reviewer=who.session.actor,
        note=note,
    )


@router.post("/console/{tenant}/withdrawals/{wd_id}/{decision}")
async def withdrawal_review(request: Request, tenant: str, wd_id: str, decision: str) -> Response:
    who = await in_thread(viewer, request, tenant)
    operator_only(who)
    if decision not in ("approve", "reject"):
        raise ConsoleError(404, N_("No such page."))
    form = await posted(request, who)
    wd_id = wd_id[:40]
    try:
        note = parse_text(field(form, "note"), required=decision == "reject", limit=MAX_NOTE)
    except FormError as exc:
        return await in_thread(
            _withdrawal_page, request, who, wd_id, error=form_error(request, exc), status=400
        )
    try:
        if decision == "approve":
            await in_thread(_approve, request, who, wd_id, note)
        else:
            await in_thread(_reject, request, who, wd_id, note or "")
    except TokenmallError as exc:
        return await in_thread(
            _withdrawal_page, request, who, wd_id, error=service_error(request, exc), status=409
        )
    notice = tr(request, N_("Approved.") if decision == "approve" else N_("Rejected."))
    return await in_thread(_withdrawal_page, request, who, wd_id, notice=notice)
