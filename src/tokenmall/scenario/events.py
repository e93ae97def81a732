"""The scenario events that are not one ledger command: group buys, campaign draws and tasks
(docs/RULES.md section 7), validated before anything runs.

A purchase or a sale is one command of the ledger (``service.codec``); a group event is a
step of the group-buy state machine (``domain.groupbuy``) that the run turns into several
commands (a held payment, confirmations, refunds, SP compensation), so it is parsed here into
a small frozen operation instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tokenmall.domain import draw
from tokenmall.domain.groupbuy import GroupTerms, Mode
from tokenmall.domain.groupfund import TASKS
from tokenmall.errors import InvalidCommand
from tokenmall.money import parse_amount

__all__ = [
    "GROUP_KINDS",
    "CampaignDrawOp",
    "GroupCloseOp",
    "GroupJoinOp",
    "GroupOp",
    "GroupOpenOp",
    "TaskOp",
    "group_op_from_payload",
    "place_ref",
]

GROUP_KINDS = ("group_open", "group_join", "group_close", "campaign_draw", "task")
_MAX_CODE = 64
# money fields of group_open and the modes that have them
_MODE_MONEY = {
    "compensation": (Mode.LOTTERY,),
    "subsidy": (Mode.MERCHANT,),
    "commission": (Mode.MERCHANT,),
    "commission_ratio": (Mode.MERCHANT,),
}
_FIELDS: dict[str, frozenset[str]] = {
    "group_open": frozenset(
        {
            "group",
            "mode",
            "product",
            "price",
            "size",
            "winners",
            "leader",
            "referrer",
            "campaign",
            "seed",
            "steps",
            "daily_steps",
            *_MODE_MONEY,
        }
    ),
    "group_join": frozenset({"group", "member", "referrer"}),
    "group_close": frozenset({"group"}),
    "campaign_draw": frozenset({"campaign", "winners", "seed"}),
    "task": frozenset({"member", "task", "ref"}),
}


@dataclass(frozen=True, slots=True)
class GroupOpenOp:
    group: str
    terms: GroupTerms
    leader: str
    referrer: str | None
    seed: bytes | None  # merchant/activity: the group's draw; lottery: the campaign's first


@dataclass(frozen=True, slots=True)
class GroupJoinOp:
    group: str
    member: str
    referrer: str | None


@dataclass(frozen=True, slots=True)
class GroupCloseOp:
    group: str


@dataclass(frozen=True, slots=True)
class CampaignDrawOp:
    campaign: str
    winners: int
    seed: bytes | None


@dataclass(frozen=True, slots=True)
class TaskOp:
    """A task done by a member (invite, sign_in, share): it releases held chain21 help money
    and one step of the member's activity shopping funds.  ``ref`` names the task (a replayed
    ref releases nothing); by default the event's own key."""

    member: str
    task: str
    ref: str | None


GroupOp = GroupOpenOp | GroupJoinOp | GroupCloseOp | CampaignDrawOp | TaskOp


def place_ref(group: str, member: str) -> str:
    """The order reference of ``member``'s place in ``group`` (what a ``refund`` names)."""
    return f"{group}:{member}"


def _code(ev: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    v = ev.get(name)
    if v is None:
        if required:
            raise InvalidCommand(f"missing field {name!r}")
        return None
    if not isinstance(v, str | int) or isinstance(v, bool) or str(v).strip() == "":
        raise InvalidCommand(f"{name} must be a non-empty string")
    s = str(v).strip()
    if len(s) > _MAX_CODE:
        raise InvalidCommand(f"{name} is longer than {_MAX_CODE} characters")
    return s


def _int(ev: Mapping[str, Any], name: str, default: int | None = None) -> int:
    v = ev.get(name)
    if v is None:
        if default is None:
            raise InvalidCommand(f"missing field {name!r}")
        return default
    if isinstance(v, bool) or not isinstance(v, int | str | Decimal):
        raise InvalidCommand(f"{name} must be a whole number")
    try:
        d = Decimal(str(v).strip())
    except ArithmeticError:
        raise InvalidCommand(f"{name} must be a whole number, got {v!r}") from None
    if not d.is_finite() or d != d.to_integral_value() or not 0 <= d <= 1_000_000:
        raise InvalidCommand(f"{name} must be a whole number from 0 to 1000000, got {v!r}")
    return int(d)


def _money(ev: Mapping[str, Any], name: str) -> Decimal | None:
    if ev.get(name) is None:
        return None
    try:
        return parse_amount(ev[name], what=name)
    except ValueError as exc:
        raise InvalidCommand(str(exc)) from None


def _seed(ev: Mapping[str, Any]) -> bytes | None:
    raw = ev.get("seed")
    if raw is None:
        return None
    text = str(raw).strip() if isinstance(raw, str) else ""
    try:
        seed = bytes.fromhex(text)
    except ValueError:
        seed = b""
    if len(seed) != draw.SEED_BYTES or len(text) != 2 * draw.SEED_BYTES:
        raise InvalidCommand(f"seed must be {2 * draw.SEED_BYTES} hexadecimal characters")
    return seed


def _group_open(ev: Mapping[str, Any]) -> GroupOpenOp:
    try:
        mode = Mode(str(ev.get("mode")))
    except ValueError:
        modes = ", ".join(m.value for m in Mode)
        raise InvalidCommand(f"mode must be one of {modes}, got {ev.get('mode')!r}") from None
    for name, modes_with in _MODE_MONEY.items():
        if ev.get(name) is not None and mode not in modes_with:
            raise InvalidCommand(f"a {mode} group has no {name}")
    campaign = _code(ev, "campaign", required=mode is Mode.LOTTERY)
    if campaign is not None and mode not in (Mode.LOTTERY, Mode.ACTIVITY):
        raise InvalidCommand(f"a {mode} group belongs to no campaign")
    seed = _seed(ev)
    if seed is not None and mode is Mode.MULTI:
        raise InvalidCommand("a multi group has no draw, so no seed")
    price = _money(ev, "price")
    if price is None:
        raise InvalidCommand("missing field 'price'")
    drawn = mode in (Mode.MERCHANT, Mode.ACTIVITY)
    ratio = _money(ev, "commission_ratio")
    if ratio is not None and ev.get("commission") is not None:
        raise InvalidCommand("give commission or commission_ratio, not both")
    terms = GroupTerms(
        mode=mode,
        product=_code(ev, "product", required=False) or "default",
        price=price,
        size=_int(ev, "size"),
        winners=_int(ev, "winners") if drawn else 1,
        campaign=campaign,
        compensation=_money(ev, "compensation") or Decimal(0),
        subsidy=_money(ev, "subsidy") or Decimal(0),
        commission=_money(ev, "commission") or Decimal(0),
        commission_ratio=ratio,
        steps=_int(ev, "steps", 10),
        daily_steps=_int(ev, "daily_steps", 1),
    )
    group = _code(ev, "group") or ""
    leader = _code(ev, "leader") or ""
    referrer = _code(ev, "referrer", required=False)
    if referrer == leader:
        raise InvalidCommand("a member cannot refer themselves")
    if len(place_ref(group, leader)) > _MAX_CODE:
        raise InvalidCommand(f"group and member together are longer than {_MAX_CODE} characters")
    return GroupOpenOp(group, terms, leader, referrer, seed)


def group_op_from_payload(ev: Mapping[str, Any]) -> GroupOp:
    """Parse one group event (its ``type`` one of :data:`GROUP_KINDS`)."""
    kind = str(ev.get("type"))
    extra = sorted(set(ev) - _FIELDS[kind] - {"type", "id"})
    if extra:
        raise InvalidCommand(f"unexpected field(s) for {kind}: {', '.join(extra)}")
    if kind == "group_open":
        return _group_open(ev)
    if kind == "group_join":
        group, member = _code(ev, "group") or "", _code(ev, "member") or ""
        referrer = _code(ev, "referrer", required=False)
        if referrer == member:
            raise InvalidCommand("a member cannot refer themselves")
        if len(place_ref(group, member)) > _MAX_CODE:
            raise InvalidCommand(
                f"group and member together are longer than {_MAX_CODE} characters"
            )
        return GroupJoinOp(group, member, referrer)
    if kind == "group_close":
        return GroupCloseOp(_code(ev, "group") or "")
    if kind == "campaign_draw":
        return CampaignDrawOp(_code(ev, "campaign") or "", _int(ev, "winners"), _seed(ev))
    task = _code(ev, "task") or ""
    if task not in TASKS:
        raise InvalidCommand(f"task must be one of {', '.join(sorted(TASKS))}, got {task!r}")
    return TaskOp(_code(ev, "member") or "", task, _code(ev, "ref", required=False))
