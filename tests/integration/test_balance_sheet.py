"""The balance sheet's identities hold after any flow, on SQLite and PostgreSQL.

Hypothesis draws a sequence of what a mall does (purchases through the ledger, orders paid
through the sandbox with CNY, SP and EP, deliveries, settlements, full and partial refunds,
sells, exchanges both ways, withdrawals requested, approved, rejected, paid and failed, day
closes) and after every step the balance sheet must report every identity holding.  Refused
steps (not enough SP, no stock, ...) are part of the flow: a refusal must leave the books as
they were.  A second test breaks the books on purpose and requires the sheet to say so.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, update

from tokenmall.domain.economy import Purchase
from tokenmall.domain.params import TenantParams
from tokenmall.errors import TokenmallError
from tokenmall.service import accounting, catalog, dayclose, members, wallet
from tokenmall.service.ledger import Ledger
from tokenmall.service.orders import OrderService, PaymentHub
from tokenmall.store import schema as s
from tokenmall.store.db import read_only

D = Decimal
SECRET = "balance-sheet-secret-0123456789abcdef"
MEMBERS = ("ann", "ben", "cai", "dai")
PARAMS = TenantParams.from_mapping(
    {
        "quota_multiplier": "0.6",  # exits come early
        "dividend_rate": "0.2",
        "exchange_fee": "0.05",
        "withdraw_fee_rate": "0.01",
        "settle_days": "3",
    }
)

member = st.sampled_from(MEMBERS)
share = st.sampled_from([D("0.1"), D("0.5"), D("1")])
STEPS = st.one_of(
    st.tuples(st.just("buy"), member, st.integers(1, 50_000)),
    st.tuples(st.just("order"), member, st.integers(1, 3), st.sampled_from(["cny", "sp", "mix"])),
    st.tuples(st.just("order_points"), member, st.sampled_from([D("0.50"), D("5.00")])),
    st.tuples(st.just("settle"), st.integers(0, 9)),
    st.tuples(st.just("deliver"), st.integers(0, 9)),
    st.tuples(st.just("refund"), st.integers(0, 9), st.sampled_from([None, D("0.01"), D("30")])),
    st.tuples(st.just("sell"), member, share),
    st.tuples(st.just("exchange"), member, share),
    st.tuples(st.just("buy_points"), member, st.sampled_from([D("0.01"), D("1.00"), D("50")])),
    st.tuples(st.just("withdraw"), member, st.sampled_from([D("1.00"), D("7.77"), D("40")])),
    st.tuples(
        st.just("review"),
        st.integers(0, 9),
        st.sampled_from(["approve", "reject", "paid", "failed"]),
    ),
    st.tuples(st.just("close")),
)


class Mall:
    """One fresh tenant with a product priced 25.00 and four registered members."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.code = f"t-{uuid.uuid4().hex[:12]}"
        self.ledger = Ledger(engine)
        self.tid = self.ledger.create_tenant(self.code, PARAMS)
        self.svc = OrderService(engine, PaymentHub(SECRET))
        with engine.begin() as conn:
            merchant = catalog.create_merchant(conn, self.tid, code="m", name="M", accepts_sp=True)
            product = catalog.create_product(conn, self.tid, merchant_id=merchant.id, name="Tea")
            self.sku = catalog.create_sku(
                conn, self.tid, product_id=product.id, name="1", price=D(25), stock=10_000
            ).id
            for code in MEMBERS:
                members.create_member(conn, self.tid, code)
        self.orders: list[str] = []
        self.withdrawals: list[str] = []
        self.n = 0
        self.day = dt.date(2001, 1, 1)

    def key(self) -> str:
        self.n += 1
        return f"k{self.n}"

    def holding(self, code: str) -> tuple[Decimal, Decimal]:
        with read_only(self.engine).connect() as conn:
            b = wallet.balance(conn, self.tid, code)
        return b.points, b.stable

    def pay(self, code: str, quantity: int, *, sp: Decimal, points_value: Decimal) -> None:
        order = self.svc.create_order(self.tid, member=code, lines=[(self.sku, quantity)])
        self.orders.append(order.ref)
        pay = self.svc.start_payment(
            self.tid, self.code, order.ref, sp=sp, points_value=points_value
        )
        if pay.intent_id is not None:
            self.svc.complete_sandbox(self.tid, self.code, pay.intent_id)

    def step(self, step: tuple[Any, ...]) -> None:
        kind = step[0]
        tid = self.tid
        if kind == "buy":
            out = self.ledger.submit(
                tid, [(self.key(), Purchase(self.key(), step[1], D(step[2]).scaleb(-2)))]
            )
            out[0].raise_if_rejected()
        elif kind == "order":
            _, code, qty, how = step
            sp = self.holding(code)[1]
            total = D(25) * qty
            part = {"cny": D(0), "sp": min(sp, total), "mix": min(sp, D("10.00"))}[how]
            self.pay(code, qty, sp=part, points_value=D(0))
        elif kind == "order_points":
            self.pay(step[1], 1, sp=D(0), points_value=step[2])
        elif kind in ("settle", "deliver", "refund") and self.orders:
            ref = self.orders[step[1] % len(self.orders)]
            if kind == "settle":
                self.svc.settle_order(tid, ref)
            elif kind == "deliver":
                self.svc.confirm_delivery(tid, ref)
            else:
                self.svc.refund(tid, self.code, ref, refund_id=self.key(), amount=step[2])
        elif kind in ("sell", "exchange"):
            points = self.holding(step[1])[0] * step[2]
            points = points.quantize(D("0.00000001"), rounding="ROUND_DOWN")
            act = wallet.sell if kind == "sell" else wallet.exchange
            act(self.ledger, tid, step[1], points, self.key())
        elif kind == "buy_points":
            wallet.buy_points(self.ledger, tid, step[1], step[2], self.key())
        elif kind == "withdraw":
            wd, _ = wallet.request_withdrawal(
                self.ledger, tid, step[1], amount=step[2], account="openid-1", key=self.key()
            )
            self.withdrawals.append(wd.id)
        elif kind == "review" and self.withdrawals:
            ref = self.withdrawals[step[1] % len(self.withdrawals)]
            how = step[2]
            if how == "approve":
                wallet.approve_withdrawal(self.ledger, tid, ref, reviewer="op")
            elif how == "reject":
                wallet.reject_withdrawal(self.ledger, tid, ref, reviewer="op")
            else:
                wallet.apply_payout_result(self.ledger, tid, ref, paid=how == "paid")
        elif kind == "close":
            clock = _clock(self.engine, tid)
            dayclose.close_day(self.ledger, clock, self.day)
            self.day += dt.timedelta(days=1)

    def sheet(self) -> accounting.BalanceSheet:
        with read_only(self.engine).connect() as conn:
            accounting.snapshot(conn)
            return accounting.balance_sheet(conn, self.tid)


def _clock(engine: Engine, tid: int) -> dayclose.TenantClock:
    with read_only(engine).connect() as conn:
        return dayclose.tenant_clock(conn, tid)


def _explain(sheet: accounting.BalanceSheet) -> str:
    return "; ".join(
        f"{i.name}: {i.left} {i.relation} {i.right}" for i in sheet.identities if not i.holds
    )


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(STEPS, min_size=5, max_size=30))
def test_every_identity_holds_after_every_step_of_random_flows(
    db_engine: Engine, steps: list[tuple[Any, ...]]
) -> None:
    mall = Mall(db_engine)
    # a start where every member holds EP and two hold SP, so fewer steps are refused
    for code in MEMBERS:
        mall.step(("buy", code, 20_000))
    mall.step(("sell", "ann", D("0.5")))
    mall.step(("exchange", "ben", D("0.5")))
    assert mall.sheet().ok
    for step in steps:
        try:
            mall.step(step)
            event(f"{step[0]} applied")
        except TokenmallError as exc:  # refused: the books must still balance
            event(f"{step[0]} refused: {exc.code}")
        sheet = mall.sheet()
        assert sheet.ok, f"after {step}: {_explain(sheet)}"
    # the flows did move money: the sheet's figures are the ledger's
    balances = mall.ledger.balances(mall.tid)
    sheet = mall.sheet()
    assert sheet.pool == balances.get(("pool", "CNY"), D(0))
    assert sheet.escrow == balances.get(("escrow", "CNY"), D(0))
    assert sheet.members_sp == sum(
        (v for (a, asset), v in balances.items() if a.startswith("m:") and asset == "SP"), D(0)
    )


def test_a_rich_flow_exercises_every_open_item(db_engine: Engine) -> None:
    """A fixed flow that leaves an escrowed order, a held withdrawal and treasury EP open, so
    the identities are checked on non-zero figures, not only on zeros."""
    mall = Mall(db_engine)
    for step in [
        ("buy", "ann", 10_000),
        ("buy", "ben", 20_000),
        ("sell", "ann", D("0.5")),
        ("exchange", "ben", D("0.5")),
        ("order", "ann", 1, "mix"),
        ("withdraw", "ann", D("1.00")),
        ("withdraw", "ben", D("1.00")),
        ("review", 1, "approve"),
        ("close",),
    ]:
        mall.step(step)
    sheet = mall.sheet()
    assert sheet.ok, _explain(sheet)
    assert sheet.escrowed_orders == 1
    assert sheet.escrow == D(25)
    assert sheet.held_withdrawals == 2
    assert sheet.open_withdrawals == 2
    assert sheet.payout_hold > 0
    assert sheet.treasury > 0
    assert sheet.sp_reserve == sheet.members_sp > 0
    assert sheet.circulating == sheet.members_ep + sheet.treasury
    assert D(0) < sheet.sale_value <= sheet.pool


@pytest.mark.parametrize(
    ("column", "broken"),
    [("sp", "sp_backed"), ("ep", "circulating_held")],
)
def test_a_broken_book_is_reported_not_hidden(db_engine: Engine, column: str, broken: str) -> None:
    mall = Mall(db_engine)
    mall.step(("buy", "ann", 10_000))
    mall.step(("sell", "ann", D("0.5")))
    assert mall.sheet().ok
    m = s.members.c
    with db_engine.begin() as conn:  # a write behind the ledger's back: what the sheet is for
        conn.execute(
            update(s.members)
            .where(m.tenant_id == mall.tid, m.code == "ann")
            .values({column: getattr(m, column) + 1})
        )
    sheet = mall.sheet()
    assert not sheet.ok
    assert broken in sheet.broken


def test_a_fully_refunded_order_is_no_longer_counted_as_escrowed(db_engine: Engine) -> None:
    """Escrowed orders are those still holding money: a partly refunded order still counts,
    a fully refunded one does not (its escrow row stays unsettled, with nothing in it)."""
    mall = Mall(db_engine)
    for step in [("buy", "ann", 10_000), ("order", "ann", 1, "cny"), ("order", "ann", 2, "cny")]:
        mall.step(step)
    assert mall.sheet().escrowed_orders == 2
    mall.step(("refund", 0, D("5.00")))
    sheet = mall.sheet()
    assert (sheet.escrowed_orders, sheet.escrowed) == (2, D(70))
    mall.step(("refund", 0, None))
    sheet = mall.sheet()
    assert sheet.ok, _explain(sheet)
    assert (sheet.escrowed_orders, sheet.escrowed) == (1, D(50))
