"""NFG in the operator's console: collections (list, create, detail with their tokens), a
token's provenance, the exchange's open listings and the token log's anchors.

Every page is the operator's (a merchant's session: 403; another mall's: 404).  The reads are
the API's (``collections.list_collections``, ``market.open_listings``, ``tokens.provenance``)
plus :mod:`tokenmall.service.nfg.reads`; the two writes are the API's own calls in one unit of
work each: creating a collection (``POST .../nfg/collections``: the form is read into the
domain's :class:`~tokenmall.domain.nfg.Collection`, whose rules refuse what the API refuses)
and publishing an anchor (``POST .../nfg/anchors``).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from tokenmall.domain.economy import Asset
from tokenmall.domain.nfg import Collection, ERC721NonexistentToken, Kind, MetadataTemplate, Mode
from tokenmall.errors import NotFound, TokenmallError
from tokenmall.service.nfg import collections, log, market, reads, tokens
from tokenmall.store.db import read_only
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
from tokenmall.web.i18n import N_

__all__ = ["EVENT_KINDS", "MODES", "check_code", "check_serial", "router"]

router = APIRouter(include_in_schema=False)
CODE_RE: Final = re.compile(r"[A-Za-z0-9_]{1,32}")
STEP_RE: Final = re.compile(r"(0|[1-9])(\.[0-9]{1,6})?")
MAX_SERIAL: Final = 10_000_000
MAX_USES: Final = 1_000_000
TOKENS_PAGE: Final = 200
MODES: Final = {
    "off": N_("not transferable"),
    "gift_only": N_("gifts only"),
    "open": N_("gifts and sales"),
}
EVENT_KINDS: Final = {
    "mint": N_("minted"),
    "transfer": N_("gifted"),
    "sale": N_("sold"),
    "redeem": N_("one use redeemed"),
    "burn": N_("burned"),
}
KINDS: Final = {"item": N_("item"), "right": N_("right")}


def check_code(code: str) -> str:
    """A collection code from a path (anything else is no page)."""
    if not CODE_RE.fullmatch(code):
        raise ConsoleError(404, N_("No such page."))
    return code


def check_serial(serial: str) -> int:
    if not serial.isdigit() or not 1 <= int(serial) <= MAX_SERIAL:
        raise ConsoleError(404, N_("No such page."))
    return int(serial)


def _operator(request: Request, tenant: str) -> Viewer:
    who = viewer(request, tenant)
    operator_only(who)
    return who


def _index_page(
    request: Request,
    who: Viewer,
    *,
    typed: dict[str, Any] | None = None,
    notice: str | None = None,
    error: str | None = None,
    http_status: int = 200,
) -> Response:
    tid = who.session.tenant_id
    with read_only(services(request).engine).connect() as conn:
        found = collections.list_collections(conn, tid)
        listings = market.open_listings(conn, tid)
        anchors = reads.latest_anchors(conn, tid)
    return render(
        request,
        "nfg.html",
        who,
        found=found,
        listings=listings,
        anchors=anchors,
        modes=MODES,
        kinds=KINDS,
        typed=typed or {},
        notice=notice,
        error=error,
        http_status=http_status,
    )


@router.get("/console/{tenant}/nfg")
def nfg_index(request: Request, tenant: str) -> Response:
    return _index_page(request, _operator(request, tenant))


def _int(text: str, *, low: int, high: int, message: str) -> int:
    text = text.strip()
    if not text.isdigit() or not low <= int(text) <= high:
        raise FormError(message, low=low, high=high)
    return int(text)


def _mode(text: str, *, blank_ok: bool) -> Mode | None:
    if not text and blank_ok:
        return None
    if text not in MODES:
        raise FormError(N_("Choose a transfer policy from the list."))
    return Mode(text)


def collection_of_form(form: FormData) -> Collection:
    """The collection the form describes, checked field by field, then by the domain's own
    rules (fee and royalty together, modes, kinds): the same refusals as the API's."""
    code = field(form, "code").strip()
    if not CODE_RE.fullmatch(code):
        raise FormError(N_("A code is 1 to 32 letters, digits or _."))
    name = parse_text(field(form, "name"), required=False, limit=200)
    if name is None:
        raise FormError(N_("Enter a name."))
    supply = _int(
        field(form, "max_supply"),
        low=1,
        high=MAX_SERIAL,
        message=N_("The supply is a whole number from %(low)s to %(high)s."),
    )
    price = parse_amount(field(form, "price"), required=True)
    assert price is not None
    kind = field(form, "kind")
    if kind not in KINDS:
        raise FormError(N_("Choose item or right."))
    uses = 0
    if kind == "right":
        uses = _int(
            field(form, "uses"),
            low=1,
            high=MAX_USES,
            message=N_("A right has from %(low)s to %(high)s uses."),
        )
    accepted = {v for v in form.getlist("accepted") if isinstance(v, str)}
    if not accepted or not accepted <= {"CNY", "SP", "EP"}:
        raise FormError(N_("Tick at least one way to pay."))
    bps: dict[str, int] = {}
    for name_ in ("royalty_bps", "fee_bps"):
        bps[name_] = _int(
            field(form, name_) or "0",
            low=0,
            high=10_000,
            message=N_("Basis points are a whole number from %(low)s to %(high)s."),
        )
    step_text = field(form, "appreciation_step").strip()
    if step_text and not STEP_RE.fullmatch(step_text):
        raise FormError(N_("The appreciation step is a rate such as 0.05 (at most 6 places)."))
    description = parse_text(field(form, "description"), required=False, limit=500)
    image = parse_text(field(form, "image"), required=False, limit=500)
    policy = _mode(field(form, "transfer_policy"), blank_ok=False)
    assert policy is not None
    return Collection(
        code=code,
        name=name,
        max_supply=supply,
        price=price,
        kind=Kind(kind),
        uses=uses,
        metadata=MetadataTemplate(description=description or "", image=image or ""),
        accepted=frozenset(Asset(a) for a in accepted),
        royalty_bps=bps["royalty_bps"],
        fee_bps=bps["fee_bps"],
        transfer_policy=policy,
        exchange_mode=_mode(field(form, "exchange_mode"), blank_ok=True),
        appreciation_step=Decimal(step_text) if step_text else None,
    )


def _create(request: Request, who: Viewer, form: FormData) -> Response:
    typed: dict[str, Any] = {k: field(form, k)[:500] for k in form if k != "csrf"}
    typed["accepted"] = [v for v in form.getlist("accepted") if isinstance(v, str)]
    try:
        coll = collection_of_form(form)
    except FormError as exc:
        error = form_error(request, exc)
        return _index_page(request, who, typed=typed, error=error, http_status=400)
    except TokenmallError as exc:  # the domain's rules between fields (fee and royalty...)
        error = service_error(request, exc)
        return _index_page(request, who, typed=typed, error=error, http_status=400)
    try:
        with services(request).store.tenant_tx(who.session.tenant_id) as tx:
            collections.create_collection(tx, coll)
    except TokenmallError as exc:  # the code is taken
        error = service_error(request, exc)
        return _index_page(request, who, typed=typed, error=error, http_status=409)
    notice = tr(request, N_("Collection %(code)s created."), code=coll.code)
    return _index_page(request, who, notice=notice)


@router.post("/console/{tenant}/nfg/collections")
async def create_collection(request: Request, tenant: str) -> Response:
    who = await in_thread(_operator, request, tenant)
    form = await posted(request, who)
    return await in_thread(_create, request, who, form)


def _anchor(request: Request, who: Viewer) -> Response:
    try:
        with services(request).store.tenant_tx(who.session.tenant_id) as tx:
            got = log.anchor(tx)
    except TokenmallError as exc:  # nothing new to publish
        return _index_page(request, who, error=service_error(request, exc), http_status=409)
    notice = tr(
        request,
        N_("Anchor %(id)s published: events %(first)s to %(last)s, root %(root)s."),
        id=got.id,
        first=got.first_seq,
        last=got.last_seq,
        root=got.root,
    )
    return _index_page(request, who, notice=notice)


@router.post("/console/{tenant}/nfg/anchors")
async def anchor_now(request: Request, tenant: str) -> Response:
    who = await in_thread(_operator, request, tenant)
    await posted(request, who)
    return await in_thread(_anchor, request, who)


@router.get("/console/{tenant}/nfg/c/{code}")
def collection_page(request: Request, tenant: str, code: str) -> Response:
    who = _operator(request, tenant)
    check_code(code)
    after = request.query_params.get("after") or "0"
    start = int(after) if after.isdigit() and int(after) <= MAX_SERIAL else 0
    tid = who.session.tenant_id
    with read_only(services(request).engine).connect() as conn:
        try:
            info = collections.get_collection(conn, tid, code)
        except NotFound:
            raise ConsoleError(404, N_("No such page.")) from None
        found = reads.collection_tokens(conn, tid, code, limit=TOKENS_PAGE, after=start)
        listed = {x.serial: x for x in market.open_listings(conn, tid, code)}
    return render(
        request,
        "nfg_collection.html",
        who,
        info=info,
        c=info.collection,
        found=found,
        listed=listed,
        modes=MODES,
        kinds=KINDS,
        next_after=found[-1].serial if len(found) == TOKENS_PAGE else None,
    )


@router.get("/console/{tenant}/nfg/c/{code}/{serial}")
def token_page(request: Request, tenant: str, code: str, serial: str) -> Response:
    who = _operator(request, tenant)
    number = check_serial(serial)
    check_code(code)
    tid = who.session.tenant_id
    with read_only(services(request).engine).connect() as conn:
        try:
            token = tokens.get_token(conn, tid, code, number)
            events = tokens.provenance(conn, tid, code, number)
        except (NotFound, ERC721NonexistentToken):
            raise ConsoleError(404, N_("No such page.")) from None
    return render(
        request, "nfg_token.html", who, token=token, events=events, event_kinds=EVENT_KINDS
    )
