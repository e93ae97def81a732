"""The worked example of docs/NFG.md, end to end on a fresh SQLite file: a 5,000-unit black
card minted on purchase, gifted after the holding time, listed, bought with SP (royalty to the
issuer, part of the fee into the EP pool), a use redeemed, its provenance, an anchored proof
and the mirror on the EVM.  Run:  .venv/bin/python examples/nfg_black_card.py
(tests/integration/test_nfg_docs_example.py runs it and checks the figures the docs quote)."""

from __future__ import annotations

import json
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

from tokenmall.bootstrap import event_handlers
from tokenmall.domain.commands import RewardGrant
from tokenmall.domain.economy import Asset
from tokenmall.domain.nfg import Collection, Kind, Mode
from tokenmall.domain.params import TenantParams
from tokenmall.errors import TokenmallError
from tokenmall.service import catalog, members
from tokenmall.service.ledger import Ledger
from tokenmall.service.messagebus import EventBus
from tokenmall.service.nfg import collections, log, market, tokens
from tokenmall.service.orders import OrderService, PaymentHub
from tokenmall.service.uow import Store
from tokenmall.store.db import create_db_engine, migrate

DAY = 86_400.0


def main(out: list[str]) -> None:
    def say(line: str) -> None:
        out.append(line)

    path = Path(tempfile.mkdtemp(prefix="nfg-example-")) / "mall.db"
    engine = create_db_engine(f"sqlite:///{path}")
    migrate(engine)
    tid = Ledger(engine).create_tenant("lounge", TenantParams(settle_days=Decimal(0)))
    with engine.begin() as conn:
        merchant = catalog.create_merchant(conn, tid, code="lounge", name="Lounge")
        product = catalog.create_product(conn, tid, merchant_id=merchant.id, name="Black Card")
        sku = catalog.create_sku(
            conn, tid, product_id=product.id, name="card", price=Decimal(999), stock=5000
        )
        for m in ("ann", "bob", "cat", "issuer"):
            members.create_member(conn, tid, m)
    store = Store(engine, bus=EventBus(event_handlers()))
    black = Collection(
        code="BLACK",
        name="Black Card",
        max_supply=5000,
        price=Decimal("999.00"),
        kind=Kind.RIGHT,
        uses=12,
        accepted=frozenset({Asset.CNY, Asset.SP, Asset.EP}),
        issuer="issuer",
        royalty_bps=500,
        fee_bps=250,
        fee_to_pool_ratio=Decimal("0.5"),
        transfer_policy=Mode.OPEN,
        min_holding_seconds=7 * DAY,
    )
    with store.tenant_tx(tid) as tx:
        collections.create_collection(tx, black, product_id=product.id)
        tokens.ensure_member(tx, "cat")
        tx.apply_one("grant:cat", RewardGrant("cat", Decimal(2000), "example"))
    say("1. collection BLACK: 5000 units at 999.00, 12 uses, royalty 5%, fee 2.5% (half to pool)")

    svc = OrderService(engine, PaymentHub("example-secret-0123456789abcdef01"), store=store)
    order = svc.create_order(tid, member="ann", lines=[(sku.id, 1)])
    pay = svc.start_payment(tid, "lounge", order.ref)
    assert pay.intent_id is not None
    done = svc.complete_sandbox(tid, "lounge", pay.intent_id, deliver=False)
    for headers, body in done.deliveries:
        svc.handle_notification(tid, "lounge", "sandbox", headers, body, pump=False)
    with engine.connect() as conn:
        (card,) = tokens.tokens_of(conn, tid, "ann")
    t0 = card.acquired_at
    say(f"2. ann pays order {order.ref} (999.00 CNY): minted BLACK#{card.serial} to ann")

    try:
        with store.tenant_tx(tid) as tx:
            tokens.transfer(tx, "BLACK", 1, caller="ann", from_="ann", to="bob", at=t0 + DAY)
    except TokenmallError as err:
        say(f"3. gift to bob after 1 day: refused, {err.code}: {err}")
    with store.tenant_tx(tid) as tx:
        tokens.transfer(tx, "BLACK", 1, caller="ann", from_="ann", to="bob", at=t0 + 7 * DAY)
    say("   gift to bob after 7 days: done")

    with store.tenant_tx(tid) as tx:
        listing = market.list_token(
            tx, "BLACK", 1, caller="bob", price=Decimal("1288.00"), at=t0 + 14 * DAY
        )
    say(f"4. bob lists BLACK#1 at {listing.price} (listing {listing.id})")
    before = Ledger(engine).balances(tid)
    with store.tenant_tx(tid) as tx:
        sale = market.buy(tx, listing.id, buyer="cat", at=t0 + 15 * DAY)
    after = Ledger(engine).balances(tid)
    figures = Ledger(engine).members(tid)
    pool = after[("pool", "CNY")] - before.get(("pool", "CNY"), Decimal(0))
    say(
        f"5. cat buys with SP: price {sale.price}, fee {sale.fee} (pool {sale.pool_share}), "
        f"royalty {sale.royalty}, bob receives {sale.proceeds}"
    )
    say(
        f"   SP after: bob {figures['bob']['stable']}, cat {figures['cat']['stable']}, "
        f"issuer {figures['issuer']['stable']}; pool +{pool}"
    )

    with store.tenant_tx(tid) as tx:
        tokens.redeem(tx, "BLACK", 1, caller="cat", at=t0 + 16 * DAY)
    with engine.connect() as conn:
        meta = tokens.metadata(conn, tid, "BLACK", 1)
        prov = tokens.provenance(conn, tid, "BLACK", 1)
    uses = next(a for a in meta["attributes"] if a["trait_type"] == "Uses left")
    say(f"6. cat redeems a visit: {json.dumps(uses)}")
    say("7. provenance of BLACK#1:")
    for e in prov:
        price = "" if e["price"] is None else f" {e['price']} {e['asset']}"
        say(f"   #{e['seq']} {e['kind']:<8} {e['from'] or '-'} -> {e['to'] or '-'}{price}")

    with store.tenant_tx(tid) as tx:
        anchor = log.anchor(tx, at=t0 + 16 * DAY)
    with engine.connect() as conn:
        proof = log.proof(conn, tid, 3)
    say(f"8. anchor {anchor.id}: events {anchor.first_seq}-{anchor.last_seq}, root {anchor.root}")
    say(
        f"   proof of the sale (event 3): leaf {proof['index']} of {proof['tree_size']}, "
        f"{len(proof['proof'])} hashes, verifies offline: {log.check_proof(proof)}"
    )
    try:
        from tokenmall.service.nfg import mirror  # noqa: PLC0415 - the chain extra
    except ImportError:
        say("9. mirror: skipped (pip install 'tokenmall[chain]')")
    else:
        with engine.connect() as conn:
            result = mirror.mirror_collection(conn, tid, "BLACK")
            good, forged = mirror.anchor_on_chain(conn, tid, 3)
        say(
            f"9. mirror: {result.replayed} events replayed, {result.checked} token checked, "
            f"ownerOf equals the database: {result.ok}; proof on chain {good}, forged {forged}"
        )
    engine.dispose()


if __name__ == "__main__":
    main([])
    sys.exit(0)
