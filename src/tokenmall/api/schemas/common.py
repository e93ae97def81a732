"""What every area's bodies share: money and points on the wire, codes and names, pages.

Money is a decimal *string* both ways (``"99.00"``): a JSON number is refused, because a client
that sends ``0.1`` as a number has usually already turned it into a binary float.  Catalog
amounts have at most 2 decimal places (whole fen); a value with more is refused, not rounded.
Counts (stock, quantities) are JSON integers.  Times are ISO 8601 in UTC.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Generic, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from tokenmall.service.codec import cny

__all__ = [
    "Code",
    "DbId",
    "FenIn",
    "InputModel",
    "InviteCode",
    "MemberCode",
    "MoneyOut",
    "Name",
    "Page",
    "Text",
    "money",
    "utc",
    "utc_or_none",
]

T = TypeVar("T")

_FEN_PATTERN = r"^(0|[1-9][0-9]{0,8})(\.[0-9]{1,2})?$"
_FEN_RE = re.compile(_FEN_PATTERN)


def _fen_string(value: object) -> object:
    if isinstance(value, Decimal):  # constructed in Python (tests, seeding): already exact
        return value
    if not isinstance(value, str):
        raise PydanticCustomError(
            "decimal_string", 'an amount is a decimal string such as "12.50", not a JSON number'
        )
    if not _FEN_RE.fullmatch(value):
        raise PydanticCustomError(
            "decimal_string",
            'an amount is a decimal string with at most 2 decimal places, e.g. "12.50"',
        )
    return Decimal(value)


_MONEY_SCHEMA = {"type": "string", "pattern": _FEN_PATTERN, "examples": ["99.00"]}

# a CNY amount in whole fen, in a request
FenIn = Annotated[Decimal, BeforeValidator(_fen_string), WithJsonSchema(_MONEY_SCHEMA)]
# a CNY (or EP) amount in a response
MoneyOut = Annotated[
    Decimal,
    PlainSerializer(cny, return_type=str),  # the one format of every CNY/SP field
    WithJsonSchema({"type": "string", "examples": ["99.00"]}),
]
# codes appear in URLs: the same rules as the services check (tenants.check_tenant_code,
# members.check_member_code), here so the OpenAPI schema states them
Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
MemberCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}$")]
# text a person typed; NUL is refused (PostgreSQL cannot store it in text, SQLite would)
_TEXT = r"^[^\x00]*$"
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_TEXT)]
Text = Annotated[str, StringConstraints(max_length=20_000, pattern=_TEXT)]
InviteCode = Annotated[str, StringConstraints(max_length=16, pattern=r"^[A-Za-z0-9]*$")]
DbId = Annotated[int, Field(ge=1, le=2_147_483_647, strict=True)]


def money(d: Decimal) -> str:
    """CNY/SP on the wire (:func:`tokenmall.service.codec.cny`, shared with webhooks)."""
    return cny(d)


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def utc_or_none(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC)


class InputModel(BaseModel):  # a request body
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not ignored


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null on the last page."
    )
