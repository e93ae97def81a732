"""The enabled models of a tenant, run in one fixed order for every event.

Why a fixed order: rewards of different models are independent, but the wiring pays them in the
order returned, and a replay must give the same list.  The order is the one of the rules
(docs/RULES.md section 5): ``distribution``, ``refer3``, ``chain21``, ``queue_free``,
``rebate``; the EP engine (model #0) runs before all of them and is not part of this set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from tokenmall.domain.marketing import guard
from tokenmall.domain.marketing.base import (
    Context,
    DayClosed,
    Event,
    MarketingModel,
    MemberJoined,
    OrderRefunded,
    OrderSettled,
    Reward,
    TaskDone,
    implements,
)
from tokenmall.domain.marketing.chain21 import Chain21
from tokenmall.domain.marketing.distribution import Distribution
from tokenmall.domain.marketing.queue_free import QueueFree
from tokenmall.domain.marketing.rebate import Rebate
from tokenmall.domain.marketing.refer3 import Refer3
from tokenmall.errors import InvalidParameter

__all__ = ["MODELS", "ORDER", "ModelSet"]

MODELS: Mapping[str, type[MarketingModel[Any, Any]]] = {
    m.name: m for m in (Distribution, Refer3, Chain21, QueueFree, Rebate)
}
ORDER: tuple[str, ...] = tuple(MODELS)

_HOOKS: Mapping[type, str] = {
    OrderSettled: "on_settled",
    OrderRefunded: "on_refunded",
    DayClosed: "on_day_closed",
    MemberJoined: "on_member_joined",
    TaskDone: "on_task_done",
}


def _explain(name: str, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err["loc"]) or "parameters"
        parts.append(f"{where}: {err['msg']}")
    return f"model {name}: " + "; ".join(parts)


@dataclass(frozen=True, slots=True)
class ModelSet:
    """A tenant's enabled models (in :data:`ORDER`) and the override that allowed them."""

    models: tuple[MarketingModel[Any, Any], ...]
    override_reason: str | None = None

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Mapping[str, Any] | None],
        *,
        compliance_override: str | None = None,
        max_levels: int = guard.MAX_LEVELS,
    ) -> ModelSet:
        """Validate ``{name: {param: value}}``; unknown names and parameters are refused."""
        unknown = sorted(set(config) - set(MODELS))
        if unknown:
            raise InvalidParameter(
                f"unknown marketing model(s): {', '.join(unknown)}; known: {', '.join(ORDER)}"
            )
        models = []
        for name in ORDER:
            if name not in config:
                continue
            cls_ = MODELS[name]
            try:
                params = cls_.params_schema.model_validate(dict(config[name] or {}))
            except ValidationError as exc:
                raise InvalidParameter(_explain(name, exc)) from None
            models.append(cls_(params))
        reason = guard.check(models, max_levels=max_levels, override=compliance_override)
        return cls(tuple(models), reason)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.models)

    def new_states(self) -> dict[str, Any]:
        """One empty state per enabled model, keyed by model name."""
        return {m.name: m.new_state() for m in self.models}

    def handle(self, states: Mapping[str, Any], event: Event, ctx: Context) -> list[Reward]:
        """Run ``event`` through every enabled model implementing its hook, in order."""
        hook = _HOOKS[type(event)]
        out: list[Reward] = []
        for m in self.models:
            if implements(m, hook):
                out += getattr(m, hook)(states[m.name], event, ctx)
        return out
