"""The NFG service on SQLite and PostgreSQL: the worked example's path end to end, errors
that change nothing, the hash chain and its anchors."""

from __future__ import annotations

from decimal import Decimal

import pytest
from nfg_helpers import DAY, T0, card, setup, store_for, sums, tenant
from sqlalchemy import Engine, update

from tokenmall.domain.economy import Asset
from tokenmall.domain.nfg import (
    ERC721IncorrectOwner,
    ERC721InsufficientApproval,
    ERC721NonexistentToken,
    HoldingPeriod,
    ListingClosed,
    ListingStale,
)
from tokenmall.errors import InsufficientBalance
from tokenmall.service.ledger import Ledger
from tokenmall.service.nfg import log, market, tokens
from tokenmall.store import schema as s


def _balances(engine: Engine, tid: int) -> dict[tuple[str, str], Decimal]:
    return Ledger(engine).balances(tid)


def test_mint_gift_list_buy_redeem(db_engine: Engine) -> None:
    store = store_for(db_engine)
    tid = tenant(db_engine)
    setup(
        store,
        tid,
        card(min_holding_seconds=7 * DAY),
        {"ann": Decimal(2000), "bob": Decimal(0), "cat": Decimal(2000)},
    )
    with store.tenant_tx(tid) as tx:
        ev = tokens.mint_for(tx, "BLACK", "ann", Asset.SP, at=T0)
    assert ev.token.serial == 1
    with pytest.raises(HoldingPeriod), store.tenant_tx(tid) as tx:
        tokens.transfer(tx, "BLACK", 1, caller="ann", from_="ann", to="bob", at=T0 + DAY)
    with pytest.raises(ERC721IncorrectOwner), store.tenant_tx(tid) as tx:
        tokens.transfer(tx, "BLACK", 1, caller="ann", from_="bob", to="cat", at=T0 + 8 * DAY)
    with store.tenant_tx(tid) as tx:
        tokens.transfer(tx, "BLACK", 1, caller="ann", from_="ann", to="bob", at=T0 + 7 * DAY)
    with store.tenant_tx(tid) as tx:
        listing = market.list_token(
            tx, "BLACK", 1, caller="bob", price=Decimal("1288.00"), at=T0 + 14 * DAY
        )
    with pytest.raises(ERC721InsufficientApproval), store.tenant_tx(tid) as tx:
        market.cancel(tx, listing.id, caller="cat")
    before = _balances(db_engine, tid)
    with store.tenant_tx(tid) as tx:
        st = market.buy(tx, listing.id, buyer="cat", at=T0 + 15 * DAY)
    after = _balances(db_engine, tid)
    assert (st.fee, st.pool_share, st.royalty, st.proceeds) == (
        Decimal("32.20"),
        Decimal("16.10"),
        Decimal("64.40"),
        Decimal("1191.40"),
    )
    assert after[("pool", "CNY")] - before.get(("pool", "CNY"), Decimal(0)) == Decimal("16.10")
    with pytest.raises(ListingClosed), store.tenant_tx(tid) as tx:
        market.buy(tx, listing.id, buyer="ann", at=T0 + 16 * DAY)
    with store.tenant_tx(tid) as tx:
        tokens.redeem(tx, "BLACK", 1, caller="cat", at=T0 + 16 * DAY)
    with db_engine.connect() as conn:
        view = tokens.get_token(conn, tid, "BLACK", 1)
        prov = tokens.provenance(conn, tid, "BLACK", 1)
        meta = tokens.metadata(conn, tid, "BLACK", 1)
        assert log.verify_chain(conn, tid) is None
    assert (view.owner, view.uses_left) == ("cat", 11)
    assert [p["kind"] for p in prov] == ["mint", "transfer", "sale", "redeem"]
    assert [(p["from"], p["to"]) for p in prov] == [
        (None, "ann"),
        ("ann", "bob"),
        ("bob", "cat"),
        ("cat", "cat"),
    ]
    assert {"trait_type": "Uses left", "value": 11, "max_value": 12} in meta["attributes"]
    assert all(v == 0 for v in sums(db_engine, tid).values())
    members = Ledger(db_engine).members(tid)
    assert Decimal(members["ann"]["stable"]) == Decimal("1001.00")  # 2000 - 999 primary
    assert Decimal(members["bob"]["stable"]) == Decimal("1191.40")
    assert Decimal(members["cat"]["stable"]) == Decimal("712.00")  # 2000 - 1288


def test_refused_buy_changes_nothing(db_engine: Engine) -> None:
    store = store_for(db_engine)
    tid = tenant(db_engine)
    setup(store, tid, card(), {"ann": Decimal(0), "bob": Decimal(10)})
    with store.tenant_tx(tid) as tx:
        tokens.airdrop(tx, "BLACK", ["ann"], at=T0)
        listing = market.list_token(tx, "BLACK", 1, caller="ann", price=Decimal(50), at=T0)
    with pytest.raises(InsufficientBalance), store.tenant_tx(tid) as tx:
        market.buy(tx, listing.id, buyer="bob", at=T0 + 1)
    with db_engine.connect() as conn:
        assert tokens.get_token(conn, tid, "BLACK", 1).owner == "ann"
        assert market.get_listing(conn, tid, listing.id).state == "open"
        assert len(tokens.provenance(conn, tid, "BLACK", 1)) == 1
    # the owner gifts it: the listing can no longer be honoured
    with store.tenant_tx(tid) as tx:
        tokens.transfer(tx, "BLACK", 1, caller="ann", from_="ann", to="bob", at=T0 + 2)
    with pytest.raises(ListingStale), store.tenant_tx(tid) as tx:
        market.buy(tx, listing.id, buyer="bob", at=T0 + 3)
    with store.tenant_tx(tid) as tx:
        tokens.burn(tx, "BLACK", 1, caller="bob", at=T0 + 4)
    with pytest.raises(ERC721NonexistentToken), store.tenant_tx(tid) as tx:
        tokens.redeem(tx, "BLACK", 1, caller="bob", at=T0 + 5)
    with db_engine.connect() as conn:
        assert tokens.tokens_of(conn, tid, "bob") == []


def test_anchor_proof_and_tamper(db_engine: Engine) -> None:
    store = store_for(db_engine)
    tid = tenant(db_engine)
    setup(store, tid, card(), {})
    with store.tenant_tx(tid) as tx:
        tokens.airdrop(tx, "BLACK", ["ann", "bob", "cat"], at=T0)
        a1 = log.anchor(tx, at=T0)
        tokens.redeem(tx, "BLACK", 2, caller="bob", at=T0 + 1)
        a2 = log.anchor(tx, at=T0 + 1)
    assert (a1.first_seq, a1.last_seq, a2.first_seq, a2.last_seq) == (1, 3, 4, 4)
    with db_engine.connect() as conn:
        doc = log.proof(conn, tid, 2)
    assert log.check_proof(doc)
    forged = dict(doc, entry=doc["entry"].replace('"to":"bob"', '"to":"eve"'))
    assert not log.check_proof(forged)
    with db_engine.begin() as conn:
        conn.execute(
            update(s.nfg_events)
            .where(s.nfg_events.c.tenant_id == tid, s.nfg_events.c.seq == 2)
            .values(entry=forged["entry"])
        )
    with db_engine.connect() as conn:
        assert log.verify_chain(conn, tid) == 2
