"""The marketing models' console pages (operator only): which models are on with which
parameters, a form to switch them and set parameters, the audit trail, the rewards with their
filters and totals per model, and chain21's moves.

The form sends what the API's ``PUT .../models`` sends, to the same service
(:func:`tokenmall.service.marketing.set_models` in a tenant unit of work): the service
validates the whole configuration (each model's schema, then the compliance guard), so a
refusal reads as the API's, naming the rule.  The page itself only reads what was typed: each
parameter's field is parsed by its kind (a list of numbers, a list of product codes, a whole
number, a number) before anything is sent, and a value that is not even a number never reaches
the service.
"""

from __future__ import annotations

import re
import time
import types
import typing
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tokenmall.domain.marketing import MODELS, ORDER
from tokenmall.errors import TokenmallError
from tokenmall.service import marketing
from tokenmall.store.db import read_only
from tokenmall.web.base import (
    FormError,
    Viewer,
    field,
    form_error,
    in_thread,
    operator_only,
    parse_text,
    posted,
    render,
    service_error,
    services,
    tr,
    viewer,
)
from tokenmall.web.i18n import N_

__all__ = ["MODEL_NAMES", "router"]

router = APIRouter(include_in_schema=False)
PAGE: Final = 50
MAX_VALUE: Final = 200  # one parameter's field as typed (a list of product codes is the longest)
MAX_REASON: Final = 500  # the service's limit on a reason and an override
MAX_PLACES: Final = 6  # a ratio such as 0.005 needs three; six is plenty
MAX_DIGITS: Final = 9  # a whole number (days, recruits, tasks)
_NUMBER: Final = re.compile(rf"[0-9]{{1,13}}(\.[0-9]{{1,{MAX_PLACES}}})?")
_WHOLE: Final = re.compile(rf"[0-9]{{1,{MAX_DIGITS}}}")
_CODE: Final = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_SPLIT: Final = re.compile(r"[,，\s]+")  # noqa: RUF001 - a Chinese keyboard types the wide comma

# Each model's name as its operators say it (the seed's words for these schemes).
MODEL_NAMES: Final = {
    "distribution": N_("Distribution (two-level commission)"),
    "refer3": N_("Refer three, get one back"),
    "chain21": N_("Chain 2+1"),
    "queue_free": N_("Queue for a free order"),
    "rebate": N_("Purchase rebate, released daily"),
}
PARAM_HINTS: Final = {
    "ratios": N_("Commission of each level, as a share of the order (comma separated)."),
    "freeze_days": N_("Days a reward can be spent but not withdrawn."),
    "products": N_("Product ids that qualify (comma separated; empty: every product)."),
    "entry_products": N_("Product ids that make an agent (comma separated; empty: every one)."),
    "cycle_rewards": N_("Reward of each position in a cycle of recruits' orders."),
    "hand_over": N_("Recruits an agent hands over to its upline."),
    "direct_bonus": N_("Bonus to the recruiter, as a share of the order."),
    "team_ratio": N_("Team bonus to the boss, as a share of the order."),
    "peer_ratio": N_("Bonus to the boss's boss, as a share of the order."),
    "help_fund_ratio": N_("Share of a bonus held until the help tasks are done."),
    "help_tasks": N_("Help tasks that release the held money."),
    "rate_back": N_("Share of each order paid into the queue's pot."),
    "rate": N_("What a queued order gets back, as a multiple of its amount."),
    "money_max": N_("Most a queued order gets back, in yuan (empty: no cap)."),
    "min_amount": N_("Smallest order that joins the queue, in yuan."),
    "rebate_ratio": N_("Rebate granted, as a multiple of the order."),
    "release_rate": N_("Share of the rebate released by each day close."),
}
MOVE_KINDS: Final = {
    "agent": N_("became an agent"),
    "placed": N_("placed under"),
    "boss": N_("became a boss"),
    "bonus": N_("bonus"),
    "held": N_("held"),
    "released": N_("released"),
    "taken_back": N_("taken back"),
}


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter's field: its name, how it is typed, and the value shown in it."""

    name: str
    kind: str  # numbers | codes | whole | number
    optional: bool
    value: str


def _kind(annotation: Any) -> tuple[str, bool]:
    """How a parameter is typed, from its schema: (kind, may be left empty)."""
    args = typing.get_args(annotation)
    optional = typing.get_origin(annotation) in (typing.Union, types.UnionType) and (
        type(None) in args
    )
    if optional:
        annotation = next(a for a in args if a is not type(None))
    origin = typing.get_origin(annotation)
    if origin is tuple:
        return "numbers", optional
    if origin is frozenset:
        return "codes", optional
    if annotation is int:
        return "whole", optional
    return "number", optional


def _shown(value: Any) -> str:
    """A parameter's value as the field shows it (lists comma separated, None empty)."""
    if value is None:
        return ""
    if isinstance(value, list | tuple | frozenset | set):
        items = [str(v) for v in value]
        return ", ".join(sorted(items) if isinstance(value, frozenset | set) else items)
    return str(value)


def _params(name: str, current: dict[str, Any] | None) -> list[Param]:
    schema = MODELS[name].params_schema
    values = current if current is not None else schema().model_dump()
    out = []
    for pname, info in schema.model_fields.items():
        kind, optional = _kind(info.annotation)
        out.append(Param(pname, kind, optional, _shown(values.get(pname))))
    return out


def _number(text: str, where: str) -> str:
    if not _NUMBER.fullmatch(text):
        raise FormError(
            N_("%(field)s: a number such as 0.05, at most %(places)s decimal places."),
            field=where,
            places=MAX_PLACES,
        )
    return text


def _typed(param: Param, text: str, where: str) -> Any:
    """The field's text as the service's input (strings, as the API's JSON carries them), or
    None to leave the parameter to its default (or to no value, when it may have none)."""
    text = text.strip()
    if len(text) > MAX_VALUE:
        raise FormError(N_("At most %(limit)s characters."), limit=MAX_VALUE)
    items = [t for t in _SPLIT.split(text) if t]
    if not items:
        return None
    if param.kind == "numbers":
        return [_number(t, where) for t in items]
    if param.kind == "codes":
        for t in items:
            if not _CODE.fullmatch(t):
                raise FormError(
                    N_("%(field)s: product ids are letters, digits and - _ . : only."),
                    field=where,
                )
        return items
    if len(items) > 1:
        raise FormError(N_("%(field)s: one value only."), field=where)
    if param.kind == "whole":
        if not _WHOLE.fullmatch(items[0]):
            raise FormError(
                N_("%(field)s: a whole number of at most %(digits)s digits."),
                field=where,
                digits=MAX_DIGITS,
            )
        return items[0]
    return _number(items[0], where)


@dataclass(frozen=True, slots=True)
class Row:
    """One model on the page: on or off, and its parameters (what runs, or what was typed)."""

    name: str
    title: str
    on: bool
    params: list[Param]


def _rows(config: dict[str, dict[str, Any]], typed: dict[str, Any] | None) -> list[Row]:
    rows = []
    for name in ORDER:
        params = _params(name, config.get(name))
        on = name in config
        if typed is not None:  # a refused form is shown as it was typed
            on = bool(typed.get(f"on:{name}"))
            params = [
                Param(p.name, p.kind, p.optional, typed.get(f"p:{name}:{p.name}", p.value))
                for p in params
            ]
        rows.append(Row(name, MODEL_NAMES[name], on, params))
    return rows


def _cursor(request: Request) -> str | None:
    return (request.query_params.get("cursor") or "")[:200] or None


def _models_page(
    request: Request,
    who: Viewer,
    *,
    error: str | None = None,
    notice: str | None = None,
    typed: dict[str, Any] | None = None,
    http_status: int = 200,
) -> Response:
    tid = who.session.tenant_id
    with read_only(services(request).engine).connect() as conn:
        config = marketing.get_config(conn, tid)
        changes = marketing.list_changes(conn, tid, limit=PAGE, cursor=_cursor(request))
    return render(
        request,
        "models.html",
        who,
        config=config,
        rows=_rows(config.models, typed),
        changes=changes,
        hints=PARAM_HINTS,
        names=MODEL_NAMES,
        reason=(typed or {}).get("reason", ""),
        override=(typed or {}).get("override", ""),
        error=error,
        notice=notice,
        http_status=http_status,
    )


@router.get("/console/{tenant}/models")
def models_page(request: Request, tenant: str) -> Response:
    who = viewer(request, tenant)
    operator_only(who)
    return _models_page(request, who)


def _set(
    request: Request,
    who: Viewer,
    models: dict[str, Any],
    reason: str | None,
    override: str | None,
) -> None:
    with services(request).store.tenant_tx(who.session.tenant_id) as tx:
        marketing.set_models(
            tx, models, actor=who.session.actor, reason=reason, compliance_override=override
        )


@router.post("/console/{tenant}/models")
async def set_models(request: Request, tenant: str) -> Response:
    """The models ticked, with their parameters, as one change (the API's ``PUT .../models``):
    models not ticked are switched off; an empty field takes the parameter's default."""
    who = await in_thread(viewer, request, tenant)
    operator_only(who)
    form = await posted(request, who)
    typed: dict[str, Any] = {
        key: field(form, key)[: MAX_VALUE * 2]
        for key in form
        if key.startswith(("on:", "p:")) or key in ("reason", "override")
    }
    models: dict[str, dict[str, Any]] = {}
    try:
        for name in ORDER:
            if not field(form, f"on:{name}"):
                continue
            values: dict[str, Any] = {}
            for param in _params(name, None):
                value = _typed(param, field(form, f"p:{name}:{param.name}"), param.name)
                if value is not None:
                    values[param.name] = value
            models[name] = values
        reason = parse_text(field(form, "reason"), required=False, limit=MAX_REASON)
        override = parse_text(field(form, "override"), required=False, limit=MAX_REASON)
    except FormError as exc:
        return await in_thread(
            _models_page,
            request,
            who,
            error=form_error(request, exc),
            typed=typed,
            http_status=400,
        )
    try:
        await in_thread(_set, request, who, models, reason, override)
    except TokenmallError as exc:
        return await in_thread(
            _models_page,
            request,
            who,
            error=service_error(request, exc),
            typed=typed,
            http_status=400,
        )
    on = ", ".join(models) or "-"
    return await in_thread(
        _models_page, request, who, notice=tr(request, N_("Saved. Models on: %(names)s."), names=on)
    )


def _filter(request: Request, name: str) -> str | None:
    return (request.query_params.get(name) or "").strip()[:64] or None


@router.get("/console/{tenant}/rewards")
def rewards_page(request: Request, tenant: str) -> Response:
    """Every reward and take-back (filters: member, model, order) and the totals per model
    (the API's ``GET .../rewards`` and ``.../rewards/totals``)."""
    who = viewer(request, tenant)
    operator_only(who)
    tid = who.session.tenant_id
    filters = {name: _filter(request, name) for name in ("member", "model", "order")}
    with read_only(services(request).engine).connect() as conn:
        totals = marketing.tenant_totals(conn, tid, time.time())
        found = marketing.list_rewards(
            conn,
            tid,
            member=filters["member"],
            model=filters["model"],
            order=filters["order"],
            limit=PAGE,
            cursor=_cursor(request),
        )
    return render(
        request,
        "rewards.html",
        who,
        totals=totals,
        net=sum((t.net for t in totals), Decimal(0)),
        frozen=sum((t.frozen for t in totals), Decimal(0)),
        rewards=found,
        filters=filters,
        kept={k: v for k, v in filters.items() if v},
        names=MODEL_NAMES,
        models=ORDER,
    )


@router.get("/console/{tenant}/models/chain21/moves")
def moves_page(request: Request, tenant: str) -> Response:
    """chain21's log, oldest first (the API's ``GET .../models/chain21/moves``)."""
    who = viewer(request, tenant)
    operator_only(who)
    member = _filter(request, "member")
    with read_only(services(request).engine).connect() as conn:
        found = marketing.list_moves(
            conn, who.session.tenant_id, member=member, limit=PAGE, cursor=_cursor(request)
        )
    return render(request, "moves.html", who, moves=found, member=member or "", kinds=MOVE_KINDS)
