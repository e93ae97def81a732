"""A scenario run with marketing models and group buys (docs/RULES.md sections 4, 5 and 7).

The models' and groups' state lives here, in memory, for the length of the run; every value
they move goes through the real ledger, one command at a time, in the documented order:

* a purchase (or a confirmed group place) is first the EP engine's (model #0: ``Purchase``,
  or ``Settle`` of the held payment), then every enabled model in
  :data:`~tokenmall.domain.marketing.ORDER`; each model reward is a ``RewardGrant`` (SP from
  the platform's revenue) with the key ``reward:<order>:<model>:<beneficiary>:<step>``;
* a refund runs the models' take-backs (``RewardTakeBack``) first, then the ledger's
  ``Refund``; an activity winner's fund forfeits what is still locked;
* a day close is the ledger's close (dividends, exits), then the models' day hook (rebate);
* a group's moves run in the order the domain returns them: a place paid into an open group
  is a held payment (``Pay`` into escrow, not a purchase); confirmations settle at once, in
  join order (lottery: winning groups in fill order); a refunded place is the ledger's
  ``Refund`` of a payment never settled (no EP, no quota, no model reward); compensation,
  subsidy and commission are ``RewardGrant`` under the name ``groupbuy``.

Re-running on the same ``--db`` replays committed commands by their keys.  A draw without a
``seed`` in the file uses a fresh random seed, so such a file gives other winners on every
run (and a re-run on the same database is refused where the draw differs).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from tokenmall.domain import draw
from tokenmall.domain import groupbuy as gb
from tokenmall.domain.economy import (
    CloseDay,
    Command,
    Join,
    Pay,
    Purchase,
    Refund,
    RewardGrant,
    RewardTakeBack,
    Settle,
)
from tokenmall.domain.groupfund import ShoppingFund
from tokenmall.domain.marketing import (
    DayClosed,
    MemberJoined,
    ModelSet,
    OrderRefunded,
    OrderSettled,
    Reward,
    TaskDone,
    reward_key,
)
from tokenmall.errors import InvalidCommand
from tokenmall.scenario.events import (
    CampaignDrawOp,
    GroupCloseOp,
    GroupJoinOp,
    GroupOp,
    GroupOpenOp,
    TaskOp,
    place_ref,
)
from tokenmall.service.codec import dec
from tokenmall.service.ledger import Ledger

__all__ = ["GROUPBUY", "Promotions"]

GROUPBUY = "groupbuy"  # the name group compensation, subsidy, commission and funds pay under
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)  # the run's clock: events carry no time
_NO_DEADLINE = timedelta(days=3650)  # a group's deadline passes only by a group_close event
_GROUP_KEYS = ("state", "members", "winners", "commitment", "seed")


@dataclass(slots=True)
class _Order:
    """An order the models saw settle: what they need for its refunds."""

    member: str
    amount: Decimal
    refunded: Decimal = Decimal(0)


@dataclass(slots=True)
class Promotions:
    """One run's models and groups over a tenant of the ledger (see the module docstring)."""

    ledger: Ledger
    tenant_id: int
    models: ModelSet
    # per campaign, the seeds its campaign_draw events give, in file order (None: random)
    draw_seeds: dict[str, list[bytes | None]] = field(default_factory=dict)
    states: dict[str, Any] = field(default_factory=dict)
    links: dict[str, str | None] = field(default_factory=dict)
    orders: dict[str, _Order] = field(default_factory=dict)
    groups: dict[str, gb.Group] = field(default_factory=dict)
    campaigns: dict[str, gb.Campaign] = field(default_factory=dict)
    held: dict[str, str] = field(default_factory=dict)  # order ref of a held place -> group
    funds: dict[str, ShoppingFund] = field(default_factory=dict)  # by the winner's order
    rewards: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    clock: datetime = _EPOCH
    day: date | None = None  # the models' day of the last close
    step: dict[str, Any] | None = None  # the figures after the last command
    applied: bool = False  # whether the current event applied a command (not only replays)

    def __post_init__(self) -> None:
        self.states = self.models.new_states()

    # ------------------------------------------------------------------ plumbing

    def referrer_of(self, member: str) -> str | None:
        """The models' Context: the referral links, as the ledger keeps them."""
        return self.links.get(member)

    def _link(self, member: str, referrer: str | None) -> None:
        """Mirror the ledger's rule: a member keeps the first referrer it is given."""
        if self.links.get(member) is None:
            self.links[member] = referrer
        if referrer is not None:
            self.links.setdefault(referrer, None)

    def _apply(self, key: str, cmd: Command) -> dict[str, Any]:
        outcome = self.ledger.submit(self.tenant_id, [(key, cmd)])[0]
        outcome.raise_if_rejected()
        assert outcome.result is not None  # applied or replayed commands have a result
        self.step = outcome.result
        self.applied = self.applied or outcome.status == "applied"
        return outcome.result

    def _pay(self, rewards: Iterable[Reward]) -> None:
        for r in rewards:
            self._reward(r.ledger_key, r.beneficiary, r.amount, r.model)

    def _reward(self, key: str, member: str, amount: Decimal, model: str) -> None:
        if amount == 0:
            return
        cmd: Command = (
            RewardGrant(member, amount, model)
            if amount > 0
            else RewardTakeBack(member, -amount, model)
        )
        self._apply(key, cmd)
        mine = self.rewards.setdefault(member, {})
        mine[model] = mine.get(model, Decimal(0)) + amount

    def figures(self) -> dict[str, Any]:
        """The step of the event just run: the last command's figures, or the store's."""
        if self.step is None:
            self.step = self.ledger.figures(self.tenant_id)
        return self.step

    # ------------------------------------------------------------------ events

    def run(self, key: str, op: Command | GroupOp, product: str) -> dict[str, Any]:
        """Apply one event; return its step.  Raises the ledger's or the domain's refusal."""
        self.clock += timedelta(seconds=1)
        self.applied = False
        if isinstance(op, Purchase):
            self._apply(key, op)
            self._link(op.member, op.referrer)
            self._settled(op.order, op.member, op.amount, product)
        elif isinstance(op, Refund):
            self._refund(key, op)
        elif isinstance(op, CloseDay):
            self._apply(key, op)
            self.day = _next_day(op.day, self.day)
            self._pay(self.models.handle(self.states, DayClosed(self.day), self))
        elif isinstance(op, Join):
            self._apply(key, op)
            self._link(op.member, op.referrer)
            self._pay(self.models.handle(self.states, MemberJoined(op.member, op.referrer), self))
        elif isinstance(op, GroupOpenOp):
            self._group_open(key, op)
        elif isinstance(op, GroupJoinOp):
            self._group_join(key, op)
        elif isinstance(op, GroupCloseOp):
            self._moves(gb.close(self._group(op.group), self._group(op.group).deadline))
        elif isinstance(op, CampaignDrawOp):
            self._campaign_draw(op)
        elif isinstance(op, TaskOp):
            self._task(key, op)
        else:
            self._apply(key, op)
            member = getattr(op, "member", None)
            if isinstance(member, str):
                self._link(member, None)
        return self.figures()

    def _settled(self, order: str, member: str, amount: Decimal, product: str) -> None:
        self.orders[order] = _Order(member, amount)
        event = OrderSettled(order, member, amount, product, self.clock)
        self._pay(self.models.handle(self.states, event, self))

    def _refund(self, key: str, cmd: Refund) -> None:
        if cmd.order in self.held:
            raise InvalidCommand(
                f"order {cmd.order!r} is a place held in group {self.held[cmd.order]!r}: "
                "the group refunds it (group_close) or confirms it"
            )
        known = self.orders.get(cmd.order)
        if known is not None:
            left = known.amount - known.refunded
            amount = left if cmd.amount is None else cmd.amount
            if not 0 < amount <= left:
                raise InvalidCommand(f"order {cmd.order!r} has only {left} left to refund")
            total = known.refunded + amount
            event = OrderRefunded(cmd.order, key, total, known.amount)
            # the models' take-backs first, then the engine's own refund (R11)
            self._pay(self.models.handle(self.states, event, self))
            self._apply(key, cmd)
            known.refunded = total
            fund = self.funds.get(cmd.order)
            if fund is not None:
                fund.on_refund(total)
            return
        self._apply(key, cmd)

    # ------------------------------------------------------------------ group buys

    def _group(self, group_id: str) -> gb.Group:
        group = self.groups.get(group_id)
        if group is None:
            raise InvalidCommand(f"no group {group_id!r}")
        return group

    def _campaign(self, campaign_id: str, first_seed: bytes | None) -> gb.Campaign:
        """The lottery campaign, committed to its first draw's seed when first named."""
        campaign = self.campaigns.get(campaign_id)
        if campaign is not None:
            return campaign
        seeds = self.draw_seeds.get(campaign_id, [])
        planned = seeds[0] if seeds else None
        if first_seed is not None and planned is not None and first_seed != planned:
            raise InvalidCommand(
                f"seed differs from the seed of campaign {campaign_id!r}'s first draw"
            )
        seed = first_seed or planned or draw.new_seed()
        campaign = gb.Campaign.create(campaign_id, seed)
        self.campaigns[campaign_id] = campaign
        return campaign

    def _group_open(self, key: str, op: GroupOpenOp) -> None:
        if op.group in self.groups:
            raise InvalidCommand(f"group {op.group!r} is already open")
        lottery = op.terms.mode is gb.Mode.LOTTERY
        if lottery:
            assert op.terms.campaign is not None  # GroupTerms requires it
            self._campaign(op.terms.campaign, op.seed)
        own_seed = None
        if op.terms.mode in (gb.Mode.MERCHANT, gb.Mode.ACTIVITY):
            own_seed = op.seed or draw.new_seed()
        group, moves = gb.open_group(
            op.group,
            op.terms,
            op.leader,
            place_ref(op.group, op.leader),
            self.clock,
            seed=own_seed,
            deadline=self.clock + _NO_DEADLINE,
        )
        if op.referrer is not None:
            self._apply(f"{key}:join", Join(op.leader, op.referrer))
            self._link(op.leader, op.referrer)
        self.groups[op.group] = group
        self._moves(moves)

    def _group_join(self, key: str, op: GroupJoinOp) -> None:
        group = self._group(op.group)
        campaign = None
        if group.terms.mode is gb.Mode.LOTTERY:
            assert group.terms.campaign is not None
            campaign = self.campaigns[group.terms.campaign]
        moves = gb.join(
            group, op.member, place_ref(op.group, op.member), self.clock, campaign=campaign
        )
        if op.referrer is not None:
            self._apply(f"{key}:join", Join(op.member, op.referrer))
            self._link(op.member, op.referrer)
        self._moves(moves)

    def _campaign_draw(self, op: CampaignDrawOp) -> None:
        campaign = self.campaigns.get(op.campaign)
        if campaign is None:
            raise InvalidCommand(f"no lottery group of campaign {op.campaign!r} was opened")
        if op.seed is not None and op.seed != campaign.seed:
            raise InvalidCommand(
                f"seed is not the one campaign {op.campaign!r} committed to "
                f"(commitment {campaign.commitment})"
            )
        # the next draw's seed: the file's next campaign_draw of this campaign, or random
        seeds = self.draw_seeds.get(op.campaign, [])
        following = seeds[len(campaign.draws) + 1] if len(seeds) > len(campaign.draws) + 1 else None
        groups = [
            g
            for g in self.groups.values()
            if g.terms.mode is gb.Mode.LOTTERY and g.terms.campaign == op.campaign
        ]
        self._moves(
            gb.campaign_draw(campaign, groups, op.winners, self.clock, following or draw.new_seed())
        )

    def _moves(self, moves: Iterable[gb.Move]) -> None:
        for move in moves:
            if isinstance(move, gb.Hold):
                self._apply(move.key, Pay(move.ref, move.member, cny=move.amount))
                self._link(move.member, None)
                self.held[move.ref] = move.group
            elif isinstance(move, gb.Confirm):
                self.held.pop(move.ref, None)
                self._apply(move.key, Settle(move.ref))
                product = self.groups[move.group].terms.product
                self._settled(move.ref, move.member, move.amount, product)
            elif isinstance(move, gb.Refund):
                self.held.pop(move.ref, None)
                self._apply(move.key, Refund(move.ref))
            elif isinstance(move, gb.PaySP):
                step = move.key.rsplit(":", 1)[-1] if move.kind == "fund_release" else move.kind
                key = reward_key(move.group, GROUPBUY, move.beneficiary, step)
                self._reward(key, move.beneficiary, move.amount, GROUPBUY)
            else:
                self.funds[move.ref] = ShoppingFund.from_lock(move)

    def _task(self, key: str, op: TaskOp) -> None:
        day = _next_day("", self.day)  # during the day after the last close
        self._pay(self.models.handle(self.states, TaskDone(op.member, op.task, day), self))
        for fund in self.funds.values():
            if fund.member == op.member:
                self._moves(fund.on_task(op.task, day, op.ref or key))

    # ------------------------------------------------------------------ output

    def member_rewards(self, member: str) -> dict[str, str]:
        """Net SP paid to ``member`` per model that paid it something (``groupbuy`` too)."""
        return {name: dec(v) for name, v in sorted(self.rewards.get(member, {}).items())}

    def groups_out(self) -> dict[str, dict[str, Any]]:
        out = {}
        for gid, group in self.groups.items():
            pub = group.public()
            out[gid] = {k: pub[k] for k in ("state", "winners", "commitment", "seed")}
            # everyone who paid a place, in join order, losers and refunded places included
            # (a scenario has no cancel event: every place was paid and stayed until the end)
            out[gid]["members"] = [p.member for p in group.places]
        return {gid: {k: g[k] for k in _GROUP_KEYS} for gid, g in out.items()}

    def draws_out(self) -> dict[str, dict[str, Any]]:
        """Per campaign its latest draw (members: the groups that took part), or, before the
        first draw, the groups waiting for it and the commitment to its seed."""
        out: dict[str, dict[str, Any]] = {}
        for cid, campaign in self.campaigns.items():
            if campaign.draws:
                last = campaign.draws[-1]
                out[cid] = {
                    "state": "drawn",
                    "members": list(last.candidates),
                    "winners": list(last.winners),
                    "commitment": last.commitment,
                    "seed": last.seed.hex(),
                }
                continue
            waiting = [
                g.id
                for g in sorted(self.groups.values(), key=lambda g: g.fill_no or 0)
                if g.terms.campaign == cid and g.state is gb.GroupState.FULL
            ]
            out[cid] = {
                "state": "open",
                "members": waiting,
                "winners": [],
                "commitment": campaign.commitment,
                "seed": None,
            }
        return out


def _next_day(named: str, last: date | None) -> date:
    """The models' day of a close: the ``day`` it names if that is a date after the last
    close's, else the day after the last close (the first: the run's epoch)."""
    following = _EPOCH.date() if last is None else last + timedelta(days=1)
    try:
        day = date.fromisoformat(named)
    except ValueError:
        return following
    return day if last is None or day > last else following


def seeds_by_campaign(ops: Iterable[object]) -> dict[str, list[bytes | None]]:
    """Each campaign's draw seeds in file order: a campaign commits to its first draw's seed
    when its first group opens, and to the next one at each draw."""
    out: dict[str, list[bytes | None]] = {}
    for op in ops:
        if isinstance(op, CampaignDrawOp):
            out.setdefault(op.campaign, []).append(op.seed)
    return out
