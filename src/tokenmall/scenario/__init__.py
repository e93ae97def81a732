"""Scenario files (docs/RULES.md section 7): a list of events run through the real ledger.

A scenario is how operators and tests ask "what would the engine do with these events?", so
it goes through exactly the code that serves live traffic: the wire form is parsed by
:func:`~tokenmall.service.codec.command_from_payload` and applied by
:class:`~tokenmall.service.ledger.Ledger` on a SQL store, never by a re-implementation.

Two phases, so a typo in event 2,999 does not leave 2,998 events applied:

1. :func:`load_scenario` reads JSON or YAML and validates *every* event (type, fields, amounts,
   duplicate ids or orders) before anything touches a database;
2. :func:`run_scenario` submits the events in chunks, one transaction per chunk.  Each event's
   idempotency key is its ``id``, ``close:{day}`` for a ``close_day`` naming its day, or
   ``event:{index}``, so a run that was killed can simply be
   started again on the same database: committed events come back as *replayed* with the
   result stored when they were first applied, and the output is the same as an uninterrupted
   run's.  An event the engine refuses (selling more than is held, an unknown member) stops the
   run there: the events before it stay committed, none after it is applied.

Numbers are never floats: JSON numbers and YAML floats are read as exact Decimals.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, select

from tokenmall.domain.economy import CloseDay, Command, Purchase
from tokenmall.domain.marketing import ModelSet
from tokenmall.domain.params import TenantParams
from tokenmall.errors import InvalidCommand, TokenmallError
from tokenmall.json_limits import loads_bounded
from tokenmall.scenario.events import (
    GROUP_KINDS,
    GroupOp,
    GroupOpenOp,
    group_op_from_payload,
)
from tokenmall.scenario.promotions import Promotions, seeds_by_campaign
from tokenmall.service.codec import KINDS, command_from_payload
from tokenmall.service.ledger import Ledger
from tokenmall.service.tenants import check_tenant_code
from tokenmall.store import schema
from tokenmall.store.db import create_db_engine, migrate

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_TENANT",
    "MAX_AMOUNT",
    "MEMBER_KEYS",
    "STEP_KEYS",
    "Event",
    "Scenario",
    "ScenarioError",
    "ScenarioRun",
    "check_tenant_code",
    "load_scenario",
    "open_store",
    "parse_scenario",
    "run_on",
    "run_scenario",
]

DEFAULT_TENANT = "scenario"
# One durable commit per chunk: large enough that commits do not dominate, small enough that a
# killed run loses little work and a transaction stays a few MB.
CHUNK_SIZE = 2000
STEP_KEYS = ("price", "pool", "circulating", "burned", "treasury", "dividend_fund")
MEMBER_KEYS = ("points", "stable", "quota_remaining", "spent", "dividends", "exited")

# Per event; 10^12 CNY is far beyond any order and far inside the 64-bit atoms (4 decimals).
MAX_AMOUNT = Decimal(10) ** 12
_TOP_LEVEL = frozenset({"config", "events", "description"})
# config keys that are not tenant parameters: the marketing models and the override reason
_MODELS = "models"
_OVERRIDE = "compliance_override"
_MAX_KEY = 160  # ledger_tx.key


class ScenarioError(InvalidCommand):
    """A scenario that cannot be run as written; the message names the event and the reason."""

    code = "invalid_scenario"


@dataclass(frozen=True, slots=True)
class Event:
    """One validated event: where it is in the file, its idempotency key and its command
    (a ledger command, or a group buy's operation that the run turns into several)."""

    index: int
    key: str
    kind: str
    command: Command | GroupOp
    product: str = "default"


@dataclass(frozen=True, slots=True)
class Scenario:
    """A validated scenario, ready to run; nothing in it can be refused for its form."""

    params: TenantParams
    events: tuple[Event, ...]
    members: tuple[str, ...]  # every member named (buyers, sellers, referrers), first mention first
    models: ModelSet | None = None  # the marketing models enabled by config.models

    @property
    def promotions(self) -> bool:
        """Whether the run has models or group events (its output then has rewards and
        groups, docs/RULES.md section 7)."""
        return bool(self.models and self.models.models) or any(
            not isinstance(e.command, Command) for e in self.events
        )


@dataclass(slots=True)
class ScenarioRun:
    """What a run produced: the engine's result for every event, and the members at the end."""

    steps: list[dict[str, Any]] = field(default_factory=list)
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    applied: int = 0
    replayed: int = 0
    # with models or groups: per member {model: net SP}, and the groups' and draws' records
    rewards: dict[str, dict[str, str]] | None = None
    groups: dict[str, dict[str, Any]] | None = None
    draws: dict[str, dict[str, Any]] | None = None

    def output(self) -> dict[str, Any]:
        """The JSON contract of docs/RULES.md section 7 (and nothing else, so it stays stable)."""
        members = {code: {k: m[k] for k in MEMBER_KEYS} for code, m in self.members.items()}
        out: dict[str, Any] = {
            "steps": [{k: step[k] for k in STEP_KEYS} for step in self.steps],
            "members": members,
        }
        if self.rewards is not None:
            for code, m in members.items():
                m["rewards"] = self.rewards.get(code, {})
            out["groups"] = self.groups or {}
            out["draws"] = self.draws or {}
        return out


# ----------------------------------------------------------------------------- reading


class _ExactLoader(yaml.SafeLoader):
    """SafeLoader that keeps numbers exact and dates as text.

    A YAML ``10.5`` would otherwise be a float, which the engine refuses because the exact
    value is already lost; ``day: 2024-05-01`` would be a ``date``, not the string a day is.
    """


def _exact_float(loader: yaml.SafeLoader, node: yaml.Node) -> Decimal | str:
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    try:
        return Decimal(text.replace("_", ""))
    except InvalidOperation:
        return text  # ".inf", ".nan": left as text, refused as "not a number" by validation


_ExactLoader.add_constructor("tag:yaml.org,2002:float", _exact_float)
_ExactLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _parse_json(text: str, where: str) -> Any:
    try:
        # bounded: a file nested thousands deep made the parser raise RecursionError
        return loads_bounded(text, parse_float=Decimal, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ScenarioError(
            f"{where}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except ValueError as exc:
        raise ScenarioError(f"{where}: not valid JSON: {exc}") from None


def _parse_yaml(text: str, where: str) -> Any:
    try:
        return yaml.load(text, Loader=_ExactLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        line = f" (line {exc.problem_mark.line + 1})" if exc.problem_mark is not None else ""
        raise ScenarioError(
            f"{where}: not valid YAML: {_one_line(str(exc.problem or exc.context))}{line}"
        ) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{where}: not valid YAML: {_one_line(str(exc))}") from None
    except RecursionError:
        # PyYAML composes nested collections recursively; no scenario nests more than a few
        raise ScenarioError(f"{where}: not valid YAML: nested too deep") from None


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file: ``.json``, ``.yaml``/``.yml``, or either by content."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ScenarioError(f"{p}: not UTF-8 text") from None
    except OSError as exc:
        raise ScenarioError(f"cannot read {p}: {exc.strerror or exc}") from None
    suffix = p.suffix.lower()
    if suffix == ".json":
        data = _parse_json(text, str(p))
    elif suffix in (".yaml", ".yml"):
        data = _parse_yaml(text, str(p))
    elif text.lstrip().startswith(("{", "[")):
        data = _parse_json(text, str(p))
    else:
        data = _parse_yaml(text, str(p))
    return parse_scenario(data)


# ----------------------------------------------------------------------------- validation


def _event_id(raw: Any) -> str:
    if isinstance(raw, bool) or not isinstance(raw, str | int) or str(raw).strip() == "":
        raise InvalidCommand("id must be a non-empty string")
    key = str(raw).strip()
    if len(key) > _MAX_KEY:
        raise InvalidCommand(f"id is longer than {_MAX_KEY} characters")
    return key


def _key(raw: Mapping[str, Any], cmd: Command | GroupOp, index: int) -> str:
    """The event's idempotency key: its ``id``; ``close:{day}`` for a named day (R9: a day
    closes once, whichever file or run closes it); else its position, ``event:{index}``."""
    if raw.get("id") is not None:
        return _event_id(raw["id"])
    if isinstance(cmd, CloseDay) and cmd.day:
        return f"close:{cmd.day}"
    return f"event:{index}"


def _check_magnitude(cmd: Command) -> None:
    """Refuse amounts no real event has, before they reach arithmetic or storage limits.

    The codec accepts any finite decimal, but ``1e400`` overflows the 80-digit context and
    ``1e15`` CNY the store's 64-bit atoms: both would fail deep in the engine instead of
    naming the event.
    """
    for f in fields(cmd):
        v = getattr(cmd, f.name)
        if isinstance(v, Decimal) and v > MAX_AMOUNT:
            raise InvalidCommand(f"{f.name} {v} is larger than the supported maximum {MAX_AMOUNT}")


def parse_scenario(data: Any) -> Scenario:
    """Validate a parsed document; raise :class:`ScenarioError` naming the first bad event.

    Every event is checked before the error is raised, so the message can say how many
    others are wrong too (fix them all in one go, not one run per typo).
    """
    if not isinstance(data, Mapping):
        raise ScenarioError("a scenario must be an object with an 'events' list")
    unknown = sorted(str(k) for k in data if k not in _TOP_LEVEL)
    if unknown:
        raise ScenarioError(
            f"unknown top-level field(s): {', '.join(unknown)} "
            f"(expected {', '.join(sorted(_TOP_LEVEL))})"
        )
    config = data.get("config") or {}
    if not isinstance(config, Mapping):
        raise ScenarioError("config must be an object of tenant parameters")
    tenant = {k: v for k, v in config.items() if k not in (_MODELS, _OVERRIDE)}
    try:
        params = TenantParams.from_mapping(tenant)
    except InvalidCommand as exc:
        raise ScenarioError(f"config: {exc}") from None
    models = _models(config)
    raw_events = data.get("events")
    if not isinstance(raw_events, list):
        raise ScenarioError("a scenario must have an 'events' list")

    events: list[Event] = []
    members: dict[str, None] = {}  # an ordered set
    keys: dict[str, int] = {}
    orders: dict[str, int] = {}
    errors: list[str] = []
    for index, raw in enumerate(raw_events):
        try:
            cmd, product = _event_command(raw, index)
            key = _key(raw, cmd, index)
            if key in keys:
                if isinstance(cmd, CloseDay) and "id" not in raw:
                    raise InvalidCommand(f"day {cmd.day!r} is already closed by event {keys[key]}")
                raise InvalidCommand(f"id {key!r} is also event {keys[key]}'s")
            if isinstance(cmd, Purchase):
                if cmd.order in orders:
                    raise InvalidCommand(f"order {cmd.order!r} is also event {orders[cmd.order]}'s")
                orders[cmd.order] = index
        except InvalidCommand as exc:
            errors.append(f"event {index}: {exc}")
            continue
        keys[key] = index
        for name in ("member", "referrer", "leader"):
            code = getattr(cmd, name, None)
            if code:
                members[code] = None
        events.append(Event(index, key, str(raw["type"]), cmd, product))
    if errors:
        more = len(errors) - 1
        tail = f" (and {more} more invalid event{'s' if more > 1 else ''})" if more else ""
        raise ScenarioError(errors[0] + tail)
    return Scenario(params=params, events=tuple(events), members=tuple(members), models=models)


def _models(config: Mapping[str, Any]) -> ModelSet | None:
    """``config.models`` validated by the domain (unknown names and parameters, and the
    compliance guard unless ``config.compliance_override`` gives a reason)."""
    raw = config.get(_MODELS)
    override = config.get(_OVERRIDE)
    if override is not None and (not isinstance(override, str) or not override.strip()):
        raise ScenarioError(f"config: {_OVERRIDE} must be a non-empty reason")
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not all(
        p is None or isinstance(p, Mapping) for p in raw.values()
    ):
        raise ScenarioError(f"config: {_MODELS} must be an object of {{model: {{parameters}}}}")
    try:
        return ModelSet.from_config(
            {str(k): v for k, v in raw.items()}, compliance_override=override
        )
    except InvalidCommand as exc:
        raise ScenarioError(f"config: {exc}") from None


def _event_command(raw: Any, index: int) -> tuple[Command | GroupOp, str]:
    """One event's command (or group operation) and the product it buys."""
    if not isinstance(raw, Mapping):
        raise InvalidCommand("an event must be an object")
    kind = raw.get("type")
    if kind in GROUP_KINDS:
        op = group_op_from_payload(raw)
        return op, op.terms.product if isinstance(op, GroupOpenOp) else "default"
    if kind not in KINDS:
        kinds = ", ".join((*KINDS, *GROUP_KINDS))
        raise InvalidCommand(f"unknown event type {kind!r} (expected one of {kinds})")
    product = "default"
    if kind == "purchase" and "product" in raw:
        value = raw["product"]
        if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
            raise InvalidCommand("product must be a non-empty string")
        product = str(value).strip()
        raw = {k: v for k, v in raw.items() if k != "product"}
    cmd = command_from_payload(raw, default_order=f"order:{index}")
    _check_magnitude(cmd)
    return cmd, product


# ----------------------------------------------------------------------------- running


@contextmanager
def open_store(db_url: str | None) -> Iterator[Engine]:
    """An engine on ``db_url`` at the newest schema, or on a temporary SQLite file.

    The temporary file is the "throw-away store" of docs/RULES.md section 7: the same SQL code path
    as production, deleted when the block ends.  A URL given explicitly is migrated (as
    ``tokenmall db upgrade`` would) and kept.
    """
    if db_url is None:
        with (
            tempfile.TemporaryDirectory(prefix="tokenmall-scenario-") as tmp,
            open_store(f"sqlite:///{Path(tmp) / 'scenario.db'}") as engine,
        ):
            yield engine
        return
    engine = create_db_engine(db_url)
    try:
        migrate(engine)
        yield engine
    finally:
        engine.dispose()


def _stored_params(engine: Engine, code: str) -> TenantParams | None:
    with engine.connect() as conn:
        raw = conn.execute(
            select(schema.tenants.c.params).where(schema.tenants.c.code == code)
        ).scalar()
    return None if raw is None else TenantParams.from_json(raw)


def _tenant_for(ledger: Ledger, code: str, params: TenantParams) -> int:
    """The tenant to run on: created with the scenario's parameters, or reused if identical.

    Reusing a tenant whose parameters differ would silently give other numbers than the file
    describes, so it is refused.
    """
    check_tenant_code(code)
    stored = _stored_params(ledger.engine, code)
    if stored is None:
        return ledger.create_tenant(code, params)
    if stored != params:
        want, have = params.to_mapping(), stored.to_mapping()
        diff = ", ".join(f"{k}={have[k]} (file: {want[k]})" for k in want if have[k] != want[k])
        raise ScenarioError(
            f"tenant {code!r} exists with other parameters: {diff}; use another --tenant"
        )
    return ledger.tenant_id(code)


def run_on(
    engine: Engine,
    scenario: Scenario,
    *,
    tenant: str = DEFAULT_TENANT,
    chunk_size: int = CHUNK_SIZE,
    on_progress: Callable[[int, int], None] | None = None,
) -> ScenarioRun:
    """Run a validated scenario on a migrated store, resuming whatever was already committed."""
    if chunk_size < 1:
        raise ScenarioError("chunk size must be at least 1")
    ledger = Ledger(engine)
    tid = _tenant_for(ledger, tenant, scenario.params)
    if scenario.promotions:
        return _run_promotions(ledger, tid, scenario, on_progress)
    run = ScenarioRun()
    total = len(scenario.events)
    for start in range(0, total, chunk_size):
        chunk: Sequence[Event] = scenario.events[start : start + chunk_size]
        commands = [(e.key, e.command) for e in chunk if isinstance(e.command, Command)]
        outcomes = ledger.submit(tid, commands, stop_on_reject=True)
        for event, outcome in zip(chunk, outcomes, strict=False):
            if outcome.status == "rejected":
                raise ScenarioError(f"event {event.index}: {outcome.error}")
            if outcome.result is None:  # pragma: no cover - keys are unique per scenario
                raise ScenarioError(f"event {event.index}: the ledger recorded no result")
            run.steps.append(outcome.result)
            if outcome.status == "replayed":
                run.replayed += 1
            else:
                run.applied += 1
        if on_progress is not None:
            on_progress(min(start + chunk_size, total), total)
    found = ledger.members(tid, scenario.members)
    run.members = {code: found[code] for code in scenario.members if code in found}
    return run


def _run_promotions(
    ledger: Ledger,
    tid: int,
    scenario: Scenario,
    on_progress: Callable[[int, int], None] | None,
) -> ScenarioRun:
    """Event by event, with the models' and groups' state in memory (scenario.promotions):
    an event is several ledger commands (the engine's, then each model's rewards)."""
    promo = Promotions(
        ledger,
        tid,
        scenario.models or ModelSet(()),
        seeds_by_campaign(e.command for e in scenario.events),
    )
    run = ScenarioRun()
    total = len(scenario.events)
    for n, event in enumerate(scenario.events, 1):
        try:
            step = promo.run(event.key, event.command, event.product)
        except InvalidCommand as exc:
            raise ScenarioError(f"event {event.index}: {exc}") from None
        except TokenmallError as exc:  # refused by the ledger: not found, conflicting key
            raise ScenarioError(f"event {event.index}: {exc}") from None
        run.steps.append(step)
        if promo.applied:
            run.applied += 1
        else:
            run.replayed += 1
        if on_progress is not None and (n % CHUNK_SIZE == 0 or n == total):
            on_progress(n, total)
    found = ledger.members(tid, scenario.members)
    run.members = {code: found[code] for code in scenario.members if code in found}
    run.rewards = {code: promo.member_rewards(code) for code in run.members}
    run.groups = promo.groups_out()
    run.draws = promo.draws_out()
    return run


def run_scenario(
    scenario: Scenario,
    *,
    db_url: str | None = None,
    tenant: str = DEFAULT_TENANT,
    chunk_size: int = CHUNK_SIZE,
    on_progress: Callable[[int, int], None] | None = None,
) -> ScenarioRun:
    """Run ``scenario`` on ``db_url`` (reused, idempotently) or on a throw-away SQLite file."""
    with open_store(db_url) as engine:
        return run_on(
            engine, scenario, tenant=tenant, chunk_size=chunk_size, on_progress=on_progress
        )
