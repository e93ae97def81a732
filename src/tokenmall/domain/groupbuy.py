"""Group buys (拼团) as a pure state machine: the rules of docs/RULES.md section 4.

Why pure: a group's life (open, join, cancel, fill, draw, expire) decides who pays, who is
refunded and who is compensated; the store, ledger and events only carry those decisions out.
So every operation here validates first, then mutates one plain :class:`Group` (or
:class:`Campaign`) dataclass that a store persists as rows, and returns the explicit list of
*moves* the wiring must execute, each with an idempotency key:

* :class:`Hold` - a payment taken into escrow (not a purchase yet);
* :class:`Confirm` - a place becomes an ordinary order (every model applies to it);
* :class:`Refund` - a held payment goes back in full (it never counted as a purchase);
* :class:`PaySP` - compensation (lottery), subsidy or commission (merchant), fund release
  (activity), in SP, whole fen;
* :class:`LockFund` - an activity winner's locked shopping fund (see :mod:`.groupfund`).

Time is always passed in (``at``); nothing here reads a clock.  A group in a terminal state
answers a repeated ``close`` with no moves, so replays never refund or compensate twice.

Decisions where the rules are silent (also in docs/MODELS.md):

* a group has at least 2 places; merchant and activity groups have 1 <= winners <= size;
* a member may hold one place per group; a member who cancelled may join again;
* the leader may cancel only while alone in the group (the group then fails and is refunded):
  after others joined, the group, its draw and the commission are tied to the leader;
* ``join`` at or after the deadline is refused; ``close`` before the deadline is refused;
* a merchant commission is emitted as a :class:`PaySP` whose ``after_settled`` lists the
  winners' order refs: the wiring pays it once all of them settle, and drops it if any of them
  is refunded in full before settling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from tokenmall.domain import draw
from tokenmall.errors import InvalidCommand
from tokenmall.money import ZERO, floor_fen, mul

__all__ = [
    "DEFAULT_DEADLINE",
    "Campaign",
    "CampaignDraw",
    "Confirm",
    "Group",
    "GroupState",
    "GroupTerms",
    "Hold",
    "LockFund",
    "Mode",
    "Move",
    "PaySP",
    "Place",
    "PlaceStatus",
    "Refund",
    "campaign_draw",
    "cancel",
    "close",
    "join",
    "open_group",
]

DEFAULT_DEADLINE = timedelta(hours=24)


class Mode(StrEnum):
    MULTI = "multi"  # 多人团 G1
    LOTTERY = "lottery"  # 抽奖团 G2
    MERCHANT = "merchant"  # 拼商团 G3
    ACTIVITY = "activity"  # 活动团 G4


class GroupState(StrEnum):
    OPEN = "open"
    FULL = "full"  # a lottery group waiting for its campaign's draw
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    LOST = "lost"


class PlaceStatus(StrEnum):
    HELD = "held"
    CONFIRMED = "confirmed"
    REFUNDED = "refunded"


SPKind = Literal["compensation", "subsidy", "commission", "fund_release"]


@dataclass(frozen=True, slots=True)
class Hold:
    group: str
    ref: str
    member: str
    amount: Decimal
    key: str


@dataclass(frozen=True, slots=True)
class Confirm:
    group: str
    ref: str
    member: str
    amount: Decimal
    key: str


@dataclass(frozen=True, slots=True)
class Refund:
    group: str
    ref: str
    member: str
    amount: Decimal
    key: str
    reason: str
    full: bool = True


@dataclass(frozen=True, slots=True)
class PaySP:
    group: str
    beneficiary: str
    amount: Decimal
    kind: SPKind
    key: str
    # order refs that must all settle before this is paid (a merchant commission); () = now
    after_settled: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LockFund:
    group: str
    ref: str
    member: str
    amount: Decimal
    steps: int
    daily_steps: int
    key: str


Move = Hold | Confirm | Refund | PaySP | LockFund


@dataclass(frozen=True, slots=True)
class GroupTerms:
    """What the operator sets for a group; immutable once the group is open."""

    mode: Mode
    product: str
    price: Decimal
    size: int
    winners: int = 1  # merchant and activity
    campaign: str | None = None  # lottery (required) and activity (optional)
    compensation: Decimal = ZERO  # lottery: SP to each member of a losing group
    subsidy: Decimal = ZERO  # merchant: SP to each member who did not win
    commission: Decimal = ZERO  # merchant: fixed SP to the leader
    commission_ratio: Decimal | None = None  # merchant: instead, ratio x price x size
    steps: int = 10  # activity: steps of the shopping fund
    daily_steps: int = 1  # activity: at most this many steps released a day

    def __post_init__(self) -> None:
        if self.size < 2:
            raise InvalidCommand(f"a group needs at least 2 places, got {self.size}")
        if self.price <= 0 or self.price != floor_fen(self.price):
            raise InvalidCommand(
                f"the group price must be a whole-fen amount > 0, got {self.price}"
            )
        for name in ("compensation", "subsidy", "commission"):
            v: Decimal = getattr(self, name)
            if v < 0 or v != floor_fen(v):
                raise InvalidCommand(f"{name} must be a whole-fen amount >= 0, got {v}")
        if self.commission_ratio is not None and not 0 <= self.commission_ratio <= 1:
            raise InvalidCommand(
                f"commission_ratio must be between 0 and 1, got {self.commission_ratio}"
            )
        if self.mode in (Mode.MERCHANT, Mode.ACTIVITY) and not 1 <= self.winners <= self.size:
            raise InvalidCommand(
                f"winners must be between 1 and the size {self.size}, got {self.winners}"
            )
        if self.mode is Mode.LOTTERY and not self.campaign:
            raise InvalidCommand("a lottery group belongs to a campaign")
        if self.steps < 1 or self.daily_steps < 1:
            raise InvalidCommand("steps and daily_steps must be at least 1")

    def commission_amount(self) -> Decimal:
        """The leader's commission: the fixed amount, or floor2(ratio x price x size)."""
        if self.commission_ratio is not None:
            return floor_fen(mul(self.commission_ratio, self.price, Decimal(self.size)))
        return self.commission


@dataclass(slots=True)
class Place:
    """One paid place, in join order (``no`` counts from 1 and is never reused)."""

    no: int
    member: str
    ref: str  # the payment / order reference; becomes the order if confirmed
    amount: Decimal
    joined_at: datetime
    status: PlaceStatus = PlaceStatus.HELD
    reason: str = ""  # why it was refunded


@dataclass(frozen=True, slots=True)
class DrawResult:
    candidates: tuple[str, ...]
    k: int
    winners: tuple[str, ...]


@dataclass(slots=True)
class Group:
    id: str
    terms: GroupTerms
    leader: str
    opened_at: datetime
    deadline: datetime
    seed: bytes | None  # secret until the draw (merchant, activity); None otherwise
    commitment: str | None
    state: GroupState = GroupState.OPEN
    places: list[Place] = field(default_factory=list)
    filled_at: datetime | None = None
    fill_no: int | None = None  # lottery: order of filling within the campaign
    result: DrawResult | None = None

    def held(self) -> list[Place]:
        return [p for p in self.places if p.status is PlaceStatus.HELD]

    def active_place(self, member: str) -> Place | None:
        for p in self.places:
            if p.member == member and p.status is not PlaceStatus.REFUNDED:
                return p
        return None

    def public(self) -> dict[str, Any]:
        """What anyone may see: the seed only once the draw has revealed it."""
        return {
            "id": self.id,
            "state": self.state.value,
            "members": [p.member for p in self.places if p.status is not PlaceStatus.REFUNDED],
            "winners": list(self.result.winners) if self.result else [],
            "commitment": self.commitment,
            "seed": self.seed.hex() if self.result and self.seed else None,
        }


@dataclass(frozen=True, slots=True)
class CampaignDraw:
    no: int
    at: datetime
    commitment: str
    seed: bytes
    candidates: tuple[str, ...]
    k: int
    winners: tuple[str, ...]

    def public(self) -> dict[str, Any]:
        return {
            "commitment": self.commitment,
            "seed": self.seed.hex(),
            "candidates": list(self.candidates),
            "k": self.k,
            "winners": list(self.winners),
        }


@dataclass(slots=True)
class Campaign:
    """A lottery campaign: the committed seed of its next draw and the draws so far."""

    id: str
    seed: bytes
    commitment: str
    fills: int = 0
    draws: list[CampaignDraw] = field(default_factory=list)

    @classmethod
    def create(cls, campaign_id: str, seed: bytes) -> Campaign:
        return cls(id=campaign_id, seed=seed, commitment=draw.commitment(seed))


def _key(group: str, what: str, ref: str) -> str:
    return f"group:{group}:{what}:{ref}"


def open_group(
    group_id: str,
    terms: GroupTerms,
    leader: str,
    ref: str,
    at: datetime,
    *,
    seed: bytes | None = None,
    deadline: datetime | None = None,
) -> tuple[Group, list[Move]]:
    """A new open group whose leader has paid the first place (held in escrow)."""
    drawn = terms.mode in (Mode.MERCHANT, Mode.ACTIVITY)
    if drawn and (seed is None or len(seed) != draw.SEED_BYTES):
        raise InvalidCommand(f"a {terms.mode} group needs a {draw.SEED_BYTES}-byte seed")
    if not drawn and seed is not None:
        raise InvalidCommand(f"a {terms.mode} group has no draw of its own, so no seed")
    end = deadline if deadline is not None else at + DEFAULT_DEADLINE
    if end <= at:
        raise InvalidCommand("the deadline must be after the opening")
    group = Group(
        id=group_id,
        terms=terms,
        leader=leader,
        opened_at=at,
        deadline=end,
        seed=seed,
        commitment=draw.commitment(seed) if seed is not None else None,
    )
    return group, [_add_place(group, leader, ref, at)]


def _add_place(group: Group, member: str, ref: str, at: datetime) -> Hold:
    place = Place(len(group.places) + 1, member, ref, group.terms.price, at)
    group.places.append(place)
    return Hold(group.id, ref, member, place.amount, _key(group.id, "hold", ref))


def join(
    group: Group, member: str, ref: str, at: datetime, *, campaign: Campaign | None = None
) -> list[Move]:
    """``member`` pays a place; the group fills (and succeeds, waits or draws) on the last one."""
    if group.state is not GroupState.OPEN:
        raise InvalidCommand(f"group {group.id} is {group.state}, not open")
    if at >= group.deadline:
        raise InvalidCommand(f"group {group.id} is past its deadline")
    if group.active_place(member) is not None:
        raise InvalidCommand(f"{member} is already in group {group.id}")
    if any(p.ref == ref for p in group.places):
        raise InvalidCommand(f"payment {ref} is already a place of group {group.id}")
    will_fill = len(group.held()) + 1 == group.terms.size
    lottery = group.terms.mode is Mode.LOTTERY
    if will_fill and lottery and (campaign is None or campaign.id != group.terms.campaign):
        raise InvalidCommand(f"filling group {group.id} needs campaign {group.terms.campaign}")
    moves: list[Move] = [_add_place(group, member, ref, at)]
    if will_fill:
        moves += _fill(group, at, campaign)
    return moves


def _fill(group: Group, at: datetime, campaign: Campaign | None) -> list[Move]:
    group.state = GroupState.FULL
    group.filled_at = at
    mode = group.terms.mode
    if mode is Mode.MULTI:
        group.state = GroupState.SUCCEEDED
        return [_confirm(group, p) for p in group.held()]
    if mode is Mode.LOTTERY:
        assert campaign is not None  # checked by join before anything changed
        campaign.fills += 1
        group.fill_no = campaign.fills
        return []
    return _draw_members(group)


def _confirm(group: Group, place: Place) -> Confirm:
    place.status = PlaceStatus.CONFIRMED
    key = _key(group.id, "confirm", place.ref)
    return Confirm(group.id, place.ref, place.member, place.amount, key)


def _refund(group: Group, place: Place, reason: str) -> Refund:
    place.status = PlaceStatus.REFUNDED
    place.reason = reason
    key = _key(group.id, "refund", place.ref)
    return Refund(group.id, place.ref, place.member, place.amount, key, reason)


def _draw_members(group: Group) -> list[Move]:
    """Merchant and activity groups draw their winners among members as soon as they fill."""
    assert group.seed is not None  # open_group refuses these modes without a seed
    terms = group.terms
    held = group.held()
    candidates = tuple(p.member for p in held)
    won = draw.winners(group.seed, candidates, terms.winners)
    group.result = DrawResult(candidates, terms.winners, tuple(won))
    group.state = GroupState.SUCCEEDED
    winners_set = set(won)
    moves: list[Move] = []
    winner_refs: list[str] = []
    for p in held:  # confirmations first, in join order
        if p.member in winners_set:
            moves.append(_confirm(group, p))
            winner_refs.append(p.ref)
            if terms.mode is Mode.ACTIVITY:
                key = _key(group.id, "fund", p.ref)
                lock = LockFund(
                    group.id, p.ref, p.member, p.amount, terms.steps, terms.daily_steps, key
                )
                moves.append(lock)
    for p in held:
        if p.member in winners_set:
            continue
        moves.append(_refund(group, p, "not drawn"))
        if terms.mode is Mode.MERCHANT and terms.subsidy > 0:
            key = _key(group.id, "subsidy", p.ref)
            moves.append(PaySP(group.id, p.member, terms.subsidy, "subsidy", key))
    commission = terms.commission_amount() if terms.mode is Mode.MERCHANT else ZERO
    if commission > 0:
        key = _key(group.id, "commission", group.leader)
        moves.append(
            PaySP(group.id, group.leader, commission, "commission", key, tuple(winner_refs))
        )
    return moves


def cancel(group: Group, member: str, at: datetime) -> list[Move]:
    """A member leaves an open group; their payment is refunded at once and the place freed."""
    if group.state is not GroupState.OPEN:
        raise InvalidCommand(f"group {group.id} is {group.state}: too late to cancel a place")
    place = group.active_place(member)
    if place is None:
        raise InvalidCommand(f"{member} has no place in group {group.id}")
    if member == group.leader:
        if len(group.held()) > 1:
            raise InvalidCommand(
                f"the leader of group {group.id} cannot cancel once others have joined"
            )
        group.state = GroupState.FAILED
        return [_refund(group, place, "leader cancelled")]
    return [_refund(group, place, "cancelled")]


def close(group: Group, at: datetime) -> list[Move]:
    """The deadline has passed: a group that is still open fails and every place is refunded.

    A group already full, drawn or closed is left alone (no moves), so a repeated close is safe.
    An expired group is never treated as succeeded and gets no compensation.
    """
    if at < group.deadline:
        raise InvalidCommand(f"group {group.id} is not past its deadline yet")
    if group.state is not GroupState.OPEN:
        return []
    group.state = GroupState.FAILED
    return [_refund(group, p, "expired") for p in group.held()]


def campaign_draw(
    campaign: Campaign, groups: list[Group], k: int, at: datetime, next_seed: bytes
) -> list[Move]:
    """A lottery campaign's draw over every group of it that filled since the last draw.

    ``groups`` may hold any of the campaign's groups; only full ones take part, ordered by
    when they filled.  Winning groups' places are confirmed (groups in fill order, members in
    join order); every other full group is ``lost``: its members are refunded in full and get
    the group's compensation.  The seed is then revealed in the campaign's history and replaced
    by ``next_seed`` for the next draw.
    """
    if len(next_seed) != draw.SEED_BYTES or next_seed == campaign.seed:
        raise InvalidCommand(f"the next draw needs a fresh {draw.SEED_BYTES}-byte seed")
    foreign = [
        g.id for g in groups if g.terms.campaign != campaign.id or g.terms.mode is not Mode.LOTTERY
    ]
    if foreign:
        raise InvalidCommand(f"not lottery groups of campaign {campaign.id}: {', '.join(foreign)}")
    full = [g for g in groups if g.state is GroupState.FULL]
    entered = sorted(full, key=lambda g: g.fill_no or 0)
    candidates = tuple(g.id for g in entered)
    ranked = tuple(draw.winners(campaign.seed, candidates, k))
    won = set(ranked)
    moves: list[Move] = []
    for g in entered:
        if g.id in won:
            g.state = GroupState.SUCCEEDED
            moves += [_confirm(g, p) for p in g.held()]
    for g in entered:
        if g.id in won:
            continue
        g.state = GroupState.LOST
        for p in g.held():
            moves.append(_refund(g, p, "group lost the draw"))
            if g.terms.compensation > 0:
                key = _key(g.id, "compensation", p.ref)
                moves.append(PaySP(g.id, p.member, g.terms.compensation, "compensation", key))
    record = CampaignDraw(
        no=len(campaign.draws) + 1,
        at=at,
        commitment=campaign.commitment,
        seed=campaign.seed,
        candidates=candidates,
        k=k,
        winners=ranked,
    )
    campaign.draws.append(record)
    campaign.seed = next_seed
    campaign.commitment = draw.commitment(next_seed)
    return moves
