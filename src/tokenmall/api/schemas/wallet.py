"""The SP wallet: conversions, withdrawals and their review, the wallet and its history.

Points (EP) are a decimal string with up to 8 places; SP amounts are whole fen (``FenIn``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from tokenmall.api.schemas.common import FenIn, InputModel, money, utc_or_none
from tokenmall.service import reads, wallet
from tokenmall.service.codec import dec

__all__ = [
    "ActionOut",
    "HistoryOut",
    "PointsBody",
    "PointsIn",
    "ReviewBody",
    "StableBody",
    "WalletOut",
    "WithdrawalCreate",
    "WithdrawalOut",
]

_POINTS_PATTERN = r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,8})?$"
_POINTS_RE = re.compile(_POINTS_PATTERN)


def _points_string(value: object) -> object:
    if isinstance(value, Decimal):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError(
            "decimal_string", 'points are a decimal string such as "10.5", not a JSON number'
        )
    if not _POINTS_RE.fullmatch(value):
        raise PydanticCustomError(
            "decimal_string",
            'points are a decimal string with at most 8 decimal places, e.g. "10.5"',
        )
    return Decimal(value)


PointsIn = Annotated[
    Decimal,
    BeforeValidator(_points_string),
    WithJsonSchema({"type": "string", "pattern": _POINTS_PATTERN, "examples": ["10.5"]}),
]


class PointsBody(InputModel):
    points: PointsIn = Field(description="EP, at most 8 decimal places, greater than 0.")


class StableBody(InputModel):
    stable: FenIn = Field(description="SP to spend, whole fen, greater than 0.")


class WithdrawalCreate(InputModel):
    amount: FenIn = Field(description="SP to withdraw (whole fen); the fee is taken from it.")
    account: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[!-~]+$",
        description="The payee at the provider (e.g. the member's WeChat openid).",
    )
    payee_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="The payee's real name, for WeChat Pay transfers (required from 2,000 CNY "
        "paid out). Sealed for WeChat at once with its platform key: never stored or shown "
        "in the clear.",
    )


class ReviewBody(InputModel):
    note: str | None = Field(default=None, max_length=500)


class WalletOut(BaseModel):
    member: str
    stable: str = Field(description="SP spendable now.")
    pending_withdrawals: str = Field(description="SP taken out for withdrawals not yet final.")
    points: str

    @classmethod
    def of(cls, b: wallet.WalletBalance) -> WalletOut:
        return cls(
            member=b.member,
            stable=money(b.stable),
            pending_withdrawals=money(b.pending_withdrawals),
            points=dec(b.points),
        )


class ActionOut(BaseModel):
    kind: Literal["sell", "exchange", "buy_points"]
    replayed: bool = Field(description="True: this key was seen before; nothing moved now.")
    seq: int = Field(description="The ledger transaction.")
    price: str = Field(description="EP price after the transaction (4 decimals).")
    figures: dict[str, str] = Field(
        description="payout (sell), stable (exchange) or points (buy_points), and exits."
    )
    wallet: WalletOut = Field(description="The wallet now.")


class WithdrawalOut(BaseModel):
    id: str
    member: str
    account: str
    amount: str
    fee: str
    net: str = Field(description="What the payee receives: amount - fee.")
    status: Literal["requested", "approved", "rejected", "paid", "failed", "cancelled"]
    requested_at: datetime
    reviewed_at: datetime | None
    reviewer: str | None
    note: str | None
    payout_sent_at: datetime | None
    finished_at: datetime | None
    payout_package: str | None = Field(
        default=None,
        description="WeChat transfers waiting for the payee (WAIT_USER_CONFIRM): the "
        "package for wx.requestMerchantTransfer in the mini-program.",
    )
    payee_named: bool = Field(
        default=False, description="The payee's real name goes with the transfer (sealed)."
    )

    @classmethod
    def of(cls, w: wallet.Withdrawal) -> WithdrawalOut:
        return cls(
            id=w.id,
            member=w.member,
            account=w.account,
            amount=money(w.amount),
            fee=money(w.fee),
            net=money(w.net),
            status=w.status,  # type: ignore[arg-type]  # the CHECK constraint holds it to these
            requested_at=datetime.fromtimestamp(w.requested_at, tz=UTC),
            reviewed_at=utc_or_none(w.reviewed_at),
            reviewer=w.reviewer,
            note=w.note,
            payout_sent_at=utc_or_none(w.payout_sent_at),
            finished_at=utc_or_none(w.finished_at),
            payout_package=w.payout_package,
            payee_named=w.payee_named,
        )


class HistoryOut(BaseModel):
    seq: int
    at: datetime
    kind: str = Field(description="The ledger transaction's kind (purchase, sell, close_day...).")
    category: str = Field(
        description="What it was for the member: purchase_points, referral_points, dividend, "
        "sale_payout, exit_payout, withdrawal, order_payment, refund, ..."
    )
    asset: Literal["EP", "SP"]
    direction: Literal["in", "out"]
    amount: str
    counterparty: str = Field(description="The other account of the transfer.")

    @classmethod
    def of(cls, e: reads.HistoryEntry) -> HistoryOut:
        return cls(
            seq=e.seq,
            at=datetime.fromtimestamp(e.at, tz=UTC),
            kind=e.kind,
            category=e.category,
            asset=e.asset,  # type: ignore[arg-type]  # members hold EP and SP only
            direction=e.direction,  # type: ignore[arg-type]
            amount=dec(e.amount) if e.asset == "EP" else money(e.amount),
            counterparty=e.counterparty,
        )
