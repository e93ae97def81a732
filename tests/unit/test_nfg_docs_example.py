"""The worked example of docs/NFG.md, number by number."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tokenmall.domain import merkle
from tokenmall.domain.economy import Asset
from tokenmall.domain.nfg import (
    Collection,
    EventKind,
    Exchange,
    HoldingPeriod,
    Kind,
    Mode,
    Payment,
    Registry,
    TokenMove,
    TokenRef,
    events_root,
    primary_sale,
)

T0 = 1_767_225_600.0
DAY = 86_400
ROOT = "c09a8c5be5ae3e53050f148e3c6b0072e4d744929ceaeb05c7af2d19c284b62f"


def black_card_history() -> Registry:
    black = Collection(
        code="BLACK",
        name="Black Card",
        max_supply=5000,
        price=Decimal("999.00"),
        kind=Kind.RIGHT,
        uses=12,
        expires_at=T0 + 365 * DAY,
        accepted=frozenset({Asset.CNY, Asset.SP, Asset.EP}),
        issuer="merchant:7",
        royalty_bps=500,
        fee_bps=250,
        fee_to_pool_ratio=Decimal("0.5"),
        transfer_policy=Mode.OPEN,
        min_holding_seconds=7 * DAY,
        real_name_only=True,
        daily_transfer_limit=5,
    )
    reg = Registry()
    reg.add_collection(black)
    for m in ("ann", "bob", "cat"):
        reg.verify_real_name(m)
    ex = Exchange(reg)

    s = primary_sale(reg, "BLACK", "ann", Asset.SP, at=T0)
    ref = TokenRef("BLACK", 1)
    assert s.payments == (Payment(Asset.SP, "ann", "merchant:7", Decimal("999.00")),)
    assert s.token_moves == (TokenMove(ref, None, "ann"),)

    with pytest.raises(HoldingPeriod, match="604800 s before it changes hands: 518400 s left"):
        reg.transfer_from("ann", "ann", "bob", ref, at=T0 + DAY)
    reg.transfer_from("ann", "ann", "bob", ref, at=T0 + 7 * DAY)

    listing = ex.list_token("bob", ref, Decimal("1288.00"), at=T0 + 14 * DAY)
    sale = ex.buy("cat", listing.id, Asset.CNY, at=T0 + 15 * DAY)
    assert (sale.fee, sale.pool_share, sale.royalty, sale.proceeds) == (
        Decimal("32.20"),
        Decimal("16.10"),
        Decimal("64.40"),
        Decimal("1191.40"),
    )
    assert sale.payments == (
        Payment(Asset.CNY, "cat", "bob", Decimal("1191.40")),
        Payment(Asset.CNY, "cat", "revenue", Decimal("16.10")),
        Payment(Asset.CNY, "cat", "pool", Decimal("16.10")),
        Payment(Asset.CNY, "cat", "merchant:7", Decimal("64.40")),
    )
    assert sum(p.amount for p in sale.payments) == Decimal("1288.00")

    reg.redeem("cat", ref, at=T0 + 16 * DAY)
    assert reg.owner_of(ref) == "cat"
    uses = {"trait_type": "Uses left", "value": 11, "max_value": 12}
    assert uses in reg.metadata(ref)["attributes"]
    return reg


def test_the_worked_example() -> None:
    reg = black_card_history()
    events = reg.events
    assert [(e.seq, e.kind, e.from_, e.to, e.price, e.asset, e.uses_left) for e in events] == [
        (1, EventKind.MINT, None, "ann", Decimal("999.00"), Asset.SP, 12),
        (2, EventKind.TRANSFER, "ann", "bob", None, None, 12),
        (3, EventKind.SALE, "bob", "cat", Decimal("1288.00"), Asset.CNY, 12),
        (4, EventKind.REDEEM, "cat", "cat", None, None, 11),
    ]
    assert events[0].canonical() == (
        b'{"asset":"SP","at":"1767225600.0","code":"BLACK","from":null,"kind":"mint",'
        b'"price":"999.00","seq":1,"serial":1,"to":"ann","uses_left":12}'
    )
    assert json.loads(events[0].canonical())["price"] == "999.00"
    leaves = [e.leaf for e in events]
    assert events_root(events).hex() == ROOT
    proof = merkle.inclusion_proof(leaves, 2)
    assert proof == [leaves[3], merkle.node_hash(leaves[0], leaves[1])]


def test_the_automatic_appreciation_numbers() -> None:
    c = Collection(
        code="A",
        name="a",
        max_supply=1,
        price=Decimal("999.00"),
        transfer_policy=Mode.OPEN,
        fee_bps=250,
        royalty_bps=500,
        appreciation_step=Decimal("0.05"),
    )
    p = c.price
    prices = []
    for _ in range(10):
        p = c.next_price(p)
        prices.append(p)
    assert prices[:4] == [Decimal(x) for x in ("1048.95", "1101.39", "1156.45", "1214.27")]
    assert prices[-1] == Decimal("1627.20")
    first = prices[0]
    assert first - c.fee(first) - c.royalty(first) == Decimal("970.29")  # -28.71 for the seller
    # break-even step 1 / (1 - 0.075) - 1 = 8.108...%
    assert round(1 / Decimal("0.925") - 1, 4) == Decimal("0.0811")


def test_the_mirror_of_the_worked_example() -> None:
    boa = pytest.importorskip("boa")
    from tokenmall.chain import ChainMirror, MerkleAnchor, member_address  # noqa: PLC0415

    reg = black_card_history()
    mirror = ChainMirror(reg.collection("BLACK"))
    assert mirror.replay(reg.events) == 3  # the redemption is not replayed
    cat = member_address("cat")
    assert cat == "0x51537b32dc6537275f1c24e8a97b278323ee831c"
    assert mirror.owner_on_chain(1) == cat
    assert mirror.compare({TokenRef("BLACK", 1): "cat"}).ok

    anchor = MerkleAnchor()
    leaves = [e.leaf for e in reg.events]
    root = bytes.fromhex(ROOT)
    anchor.publish(root, 4)
    proof = merkle.inclusion_proof(leaves, 2)
    assert anchor.verify_published(leaves[2], 2, proof, root)
    flipped = [bytes([proof[0][0] ^ 0x80]) + proof[0][1:], proof[1]]
    assert not anchor.verify_published(leaves[2], 2, flipped, root)
    assert boa is not None
