"""Read models: the economy now and over time, levels, the holder board, a member's holdings."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from pydantic import BaseModel, Field

from tokenmall.api.schemas.common import money
from tokenmall.api.schemas.wallet import HistoryOut
from tokenmall.service import reads
from tokenmall.service.codec import dec

__all__ = [
    "EconomyOut",
    "HolderOut",
    "HoldingsOut",
    "LevelOut",
    "LevelsOut",
    "PointsMoveOut",
    "PricePointOut",
]


class EconomyOut(BaseModel):
    price: str = Field(description="EP price = pool / circulating, 4 decimals (display).")
    pool: str
    circulating: str = Field(description="EP issued and not burned (the treasury's included).")
    issued: str
    burned: str
    treasury: str
    dividend_fund: str = Field(description="Today's fund plus the carried remainder.")
    total_supply: str
    members: int
    seq: int = Field(description="The last ledger transaction.")

    @classmethod
    def of(cls, e: reads.EconomyView) -> EconomyOut:
        return cls(
            price=e.price,
            pool=money(e.pool),
            circulating=dec(e.circulating),
            issued=dec(e.issued),
            burned=dec(e.burned),
            treasury=dec(e.treasury),
            dividend_fund=money(e.dividend_fund),
            total_supply=dec(e.total_supply),
            members=e.members,
            seq=e.seq,
        )


class PricePointOut(BaseModel):
    seq: int
    at: datetime
    kind: str = Field(description="What the ledger transaction was (purchase, sell, ...).")
    price: str
    pool: str
    circulating: str
    burned: str
    treasury: str
    dividend_fund: str

    @classmethod
    def of(cls, p: reads.PricePoint) -> PricePointOut:
        return cls(
            seq=p.seq,
            at=datetime.fromtimestamp(p.at, tz=UTC),
            kind=p.kind,
            price=p.price,
            # the ledger's results keep their own scale: the API's one format per field
            pool=money(Decimal(p.pool)),
            circulating=dec(Decimal(p.circulating)),
            burned=dec(Decimal(p.burned)),
            treasury=dec(Decimal(p.treasury)),
            dividend_fund=money(Decimal(p.dividend_fund)),
        )


class LevelOut(BaseModel):
    level: int
    min_points: str = Field(description="EP held from which a member has this level.")
    members: int = Field(description="Members at this level now.")


class LevelsOut(BaseModel):
    levels: list[LevelOut]
    partner_threshold: str = Field(description="EP held from which a member is a partner.")


class HolderOut(BaseModel):
    rank: int | None = Field(description="Place on the board; null in the partner list.")
    member: str | None = Field(description="Shown to operators, and to a member on their row.")
    display_name: str | None
    points: str
    level: int
    partner: bool
    me: bool = Field(description="This row is the calling member's.")


class HoldingsOut(BaseModel):
    member: str
    points: str
    price: str
    value: str = Field(description="points x price, cut to the fen.")
    sell_value: str = Field(description="What selling every point would pay now (after fee).")
    stable: str
    quota_remaining: str
    spent: str
    dividends: str = Field(description="Dividends received so far.")
    points_debt: str = Field(description="EP owed from refunds, set off against new points.")
    exited: bool
    level: int
    partner: bool

    @classmethod
    def of(cls, h: reads.Holdings) -> HoldingsOut:
        return cls(
            member=h.member,
            points=dec(h.points),
            price=h.price,
            value=money(h.value),
            sell_value=money(h.sell_value),
            stable=money(h.stable),
            quota_remaining=money(h.quota_remaining),
            spent=money(h.spent),
            dividends=money(h.dividends),
            points_debt=dec(h.points_debt),
            exited=h.exited,
            level=h.level,
            partner=h.partner,
        )


class PointsMoveOut(HistoryOut):
    """One movement of the member's EP with the price around it."""

    price_before: str | None = Field(
        description="The EP price when the transaction began (what the previous one left): "
        "the price an issuance, a sale or an exchange was valued at. Null where unknown "
        "(before the tenant's first transaction)."
    )
    price_after: str | None = Field(description="The EP price the transaction left.")

    @classmethod
    def of_move(cls, m: reads.PointsMove) -> PointsMoveOut:
        return cls(
            **HistoryOut.of(m.entry).model_dump(),
            price_before=m.price_before,
            price_after=m.price_after,
        )
