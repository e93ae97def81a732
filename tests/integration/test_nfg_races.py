"""NFG races on SQLite and PostgreSQL, each pair started together on two threads: a buy and
a cancel of one listing, two buyers of one listing, a gift racing a sale.  Exactly one wins;
the loser gets a clean NFG error; tokens, listings and money agree afterwards."""

from __future__ import annotations

import threading
from collections.abc import Callable
from decimal import Decimal

import pytest
from nfg_helpers import T0, card, setup, store_for, sums, tenant
from sqlalchemy import Engine

from tokenmall.domain.nfg import NFGError
from tokenmall.errors import TokenmallError
from tokenmall.service.ledger import Ledger
from tokenmall.service.nfg import market, tokens
from tokenmall.service.uow import Store, TenantTx

ROUNDS = 4


def _race(store: Store, tid: int, *ops: Callable[[TenantTx], object]) -> list[object]:
    """Run each op in its own unit of work, all released at once; their outcomes."""
    gate = threading.Barrier(len(ops))
    out: list[object] = [None] * len(ops)

    def run(i: int) -> None:
        gate.wait()
        try:
            with store.tenant_tx(tid) as tx:
                out[i] = ops[i](tx)
        except TokenmallError as err:
            out[i] = err

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(ops))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def _listed(store: Store, tid: int, serial: int) -> int:
    with store.tenant_tx(tid) as tx:
        tokens.airdrop(tx, "BLACK", ["ann"], at=T0)
        return market.list_token(tx, "BLACK", serial, caller="ann", price=Decimal(100), at=T0).id


def _check(engine: Engine, tid: int, serial: int, winner_owner: set[str]) -> str:
    with engine.connect() as conn:
        owner = tokens.get_token(conn, tid, "BLACK", serial).owner
        kinds = [p["kind"] for p in tokens.provenance(conn, tid, "BLACK", serial)]
    assert owner in winner_owner
    assert len(kinds) <= 2
    assert kinds[0] == "mint"
    assert all(v == 0 for v in sums(engine, tid).values())
    return owner


def _ops(kind: str, lid: int, serial: int, at: float) -> list[Callable[[TenantTx], object]]:
    def buy(member: str) -> Callable[[TenantTx], object]:
        return lambda tx: market.buy(tx, lid, buyer=member, at=at)

    if kind == "buy_vs_cancel":
        return [buy("bob"), lambda tx: market.cancel(tx, lid, caller="ann", at=at)]
    if kind == "two_buyers":
        return [buy("bob"), buy("cat")]
    gift = lambda tx: tokens.transfer(  # noqa: E731
        tx, "BLACK", serial, caller="ann", from_="ann", to="cat", at=at
    )
    return [buy("bob"), gift]


@pytest.mark.parametrize("kind", ["buy_vs_cancel", "two_buyers", "gift_vs_sale"])
def test_exactly_one_wins(db_engine: Engine, kind: str) -> None:
    store = store_for(db_engine)
    tid = tenant(db_engine)
    setup(store, tid, card(), {"ann": Decimal(0), "bob": Decimal(1000), "cat": Decimal(1000)})
    for serial in range(1, ROUNDS + 1):
        lid = _listed(store, tid, serial)
        ops = _ops(kind, lid, serial, T0 + serial)
        out = _race(store, tid, *ops)
        errors = [o for o in out if isinstance(o, Exception)]
        assert len(errors) == 1, out
        assert isinstance(errors[0], NFGError), errors
        owner = _check(db_engine, tid, serial, {"ann", "bob", "cat"})
        with db_engine.connect() as conn:
            state = market.get_listing(conn, tid, lid).state
        bought = not isinstance(out[0], Exception)
        expected = {
            "buy_vs_cancel": "sold" if bought else "cancelled",
            "two_buyers": "sold",
            "gift_vs_sale": "sold" if bought else "open",  # stale: no buyer can take it
        }[kind]
        assert state == expected
        if kind == "buy_vs_cancel":
            assert owner == ("bob" if bought else "ann")
    figures = Ledger(db_engine).members(tid)
    sold = sum(Decimal(figures[m]["stable"]) for m in ("bob", "cat"))
    with db_engine.connect() as conn:
        bought_n = len(tokens.tokens_of(conn, tid, "bob"))
        if kind == "two_buyers":
            bought_n += len(tokens.tokens_of(conn, tid, "cat"))
    # every SP that left the buyers paid for exactly one token at 100
    assert Decimal(2000) - sold == 100 * bought_n
