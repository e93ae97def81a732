"""A listing bought with CNY through the order flow, on SQLite and PostgreSQL: the listing is
reserved for the buyer's order, the payment sells the token out of the order's escrow (worked
numbers), a sale that can no longer be honoured refunds the payment, an unpaid order's expiry
frees the listing, and the races (a CNY buy against a cancel, an SP buy, another CNY buyer)
end with exactly one winner and every asset summing to zero."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import pytest
from nfg_helpers import T0, card, setup, sums
from sqlalchemy import Engine

from tokenmall.bootstrap import event_handlers
from tokenmall.domain.nfg import ListingClosed, ListingReserved, ListingStale
from tokenmall.errors import TokenmallError
from tokenmall.service import members
from tokenmall.service.ledger import Ledger
from tokenmall.service.messagebus import EventBus
from tokenmall.service.nfg import market, tokens
from tokenmall.service.nfg.trades import HOLD, Reservation, Trades
from tokenmall.service.orders import OrderService, PaymentHub, expire_orders, queries
from tokenmall.service.orders.models import OrderStateError
from tokenmall.service.uow import Store

SECRET = "nfg-cny-buys-secret-0123456789abcdef"
PRICE = Decimal("1288.00")


@dataclass
class World:
    engine: Engine
    tid: int
    code: str
    store: Store
    svc: OrderService
    trades: Trades
    clock: list[float]

    def listed(self, serial: int, price: Decimal = PRICE) -> int:
        with self.store.tenant_tx(self.tid) as tx:
            tokens.airdrop(tx, "BLACK", ["ann"], at=T0)
            return market.list_token(tx, "BLACK", serial, caller="ann", price=price, at=T0).id

    def pay(self, ref: str) -> None:
        """Pay the order in CNY through the sandbox; its notification applied in-process."""
        pay = self.svc.start_payment(self.tid, self.code, ref)
        assert pay.intent_id is not None
        done = self.svc.complete_sandbox(self.tid, self.code, pay.intent_id, deliver=False)
        for headers, body in done.deliveries:
            self.svc.handle_notification(self.tid, self.code, "sandbox", headers, body, pump=False)

    def listing(self, lid: int) -> market.ListingView:
        with self.engine.connect() as conn:
            return market.get_listing(conn, self.tid, lid)

    def owner(self, serial: int) -> str:
        with self.engine.connect() as conn:
            return tokens.get_token(conn, self.tid, "BLACK", serial).owner

    def sp(self, member: str) -> Decimal:
        return Decimal(Ledger(self.engine).members(self.tid)[member]["stable"])

    def balance(self, account: str) -> Decimal:
        return Ledger(self.engine).balances(self.tid).get((account, "CNY"), Decimal(0))

    def zero_sums(self) -> None:
        assert all(v == 0 for v in sums(self.engine, self.tid).values())


def _world(engine: Engine) -> World:
    code = f"t-{uuid.uuid4().hex[:12]}"
    tid = Ledger(engine).create_tenant(code)
    with engine.begin() as conn:
        for m in ("ann", "bob", "cat", "iss"):
            members.create_member(conn, tid, m)
    box: list[OrderService] = []
    trades = Trades(lambda: box[0].ctx)
    store = Store(engine, bus=EventBus(event_handlers(None, trades)))
    svc = OrderService(engine, PaymentHub(SECRET), store=store)
    box.append(svc)
    clock = [time.time()]  # the sandbox's notifications carry the real time
    svc.clock = lambda: clock[0]
    sp = {"ann": Decimal(0), "bob": Decimal(0), "cat": Decimal(2000), "iss": Decimal(0)}
    setup(store, tid, card(issuer="iss"), sp)
    return World(engine, tid, code, store, svc, trades, clock)


def test_cny_buy_sells_out_of_the_escrow(db_engine: Engine) -> None:
    w = _world(db_engine)
    lid = w.listed(1)
    before = {a: w.balance(a) for a in ("world", "revenue", "pool", "escrow", "sp_reserve")}
    r = w.trades.reserve(w.tid, lid, buyer="bob")
    assert r.order.total == PRICE
    assert r.order.lines == []
    assert r.listing.order_ref == r.order.ref
    # asking again while unpaid: the same order
    assert w.trades.reserve(w.tid, lid, buyer="bob").order.ref == r.order.ref
    w.clock[0] += 60
    w.pay(r.order.ref)
    assert w.owner(1) == "bob"
    done = w.listing(lid)
    assert (done.state, done.buyer, done.order_ref) == ("sold", "bob", r.order.ref)
    order = w.svc.get_order(w.tid, r.order.ref)
    assert order.status == "settled"
    # 1,288.00: fee 32.20 (half, 16.10, into the pool), royalty 64.40 to iss, ann 1,191.40
    assert w.sp("ann") == Decimal("1191.40")
    assert w.sp("iss") == Decimal("64.40")
    after = {a: w.balance(a) for a in before}
    assert after["world"] - before["world"] == -PRICE  # the buyer's CNY came from outside
    assert after["revenue"] - before["revenue"] == Decimal("16.10")
    assert after["pool"] - before["pool"] == Decimal("16.10")
    assert after["escrow"] == before["escrow"]
    assert after["sp_reserve"] - before["sp_reserve"] == Decimal("1255.80")
    w.zero_sums()
    with db_engine.connect() as conn:
        sale = tokens.provenance(conn, w.tid, "BLACK", 1)[-1]
    assert (sale["kind"], sale["from"], sale["to"]) == ("sale", "ann", "bob")
    assert (sale["price"], sale["asset"]) == (PRICE, "CNY")
    # a settled trade is final: the order flow refuses its refund
    with pytest.raises(OrderStateError, match="final"):
        w.svc.refund(w.tid, w.code, r.order.ref, refund_id="r1", amount=None)
    w.zero_sums()


def test_a_sale_that_cannot_be_honoured_is_refunded(db_engine: Engine) -> None:
    w = _world(db_engine)
    lid = w.listed(1)
    r = w.trades.reserve(w.tid, lid, buyer="bob")
    # the seller gifts the token while bob pays: the listing is stale when the money comes
    with w.store.tenant_tx(w.tid) as tx:
        tokens.transfer(tx, "BLACK", 1, caller="ann", from_="ann", to="cat", at=T0 + 10)
    world = w.balance("world")
    w.pay(r.order.ref)
    order = w.svc.get_order(w.tid, r.order.ref)
    assert order.status == "refunded"
    assert [x.refund_id for x in order.refunds] == [f"nfg-{r.order.ref}"]
    assert w.balance("world") == world  # in and back out
    assert w.owner(1) == "cat"
    left = w.listing(lid)
    assert (left.state, left.order_ref) == ("open", None)  # released (stale: nobody can buy)
    assert w.sp("ann") == 0
    w.zero_sums()
    with pytest.raises(ListingStale):
        w.trades.reserve(w.tid, lid, buyer="bob")


def test_an_unpaid_order_expires_and_frees_the_listing(db_engine: Engine) -> None:
    w = _world(db_engine)
    lid = w.listed(1)
    r = w.trades.reserve(w.tid, lid, buyer="bob")
    with db_engine.connect() as conn:
        assert queries.order_row(conn, w.tid, r.order.ref).hold == HOLD
    # reserved: an SP buy, a cancel and another CNY buyer are refused
    with pytest.raises(ListingReserved), w.store.tenant_tx(w.tid) as tx:
        market.buy(tx, lid, buyer="cat", at=w.clock[0])
    with pytest.raises(ListingReserved), w.store.tenant_tx(w.tid) as tx:
        market.cancel(tx, lid, caller="ann", at=w.clock[0])
    with pytest.raises(ListingReserved):
        w.trades.reserve(w.tid, lid, buyer="cat")
    # the order's 15 minutes pass; the expiry job closes it and the listing is free
    w.clock[0] += 16 * 60
    assert expire_orders(w.store, w.clock[0], tenant_id=w.tid) == 1
    assert w.listing(lid).order_ref is None
    assert w.svc.get_order(w.tid, r.order.ref).status == "expired"
    # cat reserves, lets it lapse too; an SP buy after the deadline expires it itself
    r2 = w.trades.reserve(w.tid, lid, buyer="cat")
    w.clock[0] += 16 * 60
    with w.store.tenant_tx(w.tid) as tx:
        st = market.buy(tx, lid, buyer="cat", at=w.clock[0])
    assert st.price == PRICE
    assert w.svc.get_order(w.tid, r2.order.ref).status == "expired"
    assert w.owner(1) == "cat"
    assert w.sp("cat") == Decimal(2000) - PRICE
    w.zero_sums()


def test_cancelling_the_order_frees_the_listing(db_engine: Engine) -> None:
    w = _world(db_engine)
    lid = w.listed(1)
    r = w.trades.reserve(w.tid, lid, buyer="bob")
    w.svc.cancel_order(w.tid, r.order.ref)
    assert w.listing(lid).order_ref is None
    with w.store.tenant_tx(w.tid) as tx:
        assert market.cancel(tx, lid, caller="ann", at=w.clock[0]).state.value == "cancelled"
    with pytest.raises(ListingClosed):
        w.trades.reserve(w.tid, lid, buyer="bob")
    w.zero_sums()


# -- races ------------------------------------------------------------------------------------

ROUNDS = 3
Op = Callable[[], object]


def _race(*ops: Op) -> list[object]:
    gate = threading.Barrier(len(ops))
    out: list[object] = [None] * len(ops)

    def run(i: int) -> None:
        gate.wait()
        try:
            out[i] = ops[i]()
        except TokenmallError as err:
            out[i] = err

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(ops))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def _in_tx(w: World, fn: Callable[..., object]) -> Op:
    def run() -> object:
        with w.store.tenant_tx(w.tid) as tx:
            return fn(tx)

    return run


def _ops(w: World, kind: str, lid: int) -> tuple[Op, Op]:
    """bob's CNY buy, and what races it."""
    reserve_bob: Op = lambda: w.trades.reserve(w.tid, lid, buyer="bob")  # noqa: E731
    if kind == "cny_vs_cancel":
        return reserve_bob, _in_tx(
            w, lambda tx: market.cancel(tx, lid, caller="ann", at=w.clock[0])
        )
    if kind == "cny_vs_sp":
        return reserve_bob, _in_tx(w, lambda tx: market.buy(tx, lid, buyer="cat", at=w.clock[0]))
    return reserve_bob, lambda: w.trades.reserve(w.tid, lid, buyer="cat")


@pytest.mark.parametrize("kind", ["cny_vs_cancel", "cny_vs_sp", "two_cny_buyers"])
def test_races_exactly_one_wins(db_engine: Engine, kind: str) -> None:
    w = _world(db_engine)
    for serial in range(1, ROUNDS + 1):
        lid = w.listed(serial, Decimal(100))
        out = _race(*_ops(w, kind, lid))
        errors = [o for o in out if isinstance(o, Exception)]
        assert len(errors) == 1, out
        assert isinstance(errors[0], ListingReserved | ListingClosed), errors
        reserved = [o for o in out if isinstance(o, Reservation)]
        listing = w.listing(lid)
        if reserved:
            ref = reserved[0].order.ref
            assert listing.state == "open"
            assert listing.order_ref == ref
            buyer = w.svc.get_order(w.tid, ref).member
            w.pay(ref)
            assert w.owner(serial) == buyer
            assert w.listing(lid).state == "sold"
        else:  # the cancel or the SP buy came first: no order was created
            assert listing.order_ref is None
            assert listing.state == ("cancelled" if kind == "cny_vs_cancel" else "sold")
            assert w.owner(serial) == ("ann" if kind == "cny_vs_cancel" else "cat")
        w.zero_sums()
    # every token sold went for 100.00, paid once: ann got 100 - 2.50 fee - 5.00 royalty each
    with db_engine.connect() as conn:
        owners = [tokens.get_token(conn, w.tid, "BLACK", n).owner for n in range(1, ROUNDS + 1)]
    sold = sum(1 for o in owners if o != "ann")
    assert w.sp("ann") == Decimal("92.50") * sold


def _payment_vs_sp(w: World, lid: int) -> list[object]:
    ref = w.trades.reserve(w.tid, lid, buyer="bob").order.ref
    sp_buy = _in_tx(w, lambda tx: market.buy(tx, lid, buyer="cat", at=w.clock[0]))
    out = _race(lambda: w.pay(ref), sp_buy)
    assert w.svc.get_order(w.tid, ref).status == "settled"
    return out


def test_a_payment_races_an_sp_buy(db_engine: Engine) -> None:
    """While bob's order is being paid, cat's SP buy finds the listing reserved (before the
    payment) or sold (after it): the payment always wins, the SP buy changes nothing."""
    w = _world(db_engine)
    for serial in range(1, ROUNDS + 1):
        lid = w.listed(serial, Decimal(100))
        paid, sp_buy = _payment_vs_sp(w, lid)
        assert paid is None
        assert isinstance(sp_buy, ListingReserved | ListingClosed), sp_buy
        assert w.owner(serial) == "bob"
        assert w.listing(lid).state == "sold"
        w.zero_sums()
    assert w.sp("cat") == Decimal(2000)
    assert w.sp("ann") == Decimal("92.50") * ROUNDS


def test_an_order_paid_with_sp_only_or_a_mix_sells_as_well(db_engine: Engine) -> None:
    """The order takes whatever mix the order flow accepts: cat pays one listing wholly from
    her SP wallet (paid on return, no provider) and another with 300.00 SP and the rest CNY."""
    w = _world(db_engine)
    first, second = w.listed(1, Decimal(500)), w.listed(2, Decimal(1000))
    ref = w.trades.reserve(w.tid, first, buyer="cat").order.ref
    w.svc.start_payment(w.tid, w.code, ref, sp=Decimal(500))  # no CNY part: paid at once
    assert w.owner(1) == "cat"
    ref2 = w.trades.reserve(w.tid, second, buyer="cat").order.ref
    pay = w.svc.start_payment(w.tid, w.code, ref2, sp=Decimal(300))
    assert pay.intent_id is not None
    done = w.svc.complete_sandbox(w.tid, w.code, pay.intent_id, deliver=False)
    for headers, body in done.deliveries:
        w.svc.handle_notification(w.tid, w.code, "sandbox", headers, body, pump=False)
    assert w.owner(2) == "cat"
    assert w.svc.get_order(w.tid, ref2).status == "settled"
    assert w.sp("cat") == Decimal(2000) - 500 - 300
    # ann: 500 - 12.50 - 25.00 and 1000 - 25.00 - 50.00
    assert w.sp("ann") == Decimal("462.50") + Decimal("925.00")
    w.zero_sums()
