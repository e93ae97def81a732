"""Small, strict readers for inbound provider requests, shared by every provider.

Each reader raises a :class:`~tokenmall.payments.errors.NotificationRejected` subclass with a
message naming the header or field, so a rejected notification can be diagnosed from the log
line alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tokenmall.json_limits import JsonTooDeep, loads_bounded
from tokenmall.payments.base import from_fen
from tokenmall.payments.errors import InvalidAmount, MalformedNotification, StaleNotification

__all__ = [
    "check_fresh",
    "fen_field",
    "find_header",
    "get_header",
    "json_object",
    "object_field",
    "optional_str_field",
    "parse_unix_timestamp",
    "str_field",
    "time_field",
]


def find_header(headers: Mapping[str, str], name: str) -> str | None:
    """The stripped value of header ``name`` or None, matched case-insensitively as HTTP says.

    A plain dict from a test and a framework's header object must behave the same.
    """
    value = headers.get(name)
    if value is None:
        wanted = name.lower()
        for key, candidate in headers.items():
            if key.lower() == wanted:
                value = candidate
                break
    return None if value is None else value.strip()


def get_header(headers: Mapping[str, str], name: str) -> str:
    """Like :func:`find_header`, but a missing or empty header is a malformed notification."""
    value = find_header(headers, name)
    if not value:
        raise MalformedNotification(f"missing header {name}")
    return value


def parse_unix_timestamp(raw: str, *, what: str) -> datetime:
    """Seconds since the epoch, as providers send them, to an aware UTC datetime."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
        raise MalformedNotification(f"{what} is not a unix timestamp: {raw!r}")
    return datetime.fromtimestamp(int(raw), UTC)


def check_fresh(sent_at: datetime, now: datetime, tolerance: timedelta) -> None:
    """Refuse a signed timestamp further than ``tolerance`` from ``now``, in either direction.

    Signatures prove origin, not timeliness: without this check a captured request could be
    replayed forever.  Future timestamps are refused too, so a skewed sender cannot mint
    requests that stay valid for longer than the tolerance.
    """
    skew = now - sent_at
    if abs(skew) > tolerance:
        raise StaleNotification(
            f"notification timestamp {sent_at.isoformat()} is {skew} away from "
            f"{now.isoformat()} (tolerance {tolerance})"
        )


def json_object(raw: bytes, *, what: str) -> dict[str, Any]:
    """Decode UTF-8 JSON that must be an object, nested no deeper than MAX_JSON_DEPTH.

    A signature proves who sent the bytes, not that they are sane: without the depth bound a
    signed body of deeply nested arrays made the parser raise RecursionError.
    """
    try:
        value = loads_bounded(raw.decode("utf-8"))
    except JsonTooDeep as exc:
        raise MalformedNotification(f"{what} is not valid JSON: {exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedNotification(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise MalformedNotification(f"{what} must be a JSON object")
    return value


def object_field(obj: Mapping[str, Any], key: str, *, what: str) -> dict[str, Any]:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise MalformedNotification(f"{what}.{key} must be an object")
    return value


def str_field(obj: Mapping[str, Any], key: str, *, what: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedNotification(f"{what}.{key} must be a non-empty string")
    return value


def optional_str_field(obj: Mapping[str, Any], key: str, *, what: str) -> str | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedNotification(f"{what}.{key} must be a string")
    return value


def fen_field(obj: Mapping[str, Any], key: str, *, what: str) -> Decimal:
    """An integer fen field, converted with the one boundary helper."""
    value = obj.get(key)
    try:
        return from_fen(value)  # type: ignore[arg-type]  # from_fen checks the type itself
    except InvalidAmount as exc:
        raise MalformedNotification(f"{what}.{key}: {exc}") from None


def time_field(obj: Mapping[str, Any], key: str, *, what: str) -> datetime:
    """An RFC 3339 / ISO 8601 time with an offset, normalised to UTC.

    Normalising makes two deliveries that spell the same instant in different zones produce
    equal notifications.
    """
    raw = str_field(obj, key, what=what)
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise MalformedNotification(f"{what}.{key} is not an ISO 8601 time: {raw!r}") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise MalformedNotification(f"{what}.{key} has no UTC offset: {raw!r}")
    return moment.astimezone(UTC)
