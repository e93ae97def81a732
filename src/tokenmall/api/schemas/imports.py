"""Bulk import of already-paid orders: the request and its per-item report."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tokenmall.api.schemas.common import FenIn, MemberCode
from tokenmall.service.imports import (
    EXTERNAL_ID_PATTERN,
    MAX_IMPORT,
    ImportItem,
    ImportReport,
    ImportResult,
)

__all__ = [
    "ImportEconomy",
    "ImportItemError",
    "ImportItemOut",
    "ImportOut",
    "ImportSummary",
    "ImportedOrderIn",
    "OrderImport",
]

ExternalId = Annotated[str, StringConstraints(pattern=EXTERNAL_ID_PATTERN)]


class ImportedOrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_id: ExternalId = Field(
        description="Your order id (1-60 characters): importing it again is safe."
    )
    member: MemberCode = Field(description="The buyer's member code (registered or not).")
    amount: FenIn = Field(description="What the buyer paid, CNY; greater than zero.")
    referrer: MemberCode | None = Field(
        default=None,
        description="The buyer's referrer; omitted: the link the ledger or the registry holds.",
    )
    pool_amount: FenIn | None = Field(
        default=None, description="CNY of this order into the pool; omitted: the tenant's rate."
    )
    fund_amount: FenIn | None = Field(
        default=None,
        description="CNY of this order into the dividend fund; omitted: the tenant's rate.",
    )

    def item(self) -> ImportItem:
        return ImportItem(
            external_id=self.external_id,
            member=self.member,
            amount=self.amount,
            referrer=self.referrer,
            pool_amount=self.pool_amount,
            fund_amount=self.fund_amount,
        )


class OrderImport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    orders: list[ImportedOrderIn] = Field(min_length=1, max_length=MAX_IMPORT)


class ImportItemError(BaseModel):
    code: str
    message: str


class ImportItemOut(BaseModel):
    index: int = Field(description="The order's position in the request.")
    external_id: str
    status: Literal["applied", "replayed", "conflict", "rejected"] = Field(
        description="applied: now; replayed: by an earlier import with the same content; "
        "conflict: the external_id was imported with other content; rejected: the ledger "
        "refused it (e.g. a referrer contradicting the member's permanent link)"
    )
    seq: int | None = Field(description="The ledger event that applied it.")
    points: str | None = Field(description="EP issued to the buyer.")
    referral_points: str | None = Field(description="EP issued to the referrer.")
    quota: str | None = Field(description="Dividend quota granted.")
    error: ImportItemError | None

    @classmethod
    def of(cls, r: ImportResult) -> ImportItemOut:
        return cls(
            index=r.index,
            external_id=r.external_id,
            status=r.status,
            seq=r.seq,
            points=r.figures.get("points"),
            referral_points=r.figures.get("referral_points"),
            quota=r.figures.get("quota"),
            error=None
            if r.error_code is None
            else ImportItemError(code=r.error_code, message=r.error or ""),
        )


class ImportSummary(BaseModel):
    total: int
    applied: int
    replayed: int
    conflict: int
    rejected: int


class ImportEconomy(BaseModel):
    price: str
    pool: str
    circulating: str
    burned: str
    treasury: str
    dividend_fund: str


class ImportOut(BaseModel):
    summary: ImportSummary
    economy: ImportEconomy | None = Field(
        description="The tenant's economy after the last order applied (null: none was)."
    )
    items: list[ImportItemOut]

    @classmethod
    def of(cls, report: ImportReport) -> ImportOut:
        c = report.counts
        return cls(
            summary=ImportSummary(
                total=len(report.results),
                applied=c["applied"],
                replayed=c["replayed"],
                conflict=c["conflict"],
                rejected=c["rejected"],
            ),
            economy=None if report.economy is None else ImportEconomy(**report.economy),
            items=[ImportItemOut.of(r) for r in report.results],
        )
