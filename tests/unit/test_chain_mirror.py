"""The chain mirror: NFG provenance replayed onto the ERC-721 contract, and Merkle anchoring.

200 tokens are minted, gifted, traded and burned through the pure registry and exchange;
the events are replayed onto TokenmallNFG on titanoboa's in-process EVM once per module,
and every token's ownerOf must equal the registry.  Skipped without the ``chain`` extra.
"""

from __future__ import annotations

import time
from decimal import Decimal
from random import Random

import pytest

from tokenmall.domain import merkle
from tokenmall.domain.economy import Asset
from tokenmall.domain.nfg import (
    Collection,
    EventKind,
    Exchange,
    Mode,
    NFGError,
    Registry,
    TokenRef,
    events_root,
    primary_sale,
)

boa = pytest.importorskip("boa")

from tokenmall.chain import ChainMirror, MerkleAnchor, member_address  # noqa: E402

T0 = 1_767_225_600.0
MEMBERS = [f"m{i}" for i in range(12)]
SUPPLY = 250
MINTED = 200


def _history() -> tuple[Registry, Collection]:
    rng = Random(6962)
    card = Collection(
        code="BLACK",
        name="Black Card",
        max_supply=SUPPLY,
        price=Decimal("999.00"),
        transfer_policy=Mode.OPEN,
        fee_bps=250,
        royalty_bps=500,
        min_holding_seconds=60,
    )
    reg = Registry()
    reg.add_collection(card)
    ex = Exchange(reg)
    now = T0
    for i in range(MINTED):
        to = rng.choice(MEMBERS)
        if i % 2:
            primary_sale(reg, "BLACK", to, Asset.SP, at=now)
        else:
            reg.mint("BLACK", to, at=now)  # an airdrop
    for step in range(600):
        now += 61
        ref = TokenRef("BLACK", rng.randint(1, MINTED))
        if not reg.exists(ref):
            continue
        owner = reg.owner_of(ref)
        other = rng.choice([m for m in MEMBERS if m != owner])
        roll = step % 10
        try:
            if roll < 4:
                reg.transfer_from(owner, owner, other, ref, at=now)
            elif roll < 6:  # a gift by an operator
                reg.set_approval_for_all(owner, "BLACK", "broker", True)
                reg.transfer_from("broker", owner, other, ref, at=now)
            elif roll < 9:
                listing = ex.list_token(owner, ref, Decimal(rng.randint(100, 5000)), at=now)
                ex.buy(other, listing.id, Asset.CNY, at=now)
            elif step % 20 == 9:
                reg.burn(owner, ref, at=now)
        except NFGError:
            pass
    return reg, card


@pytest.fixture(scope="module")
def world() -> tuple[Registry, ChainMirror, float]:
    reg, card = _history()
    started = time.perf_counter()
    mirror = ChainMirror(card, base_uri="https://nfg.example/black/")
    deployed = time.perf_counter()
    mirror.replay(reg.events)
    replayed = time.perf_counter()
    print(  # shown with -s: compile+deploy and replay times
        f"\nchain mirror: compile+deploy {deployed - started:.2f} s, "
        f"replay {len(reg.events)} events {replayed - deployed:.2f} s"
    )
    return reg, mirror, replayed - started


def _expected(reg: Registry) -> dict[TokenRef, str | None]:
    refs = [TokenRef("BLACK", s) for s in range(1, SUPPLY + 1)]
    return {r: reg.owner_of(r) if reg.exists(r) else None for r in refs}


def test_the_history_exercises_every_kind_of_event(world: tuple[Registry, ChainMirror, float]):
    reg, mirror, _ = world
    kinds = {e.kind for e in reg.events}
    assert kinds == {EventKind.MINT, EventKind.TRANSFER, EventKind.SALE, EventKind.BURN}
    assert sum(e.kind is EventKind.MINT for e in reg.events) == MINTED
    assert sum(e.kind is EventKind.SALE for e in reg.events) > 50
    assert mirror.replayed == len(reg.events)


def test_every_owner_on_chain_equals_the_registry(world: tuple[Registry, ChainMirror, float]):
    reg, mirror, _ = world
    report = mirror.compare(_expected(reg))
    assert report.checked == SUPPLY
    assert report.ok, report.differences[:5]
    for m in MEMBERS:
        assert mirror.balance_of(m) == reg.balance_of("BLACK", m)
    assert mirror.contract.totalSupply() == reg.total_supply("BLACK")


def test_a_tampered_expected_owner_is_detected(world: tuple[Registry, ChainMirror, float]):
    reg, mirror, _ = world
    expected = _expected(reg)
    owned = next(r for r, m in expected.items() if m is not None)
    burned_or_unminted = next(r for r, m in expected.items() if m is None)
    real = expected[owned]
    assert real is not None
    expected[owned] = "mallory"
    expected[burned_or_unminted] = "mallory"
    report = mirror.compare(expected)
    assert not report.ok
    assert [(d.token, d.expected, d.on_chain) for d in report.differences] == sorted(
        [
            (owned, "mallory", member_address(real)),
            (burned_or_unminted, "mallory", None),
        ]
    )


def test_the_contract_enforces_erc721():
    # a small collection of its own: titanoboa renders a contract's whole storage into each
    # revert message, slow on the 200-token mirror
    card = Collection(
        code="TINY", name="Tiny", max_supply=3, price=Decimal(1), transfer_policy=Mode.OPEN
    )
    reg = Registry()
    reg.add_collection(card)
    ref = reg.mint("TINY", "ann", at=T0).token
    mirror = ChainMirror(card, base_uri="https://nfg.example/tiny/")
    mirror.replay(reg.events)
    c = mirror.contract
    assert c.supportsInterface(bytes.fromhex("80ac58cd"))
    assert c.supportsInterface(bytes.fromhex("01ffc9a7"))
    assert not c.supportsInterface(bytes.fromhex("ffffffff"))
    owner = member_address("ann")
    stranger = member_address("stranger")
    with boa.reverts("ERC721: nonexistent token"):
        c.ownerOf(2)
    with boa.env.anchor():  # every change below is rolled back
        with boa.env.prank(stranger), boa.reverts("ERC721: insufficient approval"):
            c.transferFrom(owner, stranger, ref.serial)
        with boa.env.prank(stranger), boa.reverts("only the platform mints"):
            c.mint(stranger, 2)
        with boa.env.prank(mirror.platform), boa.reverts("serial already issued"):
            c.mint(stranger, ref.serial)
        with boa.env.prank(mirror.platform), boa.reverts("serial outside the collection"):
            c.mint(stranger, 4)
        with boa.env.prank(owner):
            c.approve(stranger, ref.serial)
        with boa.env.prank(stranger):
            c.transferFrom(owner, stranger, ref.serial)
        assert c.getApproved(ref.serial) == "0x" + "00" * 20  # cleared on transfer
        assert str(c.ownerOf(ref.serial)).lower() == stranger
        with boa.env.prank(stranger), boa.reverts("ERC721: incorrect owner"):
            c.transferFrom(owner, stranger, ref.serial)
        with boa.env.prank(stranger), boa.reverts("ERC721: invalid receiver"):
            c.transferFrom(stranger, "0x" + "00" * 20, ref.serial)
        assert c.tokenURI(ref.serial) == "https://nfg.example/tiny/1"
    assert mirror.compare({ref: "ann", TokenRef("TINY", 2): None}).ok


@pytest.fixture(scope="module")
def anchor() -> MerkleAnchor:
    return MerkleAnchor()


def test_an_inclusion_proof_verifies_on_chain_and_a_forged_one_does_not(
    world: tuple[Registry, ChainMirror, float], anchor: MerkleAnchor
):
    reg, _, _ = world
    leaves = [e.leaf for e in reg.events]
    n = len(leaves)
    root = events_root(reg.events)
    assert root == merkle.root(leaves)
    anchor.publish(root, n)
    assert anchor.tree_size_of(root) == n
    with boa.reverts("root already published"):
        anchor.publish(root, n)
    for i in (0, 1, n // 2, n - 2, n - 1):
        proof = merkle.inclusion_proof(leaves, i)
        assert anchor.verify(leaves[i], i, n, proof, root)
        assert anchor.verify_published(leaves[i], i, proof, root)
    i = n // 3
    proof = merkle.inclusion_proof(leaves, i)
    forged = [bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]]
    assert not anchor.verify(leaves[i], i, n, forged, root)
    assert not anchor.verify(leaves[i + 1], i, n, proof, root)  # another event's leaf
    assert not anchor.verify(leaves[i], i + 1, n, proof, root)
    assert not anchor.verify(leaves[i], n, n, proof, root)
    assert not anchor.verify(leaves[i], i, n, proof[:-1], root)
    assert not anchor.verify(leaves[i], i, n, [p[:31] for p in proof], root)
    other_root = merkle.root(leaves[:-1])
    assert not anchor.verify_published(leaves[i], i, proof, other_root)  # never published
    with boa.env.prank(member_address("mallory")), boa.reverts("only the platform publishes roots"):
        anchor.contract.publish(other_root, n - 1)


def test_the_contract_and_python_agree_on_small_trees(anchor: MerkleAnchor):
    rng = Random(9162)
    for n in range(1, 12):
        leaves = [merkle.leaf_hash(rng.randbytes(8)) for _ in range(n)]
        root = merkle.root(leaves)
        for i in range(n):
            proof = merkle.inclusion_proof(leaves, i)
            assert anchor.verify(leaves[i], i, n, proof, root)
            j = (i + 1) % n
            assert anchor.verify(leaves[i], j, n, proof, root) == merkle.verify_inclusion(
                leaves[i], j, n, proof, root
            )
