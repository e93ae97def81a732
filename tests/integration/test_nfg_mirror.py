"""The chain mirror over the store: 200 tokens minted, gifted, traded and burned through the
service, replayed onto the ERC-721 contract on titanoboa's EVM; every ownerOf equals the
database, a tampered token row or event is detected, and an event's inclusion proof verifies
on the MerkleAnchor contract while a forged one does not."""

from __future__ import annotations

from decimal import Decimal

import pytest
from nfg_helpers import T0, card, setup, store_for, tenant
from sqlalchemy import Engine, update

from tokenmall.domain.nfg import Mode
from tokenmall.service.nfg import log, market, tokens
from tokenmall.store import schema as s

pytest.importorskip("boa")

from tokenmall.service.nfg import mirror

N = 200
MEMBERS = [f"m{i}" for i in range(10)]


def test_mirror_200_tokens_and_detect_tampering(db_engine: Engine) -> None:
    store = store_for(db_engine)
    tid = tenant(db_engine)
    coll = card(kind=card().kind.ITEM, uses=0, transfer_policy=Mode.OPEN, max_supply=N)
    setup(store, tid, coll, {m: Decimal(100_000) for m in MEMBERS})
    with store.tenant_tx(tid) as tx:
        tokens.airdrop(tx, "BLACK", [MEMBERS[i % 10] for i in range(N)], at=T0)
    owner = {i + 1: MEMBERS[i % 10] for i in range(N)}
    with store.tenant_tx(tid) as tx:
        for serial in range(1, N + 1, 3):  # gifts
            to = MEMBERS[(MEMBERS.index(owner[serial]) + 1) % 10]
            tokens.transfer(
                tx, "BLACK", serial, caller=owner[serial], from_=owner[serial], to=to, at=T0 + 1
            )
            owner[serial] = to
        for serial in range(2, N + 1, 5):  # trades
            lid = market.list_token(
                tx, "BLACK", serial, caller=owner[serial], price=Decimal(100), at=T0 + 2
            ).id
            buyer = MEMBERS[(MEMBERS.index(owner[serial]) + 3) % 10]
            market.buy(tx, lid, buyer=buyer, at=T0 + 3)
            owner[serial] = buyer
        for serial in range(7, N + 1, 7):  # burns
            tokens.burn(tx, "BLACK", serial, caller=owner[serial], at=T0 + 4)
        log.anchor(tx, at=T0 + 5)
    with db_engine.connect() as conn:
        result = mirror.mirror_collection(conn, tid, "BLACK")
    assert result.ok, result
    assert result.checked == N
    assert result.replayed >= N + N // 3 + N // 5 + N // 7

    with db_engine.connect() as conn:
        good, forged = mirror.anchor_on_chain(conn, tid, 42)
    assert (good, forged) == (True, False)

    # a token row changed behind the service's back
    t = s.nfg_tokens.c
    with db_engine.begin() as conn:
        conn.execute(
            update(s.nfg_tokens).where(t.tenant_id == tid, t.serial == 10).values(owner="mallory")
        )
    with db_engine.connect() as conn:
        tampered = mirror.mirror_collection(conn, tid, "BLACK")
    assert not tampered.ok
    assert [(d.token.serial, d.expected) for d in tampered.differences] == [(10, "mallory")]

    # an event changed behind its back: the hash chain breaks at it
    e = s.nfg_events.c
    with db_engine.begin() as conn:
        row = conn.execute(s.nfg_events.select().where(e.tenant_id == tid, e.seq == 5)).first()
        assert row is not None
        entry = row.entry.replace(f'"to":"{row.to_member}"', '"to":"mallory"')
        assert entry != row.entry
        conn.execute(
            update(s.nfg_events)
            .where(e.tenant_id == tid, e.seq == 5)
            .values(to_member="mallory", entry=entry)
        )
    with db_engine.connect() as conn:
        assert mirror.mirror_collection(conn, tid, "BLACK").chain_break == 5
