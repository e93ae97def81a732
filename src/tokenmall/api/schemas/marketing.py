"""Marketing models: a tenant's configuration, its audit trail, rewards and chain21's moves."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from tokenmall.api.schemas.common import InputModel, money, utc, utc_or_none
from tokenmall.domain.marketing import ORDER
from tokenmall.service.marketing import ModelChange, ModelConfig, ModelTotal, Move, RewardEntry

__all__ = [
    "MemberRewardsOut",
    "ModelChangeOut",
    "ModelTotalOut",
    "ModelsIn",
    "ModelsOut",
    "MoveOut",
    "RewardOut",
    "RewardTotalsOut",
]

_PARAMS_EXAMPLE = {"distribution": {"ratios": ["0.10", "0.05"], "freeze_days": 7}, "rebate": {}}


class ModelsIn(InputModel):
    models: dict[str, dict[str, Any] | None] = Field(
        max_length=len(ORDER),
        description="The models to have on, each with its parameters (decimals as strings; "
        "parameters not given take their defaults); a model not named is switched off, {} "
        "switches every model off.  Known: " + ", ".join(ORDER) + " (docs/MODELS.md).",
        examples=[_PARAMS_EXAMPLE],
    )
    reason: str | None = Field(
        default=None, max_length=500, description="Why (kept in the audit trail)."
    )
    compliance_override: str | None = Field(
        default=None,
        max_length=500,
        description="Required, with a reason, for a configuration paying through more than "
        "two referral levels (chain21, or distribution with three ratios); recorded.",
    )


class ModelsOut(BaseModel):
    models: dict[str, dict[str, Any]] = Field(
        description="The models on, with every parameter (defaults filled in)."
    )
    order: list[str] = Field(description="The order they run in, after the EP engine.")
    available: list[str] = Field(description="Every model this service knows, in run order.")
    override_reason: str | None
    updated_at: datetime | None
    updated_by: str | None

    @classmethod
    def of(cls, c: ModelConfig) -> ModelsOut:
        return cls(
            models=c.models,
            order=[n for n in ORDER if n in c.models],
            available=list(ORDER),
            override_reason=c.override_reason,
            updated_at=utc_or_none(c.updated_at),
            updated_by=c.updated_by,
        )


class ModelChangeOut(BaseModel):
    id: int
    at: datetime
    actor: str
    changed: list[str] = Field(description="Models switched on, off, or re-parametrised.")
    before: dict[str, dict[str, Any]]
    after: dict[str, dict[str, Any]]
    reason: str | None
    override_reason: str | None

    @classmethod
    def of(cls, c: ModelChange) -> ModelChangeOut:
        names = sorted(set(c.before) | set(c.after))
        return cls(
            id=c.id,
            at=utc(c.at),
            actor=c.actor,
            changed=[n for n in names if c.before.get(n) != c.after.get(n)],
            before=c.before,
            after=c.after,
            reason=c.reason,
            override_reason=c.override_reason,
        )


class RewardOut(BaseModel):
    id: int
    order: str
    model: str
    member: str = Field(description="Who received (or gave back) it.")
    step: str = Field(description="The reward's step; a take-back's ends in :refund:<id>.")
    amount: str = Field(description="SP; negative when taken back by a refund.")
    withdrawable_at: datetime | None = Field(
        description="A frozen reward can be spent, not withdrawn, before then."
    )
    at: datetime
    ledger_seq: int

    @classmethod
    def of(cls, r: RewardEntry) -> RewardOut:
        return cls(
            id=r.id,
            order=r.order,
            model=r.model,
            member=r.member,
            step=r.step,
            amount=money(r.amount),
            withdrawable_at=utc_or_none(r.withdrawable_at),
            at=utc(r.at),
            ledger_seq=r.ledger_seq,
        )


class ModelTotalOut(BaseModel):
    model: str
    granted: str
    taken_back: str
    net: str
    frozen: str = Field(description="Of the net, what cannot be withdrawn yet.")
    entries: int

    @classmethod
    def of(cls, t: ModelTotal) -> ModelTotalOut:
        return cls(
            model=t.model,
            granted=money(t.granted),
            taken_back=money(t.taken_back),
            net=money(t.net),
            frozen=money(t.frozen),
            entries=t.entries,
        )


class MemberRewardsOut(BaseModel):
    member: str
    models: list[ModelTotalOut] = Field(description="Per model that paid the member anything.")
    net: str
    frozen: str


class RewardTotalsOut(BaseModel):
    models: list[ModelTotalOut] = Field(description="Per model, over every member.")
    net: str


class MoveOut(BaseModel):
    id: int
    model: str
    kind: str = Field(description="agent, placed, boss, bonus, held, released or taken_back.")
    member: str
    order: str
    other: str = Field(description="The upline (placed, boss), or the bonus's step.")
    amount: str
    at: datetime

    @classmethod
    def of(cls, m: Move) -> MoveOut:
        return cls(
            id=m.id,
            model=m.model,
            kind=m.kind,
            member=m.member,
            order=m.order,
            other=m.other,
            amount=money(m.amount),
            at=utc(m.at),
        )
