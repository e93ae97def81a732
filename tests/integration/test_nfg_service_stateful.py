"""A Hypothesis state machine over the NFG service on SQLite: mints (airdrop, SP), gifts,
approvals, operators, listings, buys (SP, or CNY through an order: reserve, pay, cancel),
cancels, redemptions and burns by random members.

After every step: no token has two owners and every token row agrees with the replay of the
hash-chained events; each member's balance (tokens held) equals what the events give them;
money and tokens move together (one SP ledger transaction per SP mint and per sale, and the
reverse); each asset sums to zero; an open listing is reserved only by an unpaid order, a
listing sold for CNY by the settled order that paid it; and a refused command changed nothing.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from nfg_helpers import card, setup, sums
from sqlalchemy import Engine, func, select

from tokenmall.bootstrap import event_handlers
from tokenmall.domain.economy import Asset
from tokenmall.domain.nfg import Mode
from tokenmall.errors import TokenmallError
from tokenmall.service import members
from tokenmall.service.ledger import Ledger
from tokenmall.service.messagebus import EventBus
from tokenmall.service.nfg import log, market, tokens
from tokenmall.service.nfg.trades import Trades
from tokenmall.service.orders import OrderService, PaymentHub
from tokenmall.service.uow import Store
from tokenmall.store import schema as s
from tokenmall.store.db import create_db_engine, migrate

MEMBERS = ["ann", "bob", "cat", "dan"]
SECRET = "nfg-stateful-secret-0123456789abcdef"
SUPPLY = 12
_DIR = tempfile.mkdtemp(prefix="nfg-stateful-")
_ENGINE: Engine | None = None


def _engine() -> Engine:
    global _ENGINE  # noqa: PLW0603 - one migrated database for every example of the session
    if _ENGINE is None:
        _ENGINE = create_db_engine(f"sqlite:///{Path(_DIR) / 'nfg.db'}")
        migrate(_ENGINE)
    return _ENGINE


member = st.sampled_from(MEMBERS)
serial = st.integers(1, 4)  # the first serials: most commands then find a token


class NFGMachine(RuleBasedStateMachine):
    engine: Engine
    store: Store
    tid: int

    @initialize()
    def start(self) -> None:
        self.engine = _engine()
        box: list[OrderService] = []
        self.trades = Trades(lambda: box[0].ctx)
        self.store = Store(self.engine, bus=EventBus(event_handlers(None, self.trades)))
        self.svc = OrderService(self.engine, PaymentHub(SECRET), store=self.store)
        box.append(self.svc)
        self.svc.clock = lambda: self.clock
        self.code = f"t-{uuid.uuid4().hex[:12]}"
        self.tid = Ledger(self.engine).create_tenant(self.code)
        with self.engine.begin() as conn:
            for m in MEMBERS:
                members.create_member(conn, self.tid, m)
        self.pending: list[str] = []  # CNY orders of listings, not paid nor cancelled yet
        coll = card(
            max_supply=SUPPLY,
            uses=3,
            price=Decimal("10.00"),
            transfer_policy=Mode.OPEN,
            fee_bps=300,
            royalty_bps=700,
            issuer="iss",
            fee_to_pool_ratio=Decimal("0.5"),
        )
        setup(
            self.store, self.tid, coll, {**dict.fromkeys(MEMBERS, Decimal(100)), "iss": Decimal(0)}
        )
        # a day ahead of the real time: the sandbox's notifications carry the real time, so a
        # token sold for CNY was acquired before every later command of the machine
        self.clock = time.time() + 86_400

    # -- plumbing ---------------------------------------------------------------------------

    def _snapshot(self) -> tuple[Any, ...]:
        with self.engine.connect() as conn:
            toks = conn.execute(
                select(s.nfg_tokens)
                .where(s.nfg_tokens.c.tenant_id == self.tid)
                .order_by(s.nfg_tokens.c.serial)
            ).all()
            lst = conn.execute(
                select(s.nfg_listings).where(s.nfg_listings.c.tenant_id == self.tid)
            ).all()
            ops = conn.execute(
                select(s.nfg_operators).where(s.nfg_operators.c.tenant_id == self.tid)
            ).all()
            n = conn.execute(
                select(func.count()).where(s.nfg_events.c.tenant_id == self.tid)
            ).scalar_one()
        return (tuple(toks), tuple(lst), tuple(ops), n, Ledger(self.engine).balances(self.tid))

    def _owner(self, n: int, default: str) -> str:
        """The token's owner (``default`` if none): steers some commands to the right member."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(s.nfg_tokens.c.owner).where(
                    s.nfg_tokens.c.tenant_id == self.tid, s.nfg_tokens.c.serial == n
                )
            ).first()
        return default if row is None else str(row.owner)

    def _do(self, fn: Any, what: str) -> None:
        self.clock += 60
        before = self._snapshot()
        try:
            with self.store.tenant_tx(self.tid) as tx:
                fn(tx, self.clock)
        except TokenmallError as err:
            event(f"{what}: refused ({err.code})")
            assert self._snapshot() == before, "a refused command changed something"
        else:
            event(f"{what}: applied")

    # -- rules ------------------------------------------------------------------------------

    @rule(to=member)
    def airdrop(self, to: str) -> None:
        self._do(lambda tx, at: tokens.airdrop(tx, "BLACK", [to], at=at), "airdrop")

    @rule(to=member)
    def mint_sp(self, to: str) -> None:
        self._do(lambda tx, at: tokens.mint_for(tx, "BLACK", to, Asset.SP, at=at), "mint")

    @rule(caller=member, to=member, n=serial, as_owner=st.booleans())
    def transfer(self, caller: str, to: str, n: int, as_owner: bool) -> None:
        frm = self._owner(n, caller) if as_owner else caller
        self._do(
            lambda tx, at: tokens.transfer(tx, "BLACK", n, caller=caller, from_=frm, to=to, at=at),
            "transfer",
        )

    @rule(caller=member, to=st.one_of(st.none(), member), n=serial)
    def approve(self, caller: str, to: str | None, n: int) -> None:
        self._do(lambda tx, at: tokens.approve(tx, "BLACK", n, caller=caller, to=to), "approve")

    @rule(caller=member, op=member, on=st.booleans())
    def operator(self, caller: str, op: str, on: bool) -> None:
        self._do(
            lambda tx, at: tokens.set_approval_for_all(
                tx, "BLACK", caller=caller, operator=op, approved=on
            ),
            "operator",
        )

    @rule(
        caller=member,
        n=serial,
        price=st.sampled_from(["5.00", "33.33", "80.00"]),
        as_owner=st.booleans(),
    )
    def list_it(self, caller: str, n: int, price: str, as_owner: bool) -> None:
        caller = self._owner(n, caller) if as_owner else caller
        self._do(
            lambda tx, at: market.list_token(
                tx, "BLACK", n, caller=caller, price=Decimal(price), at=at
            ),
            "list",
        )

    def _listing(self, lid: int) -> int:
        """The newest open listing, else ``lid``."""
        c = s.nfg_listings.c
        with self.engine.connect() as conn:
            found = conn.execute(
                select(func.max(c.id)).where(c.tenant_id == self.tid, c.state == "open")
            ).scalar()
        return lid if found is None else int(found)

    @rule(buyer=member, lid=st.integers(1, 3), open_one=st.booleans())
    def buy(self, buyer: str, lid: int, open_one: bool) -> None:
        lid = self._listing(lid) if open_one else lid
        self._do(lambda tx, at: market.buy(tx, lid, buyer=buyer, at=at), "buy")

    @rule(caller=member, lid=st.integers(1, 3), open_one=st.booleans())
    def cancel(self, caller: str, lid: int, open_one: bool) -> None:
        lid = self._listing(lid) if open_one else lid
        self._do(lambda tx, at: market.cancel(tx, lid, caller=caller, at=at), "cancel")

    @rule(buyer=member)
    def order_cny(self, buyer: str) -> None:
        lid = self._listing(1)  # the newest open listing: unknown ones are the SP buy's test
        self.clock += 60
        before = self._snapshot()
        try:
            ref = self.trades.reserve(self.tid, lid, buyer=buyer).order.ref
        except TokenmallError as err:
            event(f"order_cny: refused ({err.code})")
            assert self._snapshot() == before, "a refused CNY order changed something"
        else:
            event("order_cny: reserved")
            if ref not in self.pending:
                self.pending.append(ref)

    @rule(k=st.integers(0, 3))
    def pay_cny(self, k: int) -> None:
        """Pay a pending order in CNY: the token is sold, or the payment refunded in full."""
        if not self.pending:
            return
        ref = self.pending.pop(k % len(self.pending))
        self.clock += 60
        try:
            pay = self.svc.start_payment(self.tid, self.code, ref)
        except TokenmallError as err:  # expired meanwhile (15 minutes): nothing to pay
            event(f"pay_cny: refused ({err.code})")
            return
        assert pay.intent_id is not None
        done = self.svc.complete_sandbox(self.tid, self.code, pay.intent_id, deliver=False)
        for headers, body in done.deliveries:
            self.svc.handle_notification(self.tid, self.code, "sandbox", headers, body, pump=False)
        status = self.svc.get_order(self.tid, ref).status
        assert status in ("settled", "refunded"), status
        event(f"pay_cny: {status}")

    @rule(k=st.integers(0, 3))
    def cancel_cny(self, k: int) -> None:
        if not self.pending:
            return
        ref = self.pending.pop(k % len(self.pending))
        self.clock += 60
        try:
            assert self.svc.cancel_order(self.tid, ref).status == "cancelled"
        except TokenmallError as err:  # expired meanwhile
            event(f"cancel_cny: refused ({err.code})")

    @rule(caller=member, n=serial)
    def redeem(self, caller: str, n: int) -> None:
        self._do(lambda tx, at: tokens.redeem(tx, "BLACK", n, caller=caller, at=at), "redeem")

    @rule(caller=member, n=serial)
    def burn(self, caller: str, n: int) -> None:
        self._do(lambda tx, at: tokens.burn(tx, "BLACK", n, caller=caller, at=at), "burn")

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def tokens_agree_with_their_history(self) -> None:
        t, e = s.nfg_tokens.c, s.nfg_events.c
        with self.engine.connect() as conn:
            owners: dict[int, str | None] = {}
            for row in conn.execute(
                select(e.serial, e.kind, e.from_member, e.to_member)
                .where(e.tenant_id == self.tid)
                .order_by(e.seq)
            ):
                if row.kind == "mint":
                    assert row.serial not in owners, "a serial minted twice"
                else:
                    assert owners.get(row.serial) == row.from_member, "moved by a non-owner"
                owners[row.serial] = None if row.kind == "burn" else row.to_member
            rows = {
                r.serial: (None if r.burned_at is not None else r.owner)
                for r in conn.execute(
                    select(t.serial, t.owner, t.burned_at).where(t.tenant_id == self.tid)
                )
            }
            assert rows == owners
            for m in MEMBERS:  # balanceOf == tokens owned
                assert len(tokens.tokens_of(conn, self.tid, m)) == sum(
                    1 for o in owners.values() if o == m
                )
            assert log.verify_chain(conn, self.tid) is None

    @invariant()
    def money_and_tokens_move_together(self) -> None:
        e, lt = s.nfg_events.c, s.ledger_tx.c
        with self.engine.connect() as conn:
            paid = conn.execute(
                select(func.count()).where(
                    e.tenant_id == self.tid,
                    ((e.kind == "mint") & (e.asset == "SP")) | (e.kind == "sale"),
                )
            ).scalar_one()
            moves = conn.execute(
                select(func.count()).where(lt.tenant_id == self.tid, lt.kind == "token_sale")
            ).scalar_one()
        assert paid == moves
        assert all(v == 0 for v in sums(self.engine, self.tid).values())

    @invariant()
    def reservations_match_their_orders(self) -> None:
        lc, o = s.nfg_listings.c, s.orders.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(lc.state, o.status, o.ref)
                .select_from(
                    s.nfg_listings.join(
                        s.orders, (o.tenant_id == lc.tenant_id) & (o.ref == lc.order_ref)
                    )
                )
                .where(lc.tenant_id == self.tid)
            ).all()
        for state, status, ref in rows:  # a listing names its unpaid order or its buyer's
            expected = "settled" if state == "sold" else "pending_payment"
            assert status == expected, (state, status, ref)
            assert state == "sold" or ref in self.pending


NFGMachine.TestCase.settings = settings(
    max_examples=30,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestNFGService = NFGMachine.TestCase
