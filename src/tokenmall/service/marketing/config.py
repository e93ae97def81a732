"""A tenant's marketing models: which are on, with which parameters, and the audit of changes.

The configuration is one row per tenant (``marketing_config``), validated as a whole by the
domain's :class:`~tokenmall.domain.marketing.ModelSet` (each model's Pydantic schema, then the
compliance guard).  A change takes the tenant's lock, as a parameter change does
(:func:`tokenmall.service.tenants.change_params`): every event handled before it ran the old
models, every one after it the new ones, and the audit row (who, when, before, after, why, the
override that allowed it) commits with it.

Stored parameters are the validated ones with their defaults filled in, so the audit trail says
exactly what ran, not only what the operator typed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, update

from tokenmall.domain.marketing import MODELS, ORDER, MarketingModel, ModelSet
from tokenmall.errors import InvalidParameter
from tokenmall.service.pages import Page, fetch_page
from tokenmall.service.uow import TenantTx
from tokenmall.store import schema as s

__all__ = [
    "ModelChange",
    "ModelConfig",
    "active_models",
    "get_config",
    "list_changes",
    "reversing_models",
    "set_models",
]

_REASON_MAX = 500
_CONFIG = select(s.marketing_config).where(s.marketing_config.c.tenant_id == bindparam("t"))


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """The models a tenant has on, in the order they run, with their full parameters."""

    models: dict[str, dict[str, Any]]
    override_reason: str | None
    updated_at: float | None
    updated_by: str | None


@dataclass(frozen=True, slots=True)
class ModelChange:
    id: int
    at: float
    actor: str
    before: dict[str, dict[str, Any]]
    after: dict[str, dict[str, Any]]
    reason: str | None
    override_reason: str | None


def _plain(value: Any) -> Any:
    """JSON-ready parameters: decimals as strings, sets as sorted lists."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, frozenset | set):
        return sorted(str(v) for v in value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _canonical(models: ModelSet) -> dict[str, dict[str, Any]]:
    return {m.name: {k: _plain(v) for k, v in m.params.model_dump().items()} for m in models.models}


@lru_cache(maxsize=256)
def _parse(config: str, override: str | None) -> ModelSet:
    """The stored configuration as the domain's model set (a text is parsed once)."""
    return ModelSet.from_config(json.loads(config), compliance_override=override)


def active_models(conn: Connection, tenant_id: int) -> ModelSet | None:
    """The tenant's models, or None when none is on (what every handler asks first)."""
    row = conn.execute(_CONFIG, {"t": tenant_id}).first()
    if row is None:
        return None
    models = _parse(row.config, row.override_reason)
    return models if models.models else None


@lru_cache(maxsize=256)
def _retired(text: str) -> tuple[MarketingModel[Any, Any], ...]:
    """Models switched off, rebuilt from their last parameters (no guard: they only reverse)."""
    stored = json.loads(text)
    return tuple(
        MODELS[name](MODELS[name].params_schema.model_validate(stored[name]))
        for name in ORDER
        if name in stored
    )


def reversing_models(conn: Connection, tenant_id: int) -> tuple[MarketingModel[Any, Any], ...]:
    """Every model whose rewards a refund must take back, in the order they run: the ones on
    and the ones switched off since (a model's rewards outlive its switching off)."""
    row = conn.execute(_CONFIG, {"t": tenant_id}).first()
    if row is None:
        return ()
    on = _parse(row.config, row.override_reason).models
    names = {m.name for m in on}
    off = [m for m in _retired(row.retired) if m.name not in names]
    return tuple(sorted((*on, *off), key=lambda m: ORDER.index(m.name)))


def get_config(conn: Connection, tenant_id: int) -> ModelConfig:
    row = conn.execute(_CONFIG, {"t": tenant_id}).first()
    if row is None:
        return ModelConfig({}, None, None, None)
    return ModelConfig(
        _canonical(_parse(row.config, row.override_reason)),
        row.override_reason,
        row.updated_at,
        row.updated_by,
    )


def _text(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if len(value) > _REASON_MAX:
        raise InvalidParameter(f"{what} must be at most {_REASON_MAX} characters")
    return value or None


def set_models(
    tx: TenantTx,
    models: Mapping[str, Mapping[str, Any] | None],
    *,
    actor: str,
    reason: str | None = None,
    compliance_override: str | None = None,
) -> ModelChange:
    """Replace the tenant's models with ``models`` (``{}`` switches every model off).

    Unknown models or parameters and out-of-range values are refused (``invalid_parameter``);
    a configuration paying through more than two referral levels is refused
    (``compliance_refused``, naming the rule) unless ``compliance_override`` gives a reason,
    which is then recorded.  Runs under the tenant's lock in the caller's unit of work.
    """
    reason = _text(reason, "reason")
    override = _text(compliance_override, "compliance_override")
    parsed = ModelSet.from_config(dict(models), compliance_override=override)
    tx.lock()
    conn, tenant_id = tx.conn, tx.tenant_id
    before = get_config(conn, tenant_id).models
    after = _canonical(parsed)
    now = time.time()
    text = json.dumps(after, sort_keys=True)
    c = s.marketing_config.c
    old = conn.execute(select(c.retired).where(c.tenant_id == tenant_id)).scalar()
    retired = {**json.loads(old or "{}"), **before}
    values = {
        "config": text,
        "retired": json.dumps({k: v for k, v in retired.items() if k not in after}, sort_keys=True),
        "override_reason": parsed.override_reason,
        "updated_at": now,
        "updated_by": actor,
    }
    done = conn.execute(update(s.marketing_config).where(c.tenant_id == tenant_id).values(values))
    if done.rowcount == 0:
        conn.execute(insert(s.marketing_config).values(tenant_id=tenant_id, **values))
    ch = s.marketing_changes.c
    last = conn.execute(select(func.max(ch.id)).where(ch.tenant_id == tenant_id)).scalar()
    change = ModelChange(
        id=int(last or 0) + 1,
        at=now,
        actor=actor,
        before=before,
        after=after,
        reason=reason,
        override_reason=parsed.override_reason,
    )
    conn.execute(
        insert(s.marketing_changes).values(
            tenant_id=tenant_id,
            id=change.id,
            at=now,
            actor=actor,
            before=json.dumps(before, sort_keys=True),
            after=text,
            reason=reason,
            override_reason=parsed.override_reason,
        )
    )
    return change


def _change(row: Any) -> ModelChange:
    return ModelChange(
        id=row.id,
        at=row.at,
        actor=row.actor,
        before=json.loads(row.before),
        after=json.loads(row.after),
        reason=row.reason,
        override_reason=row.override_reason,
    )


def list_changes(
    conn: Connection, tenant_id: int, *, limit: int, cursor: str | None
) -> Page[ModelChange]:
    """The audit trail of model changes, oldest first."""
    ch = s.marketing_changes.c
    return fetch_page(
        conn,
        select(s.marketing_changes).where(ch.tenant_id == tenant_id),
        ch.id,
        limit=limit,
        cursor=cursor,
        convert=_change,
    )


def ordered(names: list[str]) -> list[str]:
    """``names`` in the order the models run."""
    return [n for n in ORDER if n in names]
