"""The marketing models in the service, as a Hypothesis state machine (every model on).

Random settled orders (the order flow's commands and events: the engine's ``Purchase``, then
``OrderSettled`` through the composition root's handler table), partial and full refunds,
day closes and replayed facts.  The same events also run through the pure domain
(:class:`~tokenmall.domain.marketing.ModelSet` in memory, as the scenario runner does), so the
service's persisted state must give exactly the domain's rewards.  After every step: the
books balance (each asset sums to zero, SP backed 1:1), no reward is paid twice and no
take-back exceeds what was paid; after refunding every order, every model's net is zero.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections import defaultdict
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, select

from tokenmall import bootstrap
from tokenmall.domain import marketing as dm
from tokenmall.domain.economy import CloseDay, Purchase, Refund
from tokenmall.domain.events import DayClosed, OrderRefunded, OrderSettled
from tokenmall.domain.marketing import ModelSet
from tokenmall.money import CNY_PLACES, floor_fen, from_atoms
from tokenmall.service import accounting, marketing, members
from tokenmall.service.ledger import Ledger
from tokenmall.service.messagebus import EventBus
from tokenmall.service.uow import Store
from tokenmall.store import schema as s

D = Decimal
OVERRIDE = "stateful test: every model on"
CONFIG: dict[str, dict[str, Any]] = {
    "distribution": {"ratios": ["0.10", "0.05"], "freeze_days": 2},
    "refer3": {},
    "chain21": {"help_tasks": 0},
    "queue_free": {"rate_back": "0.20", "money_max": "150"},
    "rebate": {"release_rate": "0.05"},
}
# a referral tree: m0 <- m1 <- m3, m0 <- m2 <- m4, m1 <- m5
LINKS: dict[str, str | None] = {
    "m0": None,
    "m1": "m0",
    "m2": "m0",
    "m3": "m1",
    "m4": "m2",
    "m5": "m1",
}
T0 = 1_900_000_000.0


class _Ref:
    """The pure domain's run of the same events (the scenario runner's way)."""

    def __init__(self) -> None:
        self.models = ModelSet.from_config(CONFIG, compliance_override=OVERRIDE)
        self.states = self.models.new_states()
        self.paid: dict[tuple[str, str, str, str], Decimal] = {}

    def referrer_of(self, member: str) -> str | None:
        return LINKS.get(member)

    def run(self, event: dm.Event) -> None:
        for r in self.models.handle(self.states, event, self):
            if r.amount != 0:
                assert r.key not in self.paid
                self.paid[r.key] = r.amount


class MarketingMachine(RuleBasedStateMachine):
    engine: Engine

    orders = Bundle("orders")

    def __init__(self) -> None:
        super().__init__()
        self.store = Store(self.engine, bus=EventBus(bootstrap.event_handlers()))
        code = f"t-{uuid.uuid4().hex[:12]}"
        self.tid = Ledger(self.engine).create_tenant(code)
        self.ref = _Ref()
        self.amounts: dict[str, Decimal] = {}
        self.refunded: dict[str, Decimal] = defaultdict(Decimal)
        self.buyers: dict[str, str] = {}
        self.n = itertools.count(1)
        self.day = dt.date(2030, 1, 1)
        self.clock = T0

    @initialize()
    def setup(self) -> None:
        with self.store.tenant_tx(self.tid, lock=False) as tx:
            for code, referrer in LINKS.items():
                invite = None
                if referrer is not None:
                    invite = members.get_profile(tx.conn, self.tid, referrer).invite_code
                members.register(tx, code, invite_code=invite)
        with self.store.tenant_tx(self.tid) as tx:
            marketing.set_models(tx, CONFIG, actor="test", compliance_override=OVERRIDE)

    def _tick(self) -> float:
        self.clock += 60
        return self.clock

    @rule(
        target=orders,
        member=st.sampled_from(sorted(LINKS)),
        fen=st.integers(min_value=1, max_value=30000),
    )
    def buy(self, member: str, fen: int) -> str:
        order = f"o{next(self.n)}"
        amount = D(fen) / 100
        at = self._tick()
        with self.store.tenant_tx(self.tid) as tx:
            tx.apply_one(f"purchase:{order}", Purchase(order, member, amount, LINKS[member]))
            tx.emit(OrderSettled(order, member, amount, at))
        self.amounts[order] = amount
        self.buyers[order] = member
        self.ref.run(
            dm.OrderSettled(order, member, amount, "default", dt.datetime.fromtimestamp(at, dt.UTC))
        )
        return order

    def _refund(self, order: str, amount: Decimal) -> None:
        total = self.amounts[order]
        refunded = self.refunded[order] + amount
        refund_id = f"rf{next(self.n)}"
        at = self._tick()
        with self.store.tenant_tx(self.tid) as tx:
            tx.apply_one(f"refund:{order}:{refund_id}", Refund(order, amount))
            tx.emit(
                OrderRefunded(
                    order,
                    self.buyers[order],
                    refund_id,
                    amount,
                    refunded,
                    total,
                    refunded / total,
                    settled=True,
                    at=at,
                )
            )
        self.refunded[order] = refunded
        self.ref.run(dm.OrderRefunded(order, refund_id, refunded, total))

    @rule(order=orders, share=st.sampled_from([D("0.01"), D("0.25"), D("0.5"), D("0.9")]))
    def partial_refund(self, order: str, share: Decimal) -> None:
        left = self.amounts[order] - self.refunded[order]
        amount = floor_fen(left * share)
        if 0 < amount < left:
            self._refund(order, amount)

    @rule(order=orders)
    def full_refund(self, order: str) -> None:
        left = self.amounts[order] - self.refunded[order]
        if left > 0:
            self._refund(order, left)

    @rule()
    def close_day(self) -> None:
        day = self.day.isoformat()
        with self.store.tenant_tx(self.tid) as tx:
            tx.apply_one(f"close:{day}", CloseDay(day))
            tx.emit(DayClosed(day, D(0), 0, 0))
        self.ref.run(dm.DayClosed(self.day))
        self.day += dt.timedelta(days=1)

    @rule(order=orders)
    def replayed_settlement(self, order: str) -> None:
        """The same fact handled again (a redelivered event): nothing more is paid."""
        with self.store.tenant_tx(self.tid) as tx:
            tx.emit(OrderSettled(order, self.buyers[order], self.amounts[order], self._tick()))

    @rule()
    def refund_everything(self) -> None:
        for order in list(self.amounts):
            self.full_refund(order)
        for (model, member), total in self._nets().items():
            assert total == 0, (model, member, total)

    # ------------------------------------------------------------------ checks

    def _rows(self) -> list[Any]:
        r = s.marketing_rewards.c
        with self.engine.connect() as conn:
            return list(conn.execute(select(s.marketing_rewards).where(r.tenant_id == self.tid)))

    def _nets(self) -> dict[tuple[str, str], Decimal]:
        out: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for row in self._rows():
            out[(row.model, row.beneficiary)] += from_atoms(row.amount, CNY_PLACES)
        return out

    @invariant()
    def books_balance(self) -> None:
        with self.engine.connect() as conn:
            sheet = accounting.balance_sheet(conn, self.tid)
        assert sheet.ok, sheet.broken

    @invariant()
    def same_rewards_as_the_domain(self) -> None:
        got = {
            (r.order_ref, r.model, r.beneficiary, r.step): from_atoms(r.amount, CNY_PLACES)
            for r in self._rows()
        }
        assert got == self.ref.paid

    @invariant()
    def nothing_paid_twice_nor_taken_back_twice(self) -> None:
        per: dict[tuple[str, str, str], list[Decimal]] = defaultdict(list)
        for r in self._rows():
            per[(r.order_ref, r.model, r.beneficiary)].append(from_atoms(r.amount, CNY_PLACES))
        for key, amounts in per.items():
            granted = sum(a for a in amounts if a > 0)
            assert 0 <= sum(amounts) <= granted, key


def test_marketing_state_machine(db_engine: Engine) -> None:
    """Many runs on SQLite; a few on PostgreSQL (same code, slower round trips)."""
    sqlite = db_engine.dialect.name == "sqlite"
    MarketingMachine.engine = db_engine
    run_state_machine_as_test(
        MarketingMachine,
        settings=settings(
            max_examples=30 if sqlite else 5,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        ),
    )
