"""NFG in the member's pages (``/m/{mall}/nfg``): my tokens, a token's page, gifts, listing
and cancelling, the market with buy in SP, and buying a collection's next token with SP/EP.

Each action is the API's call with a member token, in one unit of work: ``tokens.redeem``
(``POST .../nfg/tokens/{code}/{serial}/redeem``), ``tokens.transfer`` (``.../transfer``),
``market.list_token`` (``POST .../nfg/listings``), ``market.cancel`` (``.../listings/{id}/
cancel``), ``market.buy`` (``.../listings/{id}/buy``) and ``tokens.mint_for``
(``POST .../nfg/collections/{code}/mint``).  A refusal is the rule's own message (a gift the
collection's policy forbids, a holding time, a stale listing) behind "Not done:", answered
409, and nothing changed.  Before a buy the page shows exactly what is paid: the listing's
settlement, or the SP price or EP cost of a primary purchase
(:mod:`tokenmall.service.nfg.reads`).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from tokenmall.domain.economy import Asset
from tokenmall.domain.nfg import ERC721NonexistentToken, Kind, Mode, UnknownListing
from tokenmall.errors import NotFound, TokenmallError
from tokenmall.service import wallet
from tokenmall.service.members import get_profile
from tokenmall.service.nfg import collections, market, reads, tokens
from tokenmall.service.uow import TenantTx
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
from tokenmall.web.i18n import N_, format_money
from tokenmall.web.member import member_viewer
from tokenmall.web.nfg import EVENT_KINDS, MODES, check_code, check_serial

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
MEMBER_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}")  # the API's MemberCode
MAX_LISTING: Final = 2_147_483_647
_NFG: Final = "/m/{tenant}/nfg"


def _me(who: Viewer) -> tuple[int, str]:
    return who.session.tenant_id, who.session.member or ""


def _listing_id(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LISTING:
        raise ConsoleError(404, N_("No such page."))
    return int(raw)


def _safe_image(url: str) -> str | None:
    """An image the page may show without a request leaving the mall: its own path or a
    ``data:`` image.  Any other address is shown as text, never fetched."""
    if (url.startswith("/") and not url.startswith("//")) or url.startswith("data:image/"):
        return url
    return None


@router.get(_NFG)
def my_tokens(request: Request, tenant: str) -> Response:
    who = member_viewer(request, tenant)
    tid, member = _me(who)
    with read_only(services(request).engine).connect() as conn:
        held = tokens.tokens_of(conn, tid, member)
        mine = reads.listings_of(conn, tid, member)
        shop = [
            i
            for i in collections.list_collections(conn, tid)
            if i.minted < i.collection.max_supply and i.collection.accepted & {Asset.SP, Asset.EP}
        ]
    return render(
        request,
        "m_nfg.html",
        who,
        held=held,
        mine=mine,
        listed={x.code + "#" + str(x.serial): x for x in mine},
        shop=shop,
    )


def _token_page(
    request: Request,
    who: Viewer,
    code: str,
    serial: int,
    *,
    typed: dict[str, str] | None = None,
    notice: str | None = None,
    error: str | None = None,
    http_status: int = 200,
) -> Response:
    tid, member = _me(who)
    with read_only(services(request).engine).connect() as conn:
        try:
            info = collections.get_collection(conn, tid, code)
            token = tokens.get_token(conn, tid, code, serial)
            events = tokens.provenance(conn, tid, code, serial)
        except (NotFound, ERC721NonexistentToken):
            raise ConsoleError(404, N_("No such page.")) from None
        meta = None if token.burned else tokens.metadata(conn, tid, code, serial)
        listing = reads.open_listing_of(conn, tid, code, serial)
    c = info.collection
    mine = token.owner == member and not token.burned
    fixed = c.next_price(token.last_price) if c.appreciation_step is not None else None
    return render(
        request,
        "m_nfg_token.html",
        who,
        token=token,
        c=c,
        meta=meta,
        image=_safe_image(str(meta.get("image") or "")) if meta else None,
        # the operator's attributes come first; serial, uses and expiry are shown on their own
        attributes=meta["attributes"][: len(c.metadata.attributes)] if meta else [],
        events=events,
        event_kinds=EVENT_KINDS,
        modes=MODES,
        mine=mine,
        listing=listing,
        can_redeem=mine and c.kind is Kind.RIGHT and token.uses_left > 0,
        can_gift=mine and c.transfer_policy is not Mode.OFF,
        can_list=mine and listing is None and c.exchange is Mode.OPEN,
        fixed_price=fixed,
        typed=typed or {},
        notice=notice,
        error=error,
        http_status=http_status,
    )


@router.get(_NFG + "/tokens/{code}/{serial}")
def token_page(request: Request, tenant: str, code: str, serial: str) -> Response:
    who = member_viewer(request, tenant)
    return _token_page(request, who, check_code(code), check_serial(serial))


async def _act(
    request: Request, tenant: str, code: str, serial: str
) -> tuple[Viewer, FormData, str, int]:
    who = await in_thread(member_viewer, request, tenant)
    form = await posted(request, who)
    return who, form, check_code(code), check_serial(serial)


def _run(
    request: Request,
    who: Viewer,
    code: str,
    serial: int,
    action: Callable[[TenantTx], object],
    *,
    notice: str,
    typed: dict[str, str] | None = None,
) -> Response:
    """``action(tx)`` in one unit of work; the token's page with the outcome."""
    try:
        with services(request).store.tenant_tx(who.session.tenant_id) as tx:
            action(tx)
    except (NotFound, ERC721NonexistentToken, UnknownListing):
        raise ConsoleError(404, N_("No such page.")) from None
    except TokenmallError as exc:
        error = service_error(request, exc)
        return _token_page(request, who, code, serial, typed=typed, error=error, http_status=409)
    return _token_page(request, who, code, serial, notice=notice)


@router.post(_NFG + "/tokens/{code}/{serial}/redeem")
async def redeem(request: Request, tenant: str, code: str, serial: str) -> Response:
    """One use of the right (the API's redeem): the token stays, marked."""
    who, _form, code, number = await _act(request, tenant, code, serial)
    _, member = _me(who)
    notice = tr(request, N_("One use redeemed."))
    return await in_thread(
        _run,
        request,
        who,
        code,
        number,
        lambda tx: tokens.redeem(tx, code, number, caller=member),
        notice=notice,
    )


def _receiver(request: Request, who: Viewer, typed: str) -> str:
    to = typed.strip()
    if not MEMBER_RE.fullmatch(to):
        raise FormError(N_("Enter the member code of the receiver."))
    with read_only(services(request).engine).connect() as conn:
        try:
            get_profile(conn, who.session.tenant_id, to)
        except NotFound:
            raise FormError(N_("No member of this mall has that code.")) from None
    return to


def _gift(request: Request, who: Viewer, code: str, serial: int, typed: str) -> Response:
    _, member = _me(who)
    try:
        to = _receiver(request, who, typed)
    except FormError as exc:
        return _token_page(
            request,
            who,
            code,
            serial,
            typed={"to": typed},
            error=form_error(request, exc),
            http_status=400,
        )
    notice = tr(request, N_("Given to %(member)s."), member=to)
    return _run(
        request,
        who,
        code,
        serial,
        lambda tx: tokens.transfer(tx, code, serial, caller=member, from_=member, to=to),
        notice=notice,
        typed={"to": typed},
    )


@router.post(_NFG + "/tokens/{code}/{serial}/gift")
async def gift(request: Request, tenant: str, code: str, serial: str) -> Response:
    """A gift (the API's transfer) under the collection's transfer policy."""
    who, form, code, number = await _act(request, tenant, code, serial)
    return await in_thread(_gift, request, who, code, number, field(form, "to")[:100])


def _list(request: Request, who: Viewer, code: str, serial: int, typed: str) -> Response:
    _, member = _me(who)
    try:
        price = parse_amount(typed, required=False)
    except FormError as exc:
        return _token_page(
            request,
            who,
            code,
            serial,
            typed={"price": typed},
            error=form_error(request, exc),
            http_status=400,
        )
    notice = tr(request, N_("Listed on the market."))
    return _run(
        request,
        who,
        code,
        serial,
        lambda tx: market.list_token(tx, code, serial, caller=member, price=price),
        notice=notice,
        typed={"price": typed},
    )


@router.post(_NFG + "/tokens/{code}/{serial}/list")
async def list_token(request: Request, tenant: str, code: str, serial: str) -> Response:
    """A fixed-price listing (the API's ``POST .../listings``); under automatic appreciation
    the price is the platform's and the field is left out."""
    who, form, code, number = await _act(request, tenant, code, serial)
    return await in_thread(_list, request, who, code, number, field(form, "price")[:40])


def _cancel(request: Request, who: Viewer, listing_id: int) -> Response:
    tid, member = _me(who)
    with read_only(services(request).engine).connect() as conn:
        try:
            x = market.get_listing(conn, tid, listing_id)
        except UnknownListing:
            raise ConsoleError(404, N_("No such page.")) from None
    notice = tr(request, N_("The listing is cancelled."))
    return _run(
        request,
        who,
        x.code,
        x.serial,
        lambda tx: market.cancel(tx, listing_id, caller=member),
        notice=notice,
    )


@router.post(_NFG + "/listings/{listing_id}/cancel")
async def cancel(request: Request, tenant: str, listing_id: str) -> Response:
    who = await in_thread(member_viewer, request, tenant)
    await posted(request, who)
    return await in_thread(_cancel, request, who, _listing_id(listing_id))


@router.get(_NFG + "/market")
def market_page(request: Request, tenant: str) -> Response:
    who = member_viewer(request, tenant)
    tid, _member = _me(who)
    with read_only(services(request).engine).connect() as conn:
        listings = market.open_listings(conn, tid)
    return render(request, "m_nfg_market.html", who, listings=listings)


def _listing_page(
    request: Request,
    who: Viewer,
    listing_id: int,
    *,
    error: str | None = None,
    http_status: int = 200,
) -> Response:
    tid, member = _me(who)
    preview = None
    with read_only(services(request).engine).connect() as conn:
        try:
            x = market.get_listing(conn, tid, listing_id)
        except UnknownListing:
            raise ConsoleError(404, N_("No such page.")) from None
        balance = wallet.balance(conn, tid, member).stable
        if x.state == "open" and x.seller != member:
            try:
                preview = reads.sale_preview(conn, tid, listing_id, member)
            except TokenmallError as exc:
                error = error or service_error(request, exc)
    return render(
        request,
        "m_nfg_listing.html",
        who,
        x=x,
        preview=preview,
        balance=balance,
        short=preview is not None and balance < preview.price,
        error=error,
        http_status=http_status,
    )


@router.get(_NFG + "/market/{listing_id}")
def listing_page(request: Request, tenant: str, listing_id: str) -> Response:
    who = member_viewer(request, tenant)
    return _listing_page(request, who, _listing_id(listing_id))


def _buy(request: Request, who: Viewer, listing_id: int) -> Response:
    tid, member = _me(who)
    try:
        with services(request).store.tenant_tx(tid) as tx:
            st = market.buy(tx, listing_id, buyer=member)
    except UnknownListing:
        raise ConsoleError(404, N_("No such page.")) from None
    except TokenmallError as exc:
        return _listing_page(
            request, who, listing_id, error=service_error(request, exc), http_status=409
        )
    assert st.listing is not None
    ref = st.listing.token
    notice = tr(request, N_("Bought for %(amount)s SP."), amount=format_money(st.price))
    return _token_page(request, who, ref.code, ref.serial, notice=notice)


@router.post(_NFG + "/market/{listing_id}/buy")
async def buy(request: Request, tenant: str, listing_id: str) -> Response:
    """Buy with SP (the API's buy): payment, fee, royalty and the new owner commit together."""
    who = await in_thread(member_viewer, request, tenant)
    await posted(request, who)
    return await in_thread(_buy, request, who, _listing_id(listing_id))


def _shop_page(
    request: Request,
    who: Viewer,
    code: str,
    *,
    error: str | None = None,
    http_status: int = 200,
) -> Response:
    tid, member = _me(who)
    with read_only(services(request).engine).connect() as conn:
        try:
            info = collections.get_collection(conn, tid, code)
        except NotFound:
            raise ConsoleError(404, N_("No such page.")) from None
        held = wallet.balance(conn, tid, member)
        costs: dict[str, Any] = {}
        for asset in (Asset.SP, Asset.EP):
            if asset in info.collection.accepted:
                try:
                    costs[asset.value] = reads.mint_preview(conn, tid, code, asset)
                except TokenmallError:  # EP cannot pay exactly now: not offered
                    continue
    return render(
        request,
        "m_nfg_shop.html",
        who,
        info=info,
        c=info.collection,
        held=held,
        costs=costs,
        sold_out=info.minted >= info.collection.max_supply,
        modes=MODES,
        # one key per page shown: a double tap or a resent form buys once (tokens.purchase)
        buy_key=secrets.token_hex(16),
        error=error,
        http_status=http_status,
    )


# the shop form's one-time key (secrets.token_hex(16)), the purchase's idempotency key
_BUY_KEY: Final = re.compile(r"[0-9a-f]{32}")


@router.get(_NFG + "/shop/{code}")
def shop_page(request: Request, tenant: str, code: str) -> Response:
    who = member_viewer(request, tenant)
    return _shop_page(request, who, check_code(code))


def _mint(request: Request, who: Viewer, code: str, asset_name: str, key: str) -> Response:
    tid, member = _me(who)
    if asset_name not in ("SP", "EP"):
        error = tr(request, N_("Choose SP or EP."))
        return _shop_page(request, who, code, error=error, http_status=400)
    if not _BUY_KEY.fullmatch(key):
        error = tr(request, N_("This form has expired: try again."))
        return _shop_page(request, who, code, error=error, http_status=400)
    asset = Asset(asset_name)
    try:
        with services(request).store.tenant_tx(tid) as tx:
            serial, _ = tokens.purchase(tx, code, member, asset, key=key)
    except NotFound:
        raise ConsoleError(404, N_("No such page.")) from None
    except TokenmallError as exc:
        return _shop_page(request, who, code, error=service_error(request, exc), http_status=409)
    notice = tr(request, N_("Bought %(code)s #%(serial)s."), code=code, serial=serial)
    return _token_page(request, who, code, serial, notice=notice)


@router.post(_NFG + "/shop/{code}/buy")
async def mint(request: Request, tenant: str, code: str) -> Response:
    """The collection's next serial for SP, or for EP at the current price (the API's mint)."""
    who = await in_thread(member_viewer, request, tenant)
    form = await posted(request, who)
    return await in_thread(
        _mint, request, who, check_code(code), field(form, "asset"), field(form, "key")
    )
