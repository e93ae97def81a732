"""After-sales: a member asks for a refund; the merchant or an operator accepts or refuses.

The life of a request (``aftersales_requests.status``; every step is also a row of
``aftersales_events`` with who took it and when, never changed afterwards)::

    requested --accept (merchant or operator)--> accepted --refund applied--> refunded
        |  +----refuse with a reason (merchant or operator)--> refused
        +-------cancel (the member, or an operator for them)--> cancelled

Accepting runs the refund flow as an operator's refund does (:func:`.refunds.refund_in`, the
request's id as the refund id) in the same unit of work: the request becomes ``refunded``
with the ledger's refund, or, if the refund is refused (the order was refunded meanwhile),
stays ``requested`` and nothing is written.  Two accepts at once are serialized by the
tenant's lock and the order row; the second finds the request refunded and answers it, and
the refund id would refuse a second refund anyway.

Rules: a request is for a ``paid`` order (before delivery), or a ``delivered`` one inside its
return window (``settle_at``, settle_days after the confirmation); at most what is left of
the order; one open request per order (a unique constraint on ``open_order_id``); photos are
at most :data:`MAX_PHOTOS` https URLs.  A merchant decides the requests of orders that are
wholly its own; a request on an order that mixes merchants is decided by an operator, since
a refund is of the order, not of one merchant's lines.  An open request holds the order's
settlement (:func:`.lifecycle.settle_due` passes it over).
"""

from __future__ import annotations

import json
import secrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final
from urllib.parse import urlsplit

from sqlalchemy import Connection, exists, insert, select, update
from sqlalchemy.exc import IntegrityError

from tokenmall.errors import InvalidCommand, NotFound
from tokenmall.money import cny_of_fen, fen_of
from tokenmall.service.errors import Conflict, Forbidden
from tokenmall.service.orders import queries, refunds
from tokenmall.service.orders.context import OrderContext
from tokenmall.service.orders.merchant_desk import merchant_ids
from tokenmall.service.orders.models import OrderStateError
from tokenmall.service.pages import Page, fetch_page
from tokenmall.store import schema as s
from tokenmall.store.db import read_only
from tokenmall.store.rows import insert_row

__all__ = [
    "AFTERSALES_STATES",
    "MAX_PHOTOS",
    "MAX_PHOTO_URL",
    "AfterSalesEvent",
    "AfterSalesRequest",
    "DuplicateRequest",
    "Viewer",
    "accept",
    "cancel",
    "get_request",
    "list_requests",
    "refuse",
    "request_refund",
]

AFTERSALES_STATES: Final = s.AFTERSALES_STATES
MAX_PHOTOS: Final = 9  # what a WeChat image picker hands over at most
MAX_PHOTO_URL: Final = 500
MAX_TEXT: Final = 200


class DuplicateRequest(Conflict):
    """The order already has an open request: decide or cancel it first."""

    code = "duplicate_request"


@dataclass(frozen=True, slots=True)
class Viewer:
    """On whose behalf: a member (their own requests), a merchant (requests on orders with
    its lines), or staff (neither set: every request of the tenant)."""

    member: str | None = None
    merchant_id: int | None = None


@dataclass(frozen=True, slots=True)
class AfterSalesEvent:
    status: str
    actor: str
    note: str | None
    at: float


@dataclass(frozen=True, slots=True)
class AfterSalesRequest:
    ref: str
    order_ref: str
    member: str
    amount: Decimal
    reason: str
    photos: list[str]
    status: str
    decision_note: str | None  # why it was refused
    refund_id: str | None  # the order refund it became (its own ref), once refunded
    created_at: float
    updated_at: float
    history: list[AfterSalesEvent] = field(default_factory=list)


# ----------------------------------------------------------------------------- checks


def _text(value: str, what: str) -> str:
    value = value.strip()
    if not 1 <= len(value) <= MAX_TEXT:
        raise InvalidCommand(f"{what} must be 1 to {MAX_TEXT} characters")
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in value):
        raise InvalidCommand(f"{what} must not contain control characters")
    return value


def check_photos(photos: Sequence[str]) -> list[str]:
    """At most :data:`MAX_PHOTOS` https URLs of a host, each at most :data:`MAX_PHOTO_URL`
    characters: shown to the merchant and operators, so never a ``javascript:``, ``data:``
    or plain-http link."""
    if len(photos) > MAX_PHOTOS:
        raise InvalidCommand(f"at most {MAX_PHOTOS} photos")
    for url in photos:
        if len(url) > MAX_PHOTO_URL:
            raise InvalidCommand(f"a photo URL is at most {MAX_PHOTO_URL} characters")
        if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in url):
            raise InvalidCommand("a photo URL must not contain spaces or control characters")
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:
            host = None
        if parts.scheme != "https" or not host:
            raise InvalidCommand(f"photo {url[:80]!r} is not an https URL")
    return list(photos)


def _in_window(row: Any, now: float) -> bool:
    """Paid and not yet confirmed delivered; or delivered and the return window still open."""
    if row.status == "paid":
        return True
    return row.status == "delivered" and row.settle_at is not None and now < row.settle_at


# ----------------------------------------------------------------------------- reads


def _history(conn: Connection, tenant_id: int, ids: list[int]) -> dict[int, list[AfterSalesEvent]]:
    if not ids:
        return {}
    ev = s.aftersales_events.c
    found: dict[int, list[AfterSalesEvent]] = {}
    for r in conn.execute(
        select(s.aftersales_events)
        .where(ev.tenant_id == tenant_id, ev.request_id.in_(ids))
        .order_by(ev.request_id, ev.id)
    ):
        found.setdefault(int(r.request_id), []).append(
            AfterSalesEvent(r.status, r.actor, r.note, r.at)
        )
    return found


def _of(row: Any, history: list[AfterSalesEvent]) -> AfterSalesRequest:
    return AfterSalesRequest(
        ref=row.ref,
        order_ref=row.order_ref,
        member=row.member,
        amount=cny_of_fen(row.amount_fen),
        reason=row.reason,
        photos=list(json.loads(row.photos)),
        status=row.status,
        decision_note=row.decision_note,
        refund_id=row.ref if row.status == "refunded" else None,
        created_at=row.created_at,
        updated_at=row.updated_at,
        history=history,
    )


_ar, _o = s.aftersales_requests.c, s.orders.c
_WITH_ORDER = select(s.aftersales_requests, _o.ref.label("order_ref")).select_from(
    s.aftersales_requests.join(s.orders, (_o.tenant_id == _ar.tenant_id) & (_o.id == _ar.order_id))
)


def _row(conn: Connection, tenant_id: int, ref: str, viewer: Viewer) -> Any:
    """The request ``ref`` if ``viewer`` may see it; otherwise NotFound, as if absent."""
    row = conn.execute(_WITH_ORDER.where(_ar.tenant_id == tenant_id, _ar.ref == ref)).first()
    if row is None or (viewer.member is not None and row.member != viewer.member):
        raise NotFound(f"no after-sales request {ref!r}")
    if viewer.merchant_id is not None and viewer.merchant_id not in merchant_ids(
        conn, tenant_id, row.order_id
    ):
        raise NotFound(f"no after-sales request {ref!r}")
    return row


def _load(conn: Connection, tenant_id: int, ref: str) -> AfterSalesRequest:
    row = conn.execute(_WITH_ORDER.where(_ar.tenant_id == tenant_id, _ar.ref == ref)).one()
    return _of(row, _history(conn, tenant_id, [row.id]).get(row.id, []))


def get_request(ctx: OrderContext, tenant_id: int, ref: str, viewer: Viewer) -> AfterSalesRequest:
    with ctx.store.read() as conn:
        row = _row(conn, tenant_id, ref, viewer)
        return _of(row, _history(conn, tenant_id, [row.id]).get(row.id, []))


def list_requests(
    ctx: OrderContext,
    tenant_id: int,
    viewer: Viewer,
    *,
    limit: int,
    cursor: str | None,
    status: str | None = None,
    order_ref: str | None = None,
    merchant_id: int | None = None,
) -> Page[AfterSalesRequest]:
    """Requests ``viewer`` may see, oldest first, with their history; ``merchant_id``: only
    those on orders with that merchant's lines (what a merchant's viewer always implies)."""
    stmt = _WITH_ORDER.where(_ar.tenant_id == tenant_id)
    if viewer.member is not None:
        stmt = stmt.where(_ar.member == viewer.member)
    for mid in {m for m in (viewer.merchant_id, merchant_id) if m is not None}:
        ln = s.order_lines.c
        stmt = stmt.where(
            exists().where(
                ln.tenant_id == _ar.tenant_id, ln.order_id == _ar.order_id, ln.merchant_id == mid
            )
        )
    if status is not None:
        stmt = stmt.where(_ar.status == status)
    if order_ref is not None:
        stmt = stmt.where(_o.ref == order_ref)
    with read_only(ctx.engine).connect() as conn:
        page = fetch_page(conn, stmt, _ar.id, limit=limit, cursor=cursor, convert=lambda r: r)
        history = _history(conn, tenant_id, [int(r.id) for r in page.items])
    return Page([_of(r, history.get(r.id, [])) for r in page.items], page.next_cursor)


# ----------------------------------------------------------------------------- writes


def _move(
    conn: Connection,
    tenant_id: int,
    request_id: int,
    *,
    status: str,
    actor: str,
    now: float,
    note: str | None = None,
) -> None:
    """Record a step of the request's life and make it the request's status (a decided or
    cancelled request is no longer open: ``open_order_id`` cleared)."""
    conn.execute(
        insert(s.aftersales_events).values(
            tenant_id=tenant_id,
            request_id=request_id,
            status=status,
            actor=actor[:120],
            note=note,
            at=now,
        )
    )
    if status == "requested":  # the row was inserted so
        return
    values: dict[str, Any] = {"status": status, "updated_at": now, "open_order_id": None}
    if status == "refused":
        values["decision_note"] = note
    conn.execute(
        update(s.aftersales_requests)
        .where(_ar.tenant_id == tenant_id, _ar.id == request_id)
        .values(values)
    )


def request_refund(
    ctx: OrderContext,
    tenant_id: int,
    order_ref: str,
    *,
    viewer: Viewer,
    amount: Decimal,
    reason: str,
    photos: Sequence[str] = (),
    actor: str,
) -> AfterSalesRequest:
    """Ask for ``amount`` of ``order_ref`` back.  A member asks for their own orders only
    (another's: NotFound); an operator may ask for the buyer; a merchant may not."""
    if viewer.merchant_id is not None:
        raise Forbidden("a merchant does not ask for refunds; it decides them")
    reason = _text(reason, "reason")
    photos = check_photos(photos)
    try:
        fen = fen_of(amount)
    except ValueError:
        raise InvalidCommand("amount must be whole fen") from None
    if fen <= 0:
        raise InvalidCommand("amount must be greater than 0")
    now = ctx.clock()
    try:
        with ctx.store.tenant_tx(tenant_id, lock=False) as tx:
            conn = tx.conn
            order = queries.order_row(conn, tenant_id, order_ref, lock=True)
            if viewer.member is not None and order.member != viewer.member:
                raise NotFound(f"no order {order_ref!r}")
            if not _in_window(order, now):
                raise OrderStateError(
                    f"order {order_ref!r} is {order.status}: a refund is asked for a paid order, "
                    "or a delivered one inside its return window"
                )
            left = order.total_fen - order.refunded_fen
            if fen > left:
                raise InvalidCommand(
                    f"order {order_ref!r} has only {cny_of_fen(left)} left to refund"
                )
            _no_open_request(conn, tenant_id, order.id, order_ref)
            ref = "as" + secrets.token_hex(8)
            pk = insert_row(
                conn,
                s.aftersales_requests,
                {
                    "tenant_id": tenant_id,
                    "ref": ref,
                    "order_id": order.id,
                    "member": order.member,
                    "amount_fen": fen,
                    "reason": reason,
                    "photos": json.dumps(photos),
                    "status": "requested",
                    "decision_note": None,
                    "open_order_id": order.id,
                    "created_at": now,
                    "updated_at": now,
                },
            ).inserted_primary_key
            assert pk is not None
            request_id = int(pk[0])
            _move(conn, tenant_id, request_id, status="requested", actor=actor, now=now)
            return _load(conn, tenant_id, ref)
    except IntegrityError:  # the unique open_order_id: asked at the same moment
        raise DuplicateRequest(f"order {order_ref!r} already has an open request") from None


def _no_open_request(conn: Connection, tenant_id: int, order_id: int, order_ref: str) -> None:
    found = conn.execute(
        select(_ar.ref).where(_ar.tenant_id == tenant_id, _ar.open_order_id == order_id)
    ).scalar()
    if found is not None:
        raise DuplicateRequest(
            f"order {order_ref!r} already has an open request {found!r}: decide or cancel it first"
        )


def _decider(conn: Connection, tenant_id: int, row: Any, viewer: Viewer) -> None:
    """Only staff, or the merchant of an order wholly its own, decide a request."""
    if viewer.member is not None:
        raise Forbidden("a member does not decide after-sales requests")
    if viewer.merchant_id is not None and merchant_ids(conn, tenant_id, row.order_id) != {
        viewer.merchant_id
    }:
        raise Forbidden(
            f"order {row.order_ref!r} has other merchants' goods: an operator decides its requests"
        )


def _locked(conn: Connection, tenant_id: int, request_id: int) -> Any:
    stmt = _WITH_ORDER.where(_ar.tenant_id == tenant_id, _ar.id == request_id)
    if conn.dialect.name != "sqlite":  # SQLite: the writing transaction holds the database
        stmt = stmt.with_for_update(of=s.aftersales_requests)
    return conn.execute(stmt).one()


def accept(
    ctx: OrderContext, tenant_id: int, tenant: str, ref: str, *, viewer: Viewer, actor: str
) -> tuple[AfterSalesRequest, bool]:
    """Accept the request and refund its amount; (the request, whether this call did it).

    Locks: the tenant's (the refund moves value), then the order row, then the request row,
    the order of every transaction that moves value.  Accepting a refunded request again
    answers it unchanged.
    """
    now = ctx.clock()
    with ctx.store.tenant_tx(tenant_id) as tx:
        conn = tx.conn
        row = _row(conn, tenant_id, ref, viewer)
        _decider(conn, tenant_id, row, viewer)
        order = queries.order_by_id(conn, tenant_id, row.order_id, lock=True)
        row = _locked(conn, tenant_id, row.id)
        if row.status == "refunded":
            return _load(conn, tenant_id, ref), False
        if row.status != "requested":
            raise Conflict(f"after-sales request {ref!r} is {row.status}; it cannot be accepted")
        left = order.total_fen - order.refunded_fen
        if row.amount_fen > left:
            raise Conflict(
                f"order {order.ref!r} has only {cny_of_fen(left)} left to refund; "
                f"refuse request {ref!r}"
            )
        _move(conn, tenant_id, row.id, status="accepted", actor=actor, now=now)
        refunds.refund_in(
            ctx,
            tx,
            tenant,
            order.ref,
            refund_id=ref,
            amount=cny_of_fen(row.amount_fen),
            reason=f"after-sales {ref}: {row.reason}"[:MAX_TEXT],
        )
        _move(conn, tenant_id, row.id, status="refunded", actor=actor, now=now, note=ref)
        return _load(conn, tenant_id, ref), True


def _close(
    ctx: OrderContext,
    tenant_id: int,
    ref: str,
    *,
    viewer: Viewer,
    actor: str,
    status: str,
    note: str | None,
) -> tuple[AfterSalesRequest, bool]:
    """requested -> refused or cancelled (no value moves: no tenant lock, the request row
    is locked).  The same step again answers the request unchanged."""
    now = ctx.clock()
    with ctx.store.tenant_tx(tenant_id, lock=False) as tx:
        conn = tx.conn
        row = _row(conn, tenant_id, ref, viewer)
        if status == "refused":
            _decider(conn, tenant_id, row, viewer)
        elif viewer.merchant_id is not None:
            raise Forbidden("the member (or an operator for them) cancels a request")
        row = _locked(conn, tenant_id, row.id)
        if row.status == status:
            return _load(conn, tenant_id, ref), False
        if row.status != "requested":
            raise Conflict(f"after-sales request {ref!r} is {row.status}; it is decided")
        _move(conn, tenant_id, row.id, status=status, actor=actor, now=now, note=note)
        return _load(conn, tenant_id, ref), True


def refuse(
    ctx: OrderContext, tenant_id: int, ref: str, *, viewer: Viewer, actor: str, reason: str
) -> tuple[AfterSalesRequest, bool]:
    """Refuse the request, saying why (shown to the member)."""
    note = _text(reason, "reason")
    return _close(ctx, tenant_id, ref, viewer=viewer, actor=actor, status="refused", note=note)


def cancel(
    ctx: OrderContext, tenant_id: int, ref: str, *, viewer: Viewer, actor: str
) -> tuple[AfterSalesRequest, bool]:
    """The member withdraws the request."""
    return _close(ctx, tenant_id, ref, viewer=viewer, actor=actor, status="cancelled", note=None)
