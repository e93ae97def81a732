"""Where an order goes and how it left: its shipping address and its merchants' shipments.

The address is given when the order is created and stored with it (``order_addresses``); it
is personal data, so only the routes that already show the order to its buyer, to its
merchants (their own view, :mod:`.merchant_desk`) and to operators show it.  Each merchant of
an order ships its own lines once, with a carrier and a tracking number (``order_shipments``,
one row per order and merchant); shipping does not change the order's status: the buyer (or
an operator) confirms delivery, which starts the return window (:func:`.transitions.
mark_delivered`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any, Final

from sqlalchemy import Connection, insert, select

from tokenmall.errors import InvalidCommand
from tokenmall.service.orders.models import Shipment, ShippingAddress
from tokenmall.store import schema as s

__all__ = [
    "MAX_CARRIER",
    "PHONE_PATTERN",
    "TRACKING_PATTERN",
    "addresses_of",
    "check_address",
    "check_shipment",
    "save_address",
    "shipment_of",
    "shipments_of",
]

# A mainland China mobile number: 11 digits, 1 then 3-9 (every carrier's prefixes today).
PHONE_PATTERN: Final = r"^1[3-9][0-9]{9}$"
# Carriers' waybill numbers are letters and digits (SF1234567890123, JD0001234567890, ...).
TRACKING_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9-]{3,39}$"
MAX_CARRIER: Final = 32
# field -> (max length, what it is): the column widths of order_addresses
ADDRESS_LIMITS: Final = {
    "recipient": (50, "recipient"),
    "province": (32, "province"),
    "city": (32, "city"),
    "district": (32, "district"),
    "detail": (200, "detail"),
}
_PHONE_RE: Final = re.compile(PHONE_PATTERN)
_TRACKING_RE: Final = re.compile(TRACKING_PATTERN)


def _text(value: str, what: str, limit: int) -> str:
    """Printed on a label by a person: trimmed, 1 to ``limit`` characters, no control
    characters (a NUL cannot be stored in PostgreSQL; a newline would break a label)."""
    value = value.strip()
    if not 1 <= len(value) <= limit:
        raise InvalidCommand(f"{what} must be 1 to {limit} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in value):
        raise InvalidCommand(f"{what} must not contain control characters")
    return value


def check_address(addr: ShippingAddress) -> ShippingAddress:
    """The address trimmed, or InvalidCommand saying which field is wrong."""
    phone = addr.phone.strip()
    if not _PHONE_RE.fullmatch(phone):
        raise InvalidCommand("phone must be a mainland mobile number: 11 digits, starting 13-19")
    fields = {
        name: _text(getattr(addr, name), what, limit)
        for name, (limit, what) in ADDRESS_LIMITS.items()
    }
    return ShippingAddress(phone=phone, **fields)


def check_shipment(carrier: str, tracking_no: str) -> tuple[str, str]:
    tracking_no = tracking_no.strip()
    if not _TRACKING_RE.fullmatch(tracking_no):
        raise InvalidCommand(
            "tracking_no must be 4 to 40 letters, digits or '-' (starting with a letter or digit)"
        )
    return _text(carrier, "carrier", MAX_CARRIER), tracking_no


def save_address(conn: Connection, tenant_id: int, order_id: int, addr: ShippingAddress) -> None:
    conn.execute(
        insert(s.order_addresses).values(
            tenant_id=tenant_id,
            order_id=order_id,
            recipient=addr.recipient,
            phone=addr.phone,
            province=addr.province,
            city=addr.city,
            district=addr.district,
            detail=addr.detail,
        )
    )


def _address_of(row: Any) -> ShippingAddress:
    return ShippingAddress(
        recipient=row.recipient,
        phone=row.phone,
        province=row.province,
        city=row.city,
        district=row.district,
        detail=row.detail,
    )


def addresses_of(
    conn: Connection, tenant_id: int, order_ids: Iterable[int]
) -> dict[int, ShippingAddress]:
    ids = list(order_ids)
    if not ids:
        return {}
    a = s.order_addresses.c
    rows = conn.execute(
        select(s.order_addresses).where(a.tenant_id == tenant_id, a.order_id.in_(ids))
    )
    return {int(r.order_id): _address_of(r) for r in rows}


def shipment_of(row: Any) -> Shipment:
    return Shipment(
        merchant_id=row.merchant_id,
        carrier=row.carrier,
        tracking_no=row.tracking_no,
        shipped_at=row.shipped_at,
        shipped_by=row.shipped_by,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


def shipments_of(
    conn: Connection, tenant_id: int, order_ids: Iterable[int], *, merchant_id: int | None = None
) -> dict[int, list[Shipment]]:
    """Shipments per order (in merchant id order); ``merchant_id``: that merchant's only."""
    ids = list(order_ids)
    if not ids:
        return {}
    sh = s.order_shipments.c
    stmt = select(s.order_shipments).where(sh.tenant_id == tenant_id, sh.order_id.in_(ids))
    if merchant_id is not None:
        stmt = stmt.where(sh.merchant_id == merchant_id)
    found: dict[int, list[Shipment]] = {}
    for r in conn.execute(stmt.order_by(sh.order_id, sh.merchant_id)):
        found.setdefault(int(r.order_id), []).append(shipment_of(r))
    return found
