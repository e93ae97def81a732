"""链动2+1 chain 2+1: an agent hands their first two recruits to their upline, then becomes a boss.

Rule (docs/RULES.md section 5).  Settling an order of an entry pack (``entry_products``) makes
the buyer an agent.  An agent's first ``hand_over`` [2] direct recruits are placed under the
agent's upline, who gets the direct bonus floor2(X x ``direct_bonus`` [0.10]) for them; after
``hand_over`` recruits the agent becomes a boss, detached from their upline; later recruits stay
under the boss.  On every entry order the nearest boss above the buyer (up the placement chain)
gets the team bonus floor2(X x ``team_ratio`` [0.10]) and that boss's own nearest boss (up the
original referral links, which are kept) the peer bonus floor2(X x ``peer_ratio`` [0.10]).
floor2(bonus x ``help_fund_ratio`` [0.20]) of every bonus is held until its beneficiary completes
``help_tasks`` [1] task.  Every move (agent, placement, boss, bonus, hold, release, take-back) is
appended to the state's log.

Decisions where the rules are silent (docs/MODELS.md):

* ``entry_products`` [none given] means every product is an entry pack;
* a recruit counts only if the referrer is already an agent; otherwise the buyer becomes an
  agent at the top (no upline, no direct bonus);
* an agent with no upline keeps the recruits it would hand over (and their direct bonus);
* the direct bonus is paid on the order that makes the buyer an agent; team and peer bonuses on
  every entry order;
* held help money of a member is released, all at once, when they complete ``help_tasks`` tasks
  while something is held; the count then starts again;
* a refund reverses money only (held money first, then what was paid); the structure (agents,
  placements, bosses) is history and stays, since undoing it would move later recruits too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from pydantic import Field

from tokenmall.domain.marketing.base import (
    Context,
    MarketingModel,
    OrderRefunded,
    OrderSettled,
    Params,
    Ratio,
    Reward,
    TaskDone,
)
from tokenmall.money import ZERO, floor_fen, mul

__all__ = ["Agent", "Bonus", "Chain21", "Chain21Params", "Chain21State", "LogEntry"]


class Chain21Params(Params):
    entry_products: frozenset[str] | None = None
    hand_over: int = Field(default=2, ge=0)
    direct_bonus: Ratio = Decimal("0.10")
    team_ratio: Ratio = Decimal("0.10")
    peer_ratio: Ratio = Decimal("0.10")
    help_fund_ratio: Ratio = Decimal("0.20")
    help_tasks: int = Field(default=1, ge=0)


@dataclass(slots=True)
class Agent:
    member: str
    recruiter: str | None  # the original referral link, never changed
    parent: str | None  # the current upline in the chain (None once a boss, or at the top)
    recruits: int = 0
    boss: bool = False
    tasks: int = 0  # tasks done since the last release of held money
    held: list[tuple[str, str]] = field(default_factory=list)  # (order, step) with money held


@dataclass(slots=True)
class Bonus:
    order: str
    beneficiary: str
    step: str  # direct | team | peer
    amount: Decimal  # the whole bonus
    held: Decimal  # still held (help fund)
    taken: Decimal = ZERO  # taken back by refunds, cumulative


@dataclass(frozen=True, slots=True)
class LogEntry:
    kind: str  # agent | placed | boss | bonus | held | released | taken_back
    member: str
    order: str = ""
    other: str = ""
    amount: Decimal = ZERO


@dataclass(slots=True)
class Chain21State:
    agents: dict[str, Agent] = field(default_factory=dict)
    orders: dict[str, Decimal] = field(default_factory=dict)
    bonuses: dict[str, list[Bonus]] = field(default_factory=dict)
    refunds: dict[str, list[str]] = field(default_factory=dict)
    log: list[LogEntry] = field(default_factory=list)


class Chain21(MarketingModel[Chain21Params, Chain21State]):
    name = "chain21"
    params_schema = Chain21Params

    def new_state(self) -> Chain21State:
        return Chain21State()

    def levels(self) -> None:
        return None  # the nearest boss may be any number of levels up

    def on_settled(self, state: Chain21State, event: OrderSettled, ctx: Context) -> list[Reward]:
        entry = self.params.entry_products
        if (entry is not None and event.product not in entry) or event.order in state.orders:
            return []
        state.orders[event.order] = event.amount
        out: list[Reward] = []
        if event.member not in state.agents:
            direct_to = self._become_agent(state, event, ctx)
            if direct_to is not None:
                out += self._bonus(state, event, direct_to, "direct", self.params.direct_bonus)
        boss = self._nearest_boss(state, state.agents[event.member].parent, by_parent=True)
        if boss is not None:
            out += self._bonus(state, event, boss, "team", self.params.team_ratio)
            peer = self._nearest_boss(state, state.agents[boss].recruiter, by_parent=False)
            if peer is not None:
                out += self._bonus(state, event, peer, "peer", self.params.peer_ratio)
        return out

    def _become_agent(self, state: Chain21State, event: OrderSettled, ctx: Context) -> str | None:
        """Place the new agent; return who gets the direct bonus for them (None: nobody)."""
        member = event.member
        ref = ctx.referrer_of(member)
        recruiter = state.agents.get(ref) if ref is not None and ref != member else None
        state.log.append(
            LogEntry("agent", member, event.order, recruiter.member if recruiter else "")
        )
        if recruiter is None:
            state.agents[member] = Agent(member, None, None)
            return None
        handing_over = not recruiter.boss and recruiter.recruits < self.params.hand_over
        parent = recruiter.parent if handing_over and recruiter.parent else recruiter.member
        state.agents[member] = Agent(member, recruiter.member, parent)
        state.log.append(LogEntry("placed", member, event.order, parent))
        recruiter.recruits += 1
        if not recruiter.boss and recruiter.recruits >= self.params.hand_over:
            recruiter.boss = True
            state.log.append(
                LogEntry("boss", recruiter.member, event.order, recruiter.parent or "")
            )
            recruiter.parent = None
        return parent

    @staticmethod
    def _nearest_boss(state: Chain21State, start: str | None, *, by_parent: bool) -> str | None:
        seen: set[str] = set()
        who = start
        while who is not None and who not in seen:
            seen.add(who)
            agent = state.agents.get(who)
            if agent is None:
                return None
            if agent.boss:
                return who
            who = agent.parent if by_parent else agent.recruiter
        return None

    def _bonus(
        self, state: Chain21State, event: OrderSettled, to: str, step: str, rate: Decimal
    ) -> list[Reward]:
        amount = floor_fen(mul(event.amount, rate))
        if amount <= 0:
            return []
        held = (
            floor_fen(mul(amount, self.params.help_fund_ratio)) if self.params.help_tasks else ZERO
        )
        state.bonuses.setdefault(event.order, []).append(Bonus(event.order, to, step, amount, held))
        state.log.append(LogEntry("bonus", to, event.order, step, amount))
        if held > 0:
            state.agents[to].held.append((event.order, step))
            state.log.append(LogEntry("held", to, event.order, step, held))
        paid = amount - held
        return [Reward(event.order, self.name, to, step, paid)] if paid > 0 else []

    def on_task_done(self, state: Chain21State, event: TaskDone, ctx: Context) -> list[Reward]:
        agent = state.agents.get(event.member)
        if agent is None or not agent.held:
            return []
        agent.tasks += 1
        if agent.tasks < self.params.help_tasks:
            return []
        out = []
        for order, step in agent.held:
            for b in state.bonuses[order]:
                if b.beneficiary == agent.member and b.step == step and b.held > 0:
                    out.append(Reward(order, self.name, agent.member, f"{step}:help", b.held))
                    state.log.append(LogEntry("released", agent.member, order, step, b.held))
                    b.held = ZERO
        agent.held.clear()
        agent.tasks = 0
        return out

    def on_refunded(self, state: Chain21State, event: OrderRefunded, ctx: Context) -> list[Reward]:
        if event.order not in state.orders:
            return []
        seen = state.refunds.setdefault(event.order, [])
        if event.refund_id in seen:
            return []
        seen.append(event.refund_id)
        out = []
        for b in state.bonuses.get(event.order, []):
            target = event.part(b.amount)
            delta = target - b.taken
            if delta <= 0:
                continue
            b.taken = target
            from_held = min(delta, b.held)  # never paid, so simply no longer owed
            b.held -= from_held
            paid_back = delta - from_held
            state.log.append(LogEntry("taken_back", b.beneficiary, event.order, b.step, delta))
            if paid_back > 0:
                step = f"{b.step}:refund:{event.refund_id}"
                out.append(Reward(event.order, self.name, b.beneficiary, step, -paid_back))
        return out
