"""Operator reads and actions: the balance sheet, the day close, the daily series."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from pydantic import BaseModel, Field

from tokenmall.api.schemas.common import InputModel, money, utc
from tokenmall.service import accounting, dayclose, series
from tokenmall.service.codec import dec

__all__ = [
    "BalanceSheetOut",
    "CashOut",
    "DailyRowOut",
    "DailySeriesOut",
    "DayCloseIn",
    "DayCloseOut",
    "DayStatusOut",
    "IdentityOut",
    "OpenItemsOut",
    "PointsOut",
    "StableOut",
]


class CashOut(BaseModel):
    """The CNY accounts."""

    pool: str = Field(description="The reserve behind every circulating EP.")
    dividend_fund: str = Field(description="Today's dividend money plus the carried remainder.")
    revenue: str = Field(description="The platform's share; it also backs SP from exchanges.")
    sp_reserve: str = Field(description="CNY owed to members for their SP, 1:1.")
    escrow: str = Field(description="Paid orders' money waiting for settlement.")
    payout_hold: str = Field(description="Withdrawals waiting for the provider (net of fee).")
    world: str = Field(description="Minus what buyers paid in, plus refunds and payouts out.")


class PointsOut(BaseModel):
    """EP: issued, burned, and who holds what circulates."""

    issued: str
    burned: str
    circulating: str = Field(description="issued - burned: the members' and the treasury's.")
    treasury: str
    members: str = Field(description="EP in members' wallets.")
    total_supply: str


class StableOut(BaseModel):
    members: str = Field(description="SP in members' wallets.")
    sp_issuance: str = Field(description="The SP source: minus the SP outstanding.")


class OpenItemsOut(BaseModel):
    members: int
    escrowed_orders: int = Field(description="Paid orders not settled yet.")
    escrowed: str = Field(description="What they hold in escrow, less refunds.")
    held_withdrawals: int = Field(description="Payout holds not paid or released yet.")
    held_net: str
    open_withdrawals: int = Field(description="Withdrawals requested or approved.")
    open_withdrawals_net: str
    sale_value: str = Field(
        description="What every holder's EP would pay if sold now (R3, after the fee)."
    )


class IdentityOut(BaseModel):
    name: str
    statement: str
    left: str
    relation: str = Field(description="==, >= or <=")
    right: str
    holds: bool


class BalanceSheetOut(BaseModel):
    seq: int = Field(description="The last ledger transaction included (one snapshot).")
    price: str = Field(description="pool / circulating, 4 decimals (display).")
    cny: CashOut
    ep: PointsOut
    sp: StableOut
    open: OpenItemsOut
    identities: list[IdentityOut]
    ok: bool = Field(description="Every identity holds.")

    @classmethod
    def of(cls, b: accounting.BalanceSheet) -> BalanceSheetOut:
        return cls(
            seq=b.seq,
            price=b.price,
            cny=CashOut(
                pool=money(b.pool),
                dividend_fund=money(b.dividend_fund),
                revenue=money(b.revenue),
                sp_reserve=money(b.sp_reserve),
                escrow=money(b.escrow),
                payout_hold=money(b.payout_hold),
                world=money(b.world),
            ),
            ep=PointsOut(
                issued=dec(b.issued),
                burned=dec(b.burned),
                circulating=dec(b.circulating),
                treasury=dec(b.treasury),
                members=dec(b.members_ep),
                total_supply=dec(b.total_supply),
            ),
            sp=StableOut(members=money(b.members_sp), sp_issuance=money(b.sp_issuance)),
            open=OpenItemsOut(
                members=b.members,
                escrowed_orders=b.escrowed_orders,
                escrowed=money(b.escrowed),
                held_withdrawals=b.held_withdrawals,
                held_net=money(b.held_net),
                open_withdrawals=b.open_withdrawals,
                open_withdrawals_net=money(b.open_withdrawals_net),
                sale_value=money(b.sale_value),
            ),
            identities=[
                IdentityOut(
                    name=i.name,
                    statement=i.statement,
                    left=dec(i.left),
                    relation=i.relation,
                    right=dec(i.right),
                    holds=i.holds,
                )
                for i in b.identities
            ],
            ok=b.ok,
        )


class DayStatusOut(BaseModel):
    timezone: str
    today: dt.date = Field(description="The tenant's local date now.")
    last_closed: dt.date | None
    next_close: dt.datetime = Field(description="The next local midnight (UTC).")
    due: list[dt.date] = Field(description="Past dates not closed yet, oldest first.")

    @classmethod
    def of(cls, st: dayclose.DayStatus) -> DayStatusOut:
        return cls(
            timezone=st.zone,
            today=st.today,
            last_closed=st.last_closed,
            next_close=utc(st.next_close),
            due=st.due,
        )


class DayCloseIn(InputModel):
    date: dt.date = Field(description="The tenant-local date to close (YYYY-MM-DD).")


class DayCloseOut(BaseModel):
    date: dt.date
    status: str = Field(description="applied, or replayed: the date was already closed.")
    seq: int = Field(description="The close's ledger transaction.")
    paid: str = Field(description="Dividends paid (SP).")
    recipients: int
    exits: int
    carry: str = Field(description="What stays in the dividend fund.")

    @classmethod
    def of(cls, o: dayclose.CloseOutcome) -> DayCloseOut:
        return cls(
            date=o.day,
            status="replayed" if o.replayed else "applied",
            seq=o.seq,
            paid=money(Decimal(o.paid)),
            recipients=int(o.recipients),
            exits=int(o.exits),
            carry=money(Decimal(str(o.result.get("dividend_fund", "0")))),
        )


class DailyRowOut(BaseModel):
    date: dt.date
    price: str = Field(description="At the end of the day, 4 decimals.")
    pool: str
    circulating: str
    dividend_fund: str = Field(description="At the end of the day (before its close).")
    sales: str = Field(description="Orders paid and purchases applied that day (CNY).")
    dividends: str | None = Field(description="What the close of the day paid; null: not closed.")
    recipients: int
    exits: int = Field(description="Forced exits that day, those of its close included.")
    transactions: int = Field(description="Ledger transactions committed that day.")

    @classmethod
    def of(cls, r: series.DailyRow) -> DailyRowOut:
        return cls(
            date=r.date,
            price=r.price,
            pool=money(Decimal(r.pool)),
            circulating=dec(Decimal(r.circulating)),
            dividend_fund=money(Decimal(r.dividend_fund)),
            sales=money(r.sales),
            dividends=None if r.dividends is None else money(Decimal(r.dividends)),
            recipients=r.recipients,
            exits=r.exits,
            transactions=r.transactions,
        )


class DailySeriesOut(BaseModel):
    """Not a page: the range is bounded (366 days), so every day comes in one answer."""

    timezone: str
    days: list[DailyRowOut]
