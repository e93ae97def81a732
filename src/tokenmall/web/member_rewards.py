"""The member's "my rewards" page (``/m/{mall}/rewards``): what each marketing model paid
them (granted, taken back by refunds, net) and what is still frozen, reward by reward with the
time it becomes withdrawable.

It reads what the API's ``GET .../members/{member}/model-rewards`` reads
(:func:`tokenmall.service.marketing.member_totals`) and the member's own entries of
``GET .../rewards`` (:func:`~tokenmall.service.marketing.list_rewards`, filtered to them).  A
frozen reward can be spent at once; only withdrawing it waits (docs/MODELS.md).
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tokenmall.service import marketing
from tokenmall.store.db import read_only
from tokenmall.web.base import render, services
from tokenmall.web.marketing import MODEL_NAMES
from tokenmall.web.member import member_viewer

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
RECENT: Final = 100


@router.get("/m/{tenant}/rewards")
def my_rewards(request: Request, tenant: str) -> Response:
    who = member_viewer(request, tenant)
    member = who.session.member or ""
    tid = who.session.tenant_id
    now = time.time()
    cursor = (request.query_params.get("cursor") or "")[:200] or None
    with read_only(services(request).engine).connect() as conn:
        totals = marketing.member_totals(conn, tid, member, now)
        entries = marketing.list_rewards(conn, tid, member=member, limit=RECENT, cursor=cursor)
    frozen_entries = [
        e for e in entries.items if e.withdrawable_at is not None and e.withdrawable_at > now
    ]
    return render(
        request,
        "m_rewards.html",
        who,
        totals=totals,
        net=sum((t.net for t in totals), Decimal(0)),
        frozen=sum((t.frozen for t in totals), Decimal(0)),
        entries=entries,
        frozen_entries=frozen_entries,
        names=MODEL_NAMES,
    )
