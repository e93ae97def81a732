"""The member's orders (list and detail), referral link with its QR code, and the top-N board.

Orders read ``OrderService.list_orders`` / ``get_order`` (the calls behind ``GET
.../orders?member=`` and ``GET .../orders/{ref}`` with a member token); another member's order
is answered as absent (404), as the API does.

The referral link is the mall's join page, ``/m/{mall}/join?invite=CODE``, which anyone may
open: it names the mall and the invite code to give when signing up in the mall's app (the
sign-up itself is the integrator's, ``POST .../members`` with ``invite_code``).  Its QR code is
drawn here by segno as SVG, embedded as a ``data:`` image: nothing leaves the server.

The board reads ``reads.board`` (behind ``GET .../board``): other members appear by display
name only, the member's own line is marked.
"""

from __future__ import annotations

from typing import Final

import segno
from fastapi import APIRouter, Request
from fastapi.responses import Response

from tokenmall.errors import NotFound, TokenmallError
from tokenmall.service import reads
from tokenmall.service.members import get_profile
from tokenmall.service.orders.models import check_ref
from tokenmall.service.tenants import get_tenant
from tokenmall.store.db import read_only
from tokenmall.web.base import ConsoleError, render, services
from tokenmall.web.i18n import N_
from tokenmall.web.member import member_viewer
from tokenmall.web.orders import STATUS_LABELS

__all__ = ["qr_data_uri", "referral_link", "router"]

router = APIRouter(include_in_schema=False)
ORDERS_PAGE: Final = 20
BOARD_MAX: Final = 100
MAX_CURSOR: Final = 200
MAX_INVITE: Final = 16


def referral_link(base_url: str, tenant: str, invite_code: str) -> str:
    """The link a member shares: the mall's join page with their invite code."""
    return f"{base_url.rstrip('/')}/m/{tenant}/join?invite={invite_code}"


def qr_data_uri(link: str) -> str:
    """The QR code of ``link`` as an SVG ``data:`` URI (error correction M, 4 px modules)."""
    return str(segno.make(link, error="m").svg_data_uri(scale=4, border=2))


@router.get("/m/{tenant}/orders")
def member_orders(request: Request, tenant: str) -> Response:
    who = member_viewer(request, tenant)
    cursor = request.query_params.get("cursor") or None
    if cursor is not None and len(cursor) > MAX_CURSOR:
        raise ConsoleError(400, N_("This page of the list does not exist."))
    try:
        found = services(request).orders.list_orders(
            who.session.tenant_id,
            limit=ORDERS_PAGE,
            cursor=cursor,
            member=who.session.member or "",
        )
    except TokenmallError:
        raise ConsoleError(400, N_("This page of the list does not exist.")) from None
    return render(
        request,
        "m_orders.html",
        who,
        orders=found.items,
        next_cursor=found.next_cursor,
        statuses=STATUS_LABELS,
    )


@router.get("/m/{tenant}/orders/{ref}")
def member_order(request: Request, tenant: str, ref: str) -> Response:
    who = member_viewer(request, tenant)
    orders = services(request).orders
    try:
        check_ref(ref, "order")
        if orders.order_member(who.session.tenant_id, ref) != who.session.member:
            raise NotFound(f"no order {ref!r}")
        order = orders.get_order(who.session.tenant_id, ref)
    except TokenmallError:
        raise ConsoleError(404, N_("No such order.")) from None
    return render(request, "m_order.html", who, order=order, statuses=STATUS_LABELS)


@router.get("/m/{tenant}/invite")
def member_invite(request: Request, tenant: str) -> Response:
    who = member_viewer(request, tenant)
    with read_only(services(request).engine).connect() as conn:
        profile = get_profile(conn, who.session.tenant_id, who.session.member or "")
    link = referral_link(str(request.base_url), tenant, profile.invite_code)
    return render(request, "m_invite.html", who, profile=profile, link=link, qr=qr_data_uri(link))


@router.get("/m/{tenant}/board")
def member_board(request: Request, tenant: str) -> Response:
    who = member_viewer(request, tenant)
    with read_only(services(request).engine).connect() as conn:
        found = reads.board(conn, who.session.tenant_id, limit=BOARD_MAX, cursor=None)
    return render(request, "m_board.html", who, entries=found.items, me=who.session.member)


@router.get("/m/{tenant}/join")
def join(request: Request, tenant: str) -> Response:
    """The page a referral link opens, for anyone: the mall and the invite code to give."""
    invite = (request.query_params.get("invite") or "")[:MAX_INVITE]
    with read_only(services(request).engine).connect() as conn:
        try:
            mall = get_tenant(conn, tenant)
        except (NotFound, TokenmallError):
            raise ConsoleError(404, N_("No such page.")) from None
    code = invite.upper() if invite.isascii() and invite.isalnum() else ""
    return render(request, "m_join.html", mall=mall.name, invite=code)
