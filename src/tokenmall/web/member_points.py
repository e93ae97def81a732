"""The member's EP history (``/m/{mall}/points``): every movement of their points, newest first,
twenty a page, each named by what it was and shown with the price the ledger stood at when it
happened.

It reads ``reads.points_history``, the call behind ``GET .../members/{member}/points/history``
(the member's own ledger transfers of EP, classified as the wallet's history is, with the
price each transaction began and ended at).  The price shown is the one the movement was
valued at: what the previous transaction left.  The tenant's very first transaction has none
on record (``-``).  Dividends are paid in SP and so appear in the SP wallet, not here.
"""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tokenmall.errors import TokenmallError
from tokenmall.service import reads
from tokenmall.store.db import read_only
from tokenmall.web.base import ConsoleError, render, services
from tokenmall.web.i18n import N_
from tokenmall.web.member import member_viewer
from tokenmall.web.member_sp import HISTORY_LABELS

__all__ = ["MOVE_LABELS", "POINTS_LABELS", "router"]

router = APIRouter(include_in_schema=False)
PAGE: Final = 20
MAX_CURSOR: Final = 200
# what each EP category of ``reads._classify`` means to the member
POINTS_LABELS: Final = {
    "purchase_points": N_("Points for a purchase"),
    "referral_points": N_("Points for a referral"),
    "bought_points": N_("Points bought"),
    "exchanged_points": N_("Exchanged for SP"),
    "sold_points": N_("Sold to the pool"),
    "redeemed_points": N_("Paid with points"),
    "refund_clawback": N_("Taken back by a refund"),
    "debt_offset": N_("Set off against a refund debt"),
    "forced_exit": N_("Forced exit"),
    "points_in": N_("Points received"),
    "points_out": N_("Points given"),
    "other": N_("Other"),
}
# every category of a member's history, EP and SP (the console's member and withdrawal pages)
MOVE_LABELS: Final = {**HISTORY_LABELS, **POINTS_LABELS}


@router.get("/m/{tenant}/points")
def points_history(request: Request, tenant: str) -> Response:
    who = member_viewer(request, tenant)
    tid, member = who.session.tenant_id, who.session.member or ""
    cursor = request.query_params.get("cursor") or None
    if cursor is not None and len(cursor) > MAX_CURSOR:
        raise ConsoleError(400, N_("This page of the history does not exist."))
    with read_only(services(request).engine).connect() as conn:
        held = reads.holdings(conn, tid, member)
        try:
            found = reads.points_history(conn, tid, member, limit=PAGE, cursor=cursor)
        except TokenmallError:
            raise ConsoleError(400, N_("This page of the history does not exist.")) from None
    return render(
        request,
        "m_points.html",
        who,
        held=held,
        moves=found.items,
        next_cursor=found.next_cursor,
        paged=cursor is not None,
        labels=POINTS_LABELS,
    )
