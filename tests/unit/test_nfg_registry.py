"""The NFG registry: every ERC-721 rule and every transfer-policy rule, errors included."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from decimal import Decimal

import pytest

from tokenmall import errors as base
from tokenmall.domain import merkle
from tokenmall.domain.economy import Asset
from tokenmall.domain.nfg import (
    Collection,
    DailyLimit,
    ERC721IncorrectOwner,
    ERC721InsufficientApproval,
    ERC721InvalidApprover,
    ERC721InvalidOperator,
    ERC721InvalidOwner,
    ERC721InvalidReceiver,
    ERC721NonexistentToken,
    EventKind,
    HoldingPeriod,
    Kind,
    MetadataTemplate,
    Mode,
    NFGError,
    NotOwnerNorApproved,
    NotRedeemable,
    RealNameRequired,
    Registry,
    RightExpired,
    RightUsedUp,
    SelfTransfer,
    SupplyExhausted,
    TokenRef,
    TransferForbidden,
    events_root,
)
from tokenmall.domain.nfg import errors as nfg_errors

T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC, 08:00 in Beijing
DAY = 86_400.0


def card(**kw: object) -> Collection:
    base_kw: dict[str, object] = {
        "code": "BLACK",
        "name": "Black Card",
        "max_supply": 3,
        "price": Decimal("999.00"),
        "transfer_policy": Mode.OPEN,
    }
    base_kw.update(kw)
    return Collection(**base_kw)  # type: ignore[arg-type]


def registry(**kw: object) -> Registry:
    reg = Registry()
    reg.add_collection(card(**kw))
    return reg


def test_mint_numbers_serials_and_never_exceeds_max_supply() -> None:
    reg = registry()
    events = [reg.mint("BLACK", m, at=T0) for m in ("ann", "bob", "ann")]
    assert [e.token.serial for e in events] == [1, 2, 3]
    assert reg.owner_of(TokenRef("BLACK", 3)) == "ann"
    assert reg.balance_of("BLACK", "ann") == 2
    assert reg.tokens_of("ann") == [TokenRef("BLACK", 1), TokenRef("BLACK", 3)]
    with pytest.raises(SupplyExhausted) as err:
        reg.mint("BLACK", "cat", at=T0)
    assert err.value.code == "nfg_supply_exhausted"
    assert isinstance(err.value, base.SupplyExhausted)  # the platform-wide error too
    # a burned serial is never issued again
    reg.burn("ann", TokenRef("BLACK", 1), at=T0)
    with pytest.raises(SupplyExhausted):
        reg.mint("BLACK", "cat", at=T0)
    assert (reg.minted("BLACK"), reg.total_supply("BLACK")) == (3, 2)


def test_mint_to_nobody_and_unknown_collection() -> None:
    reg = registry()
    with pytest.raises(ERC721InvalidReceiver):
        reg.mint("BLACK", "", at=T0)
    with pytest.raises(base.NotFound):
        reg.mint("GOLD", "ann", at=T0)


def test_views_of_a_nonexistent_token() -> None:
    reg = registry()
    ref = TokenRef("BLACK", 1)
    for view in (reg.owner_of, reg.get_approved, reg.metadata):
        with pytest.raises(ERC721NonexistentToken) as err:
            view(ref)
        assert err.value.code == "erc721_nonexistent_token"
        assert "BLACK#1" in str(err.value)
    with pytest.raises(ERC721InvalidOwner):
        reg.balance_of("BLACK", "")


def test_transfer_by_owner_approved_and_operator() -> None:
    reg = registry()
    a, b, c = (reg.mint("BLACK", "ann", at=T0).token for _ in range(3))
    reg.transfer_from("ann", "ann", "bob", a, at=T0 + 1)
    assert reg.owner_of(a) == "bob"
    reg.approve("ann", "dan", b)
    assert reg.get_approved(b) == "dan"
    reg.transfer_from("dan", "ann", "eve", b, at=T0 + 2)
    assert reg.owner_of(b) == "eve"
    assert reg.get_approved(b) is None  # cleared on transfer
    reg.set_approval_for_all("ann", "BLACK", "op", True)
    assert reg.is_approved_for_all("BLACK", "ann", "op")
    reg.transfer_from("op", "ann", "bob", c, at=T0 + 3)
    assert reg.balance_of("BLACK", "bob") == 2
    assert reg.balance_of("BLACK", "ann") == 0
    reg.set_approval_for_all("ann", "BLACK", "op", False)
    assert not reg.is_approved_for_all("BLACK", "ann", "op")


def test_transfer_errors_in_erc721_order() -> None:
    reg = registry()
    ref = reg.mint("BLACK", "ann", at=T0).token
    with pytest.raises(ERC721InvalidReceiver):
        reg.transfer_from("ann", "ann", "", ref, at=T0)
    with pytest.raises(ERC721NonexistentToken):
        reg.transfer_from("ann", "ann", "bob", TokenRef("BLACK", 2), at=T0)
    with pytest.raises(ERC721InsufficientApproval) as err:
        reg.transfer_from("bob", "ann", "bob", ref, at=T0)
    assert NotOwnerNorApproved is ERC721InsufficientApproval
    assert err.value.code == "erc721_insufficient_approval"
    with pytest.raises(ERC721IncorrectOwner):
        reg.transfer_from("ann", "bob", "cat", ref, at=T0)
    # an operator of someone else is not an operator of the owner
    reg.set_approval_for_all("bob", "BLACK", "op", True)
    with pytest.raises(ERC721InsufficientApproval):
        reg.transfer_from("op", "ann", "cat", ref, at=T0)
    assert reg.owner_of(ref) == "ann"


def test_approve_rules() -> None:
    reg = registry()
    ref = reg.mint("BLACK", "ann", at=T0).token
    with pytest.raises(ERC721InvalidApprover):
        reg.approve("bob", "bob", ref)
    reg.set_approval_for_all("ann", "BLACK", "op", True)
    reg.approve("op", "dan", ref)  # an operator may approve
    assert reg.get_approved(ref) == "dan"
    with pytest.raises(ERC721InvalidApprover):
        reg.approve("dan", "eve", ref)  # the approved address may not
    reg.approve("ann", None, ref)
    assert reg.get_approved(ref) is None
    with pytest.raises(ERC721InvalidOperator):
        reg.set_approval_for_all("ann", "BLACK", "", True)


def test_operators_are_per_collection() -> None:
    reg = registry()
    reg.add_collection(card(code="GOLD"))
    gold = reg.mint("GOLD", "ann", at=T0).token
    reg.set_approval_for_all("ann", "BLACK", "op", True)
    with pytest.raises(ERC721InsufficientApproval):
        reg.transfer_from("op", "ann", "bob", gold, at=T0)


@pytest.mark.parametrize(
    ("policy", "message"), [(Mode.OFF, "may not be transferred"), (Mode.GIFT_ONLY, None)]
)
def test_transfer_policy(policy: Mode, message: str | None) -> None:
    reg = registry(transfer_policy=policy)
    ref = reg.mint("BLACK", "ann", at=T0).token
    if message:
        with pytest.raises(TransferForbidden, match=message) as err:
            reg.transfer_from("ann", "ann", "bob", ref, at=T0)
        assert err.value.code == "nfg_transfer_forbidden"
    else:
        reg.transfer_from("ann", "ann", "bob", ref, at=T0)
        assert reg.owner_of(ref) == "bob"
        # gift_only: a sale is refused
        with pytest.raises(TransferForbidden, match="may not be sold"):
            reg.check_transfer(ref, "bob", "cat", at=T0, sale=True)


def test_never_to_oneself() -> None:
    reg = registry()
    ref = reg.mint("BLACK", "ann", at=T0).token
    with pytest.raises(SelfTransfer):
        reg.transfer_from("ann", "ann", "ann", ref, at=T0)


def test_holding_period_starts_again_with_each_owner() -> None:
    reg = registry(min_holding_seconds=180 * DAY)
    ref = reg.mint("BLACK", "ann", at=T0).token
    with pytest.raises(HoldingPeriod, match="1 s left"):
        reg.transfer_from("ann", "ann", "bob", ref, at=T0 + 180 * DAY - 1)
    reg.transfer_from("ann", "ann", "bob", ref, at=T0 + 180 * DAY)
    with pytest.raises(HoldingPeriod):
        reg.transfer_from("bob", "bob", "cat", ref, at=T0 + 181 * DAY)


def test_daily_limit_counts_per_sender_per_beijing_day() -> None:
    reg = registry(daily_transfer_limit=2)
    refs = [reg.mint("BLACK", "ann", at=T0).token for _ in range(3)]
    # T0 is 08:00 Beijing time: the day ends 16 h later
    reg.transfer_from("ann", "ann", "bob", refs[0], at=T0)
    reg.transfer_from("ann", "ann", "bob", refs[1], at=T0 + 1)
    with pytest.raises(DailyLimit) as err:
        reg.transfer_from("ann", "ann", "bob", refs[2], at=T0 + 16 * 3600 - 1)
    assert err.value.code == "nfg_daily_limit"
    # the receiver's own sending is not limited by what it received
    reg.transfer_from("bob", "bob", "cat", refs[0], at=T0 + 2)
    reg.transfer_from("ann", "ann", "bob", refs[2], at=T0 + 16 * 3600)


def test_real_name_only() -> None:
    reg = registry(real_name_only=True)
    with pytest.raises(RealNameRequired):
        reg.mint("BLACK", "ann", at=T0)
    reg.verify_real_name("ann")
    ref = reg.mint("BLACK", "ann", at=T0).token
    with pytest.raises(RealNameRequired, match="'bob'"):
        reg.transfer_from("ann", "ann", "bob", ref, at=T0)
    reg.verify_real_name("bob")
    reg.transfer_from("ann", "ann", "bob", ref, at=T0)
    assert reg.has_real_name("bob")


def rights(**kw: object) -> Registry:
    return registry(kind=Kind.RIGHT, uses=2, expires_at=T0 + 365 * DAY, **kw)


def test_redeem_marks_a_use_and_never_burns() -> None:
    reg = rights()
    ref = reg.mint("BLACK", "ann", at=T0).token
    e = reg.redeem("ann", ref, at=T0 + 1)
    assert (e.kind, e.uses_left, e.from_, e.to) == (EventKind.REDEEM, 1, "ann", "ann")
    with pytest.raises(ERC721InsufficientApproval):
        reg.redeem("bob", ref, at=T0 + 2)
    reg.approve("ann", "shop", ref)
    reg.redeem("shop", ref, at=T0 + 2)  # the merchant scans with the owner's approval
    assert reg.token(ref).uses_left == 0
    assert reg.owner_of(ref) == "ann"
    with pytest.raises(RightUsedUp) as err:
        reg.redeem("ann", ref, at=T0 + 3)
    assert err.value.code == "nfg_right_used_up"
    # used up: no longer transferable (no_transfer_when_used is the default)
    with pytest.raises(RightUsedUp):
        reg.transfer_from("ann", "ann", "bob", ref, at=T0 + 4)


def test_used_up_rights_may_move_when_allowed() -> None:
    reg = rights(no_transfer_when_used=False)
    ref = reg.mint("BLACK", "ann", at=T0).token
    reg.redeem("ann", ref, at=T0)
    reg.redeem("ann", ref, at=T0)
    reg.transfer_from("ann", "ann", "bob", ref, at=T0)
    assert reg.owner_of(ref) == "bob"


def test_expired_rights() -> None:
    reg = rights()
    ref = reg.mint("BLACK", "ann", at=T0).token
    late = T0 + 366 * DAY
    with pytest.raises(RightExpired):
        reg.redeem("ann", ref, at=late)
    with pytest.raises(RightExpired):
        reg.transfer_from("ann", "ann", "bob", ref, at=late)


def test_items_are_not_redeemable() -> None:
    reg = registry()
    ref = reg.mint("BLACK", "ann", at=T0, item_no="BC-0001").token
    with pytest.raises(NotRedeemable):
        reg.redeem("ann", ref, at=T0)


def test_burn() -> None:
    reg = registry()
    ref = reg.mint("BLACK", "ann", at=T0).token
    with pytest.raises(ERC721InsufficientApproval):
        reg.burn("bob", ref, at=T0)
    reg.approve("ann", "bob", ref)
    e = reg.burn("bob", ref, at=T0)
    assert (e.kind, e.from_, e.to) == (EventKind.BURN, "ann", None)
    assert not reg.exists(ref)
    assert reg.balance_of("BLACK", "ann") == 0
    with pytest.raises(ERC721NonexistentToken):
        reg.burn("ann", ref, at=T0)


def test_metadata_json() -> None:
    tmpl = MetadataTemplate(
        name="Black Card #{serial}",
        description="Card {item_no} of the {code} series",
        image="https://img.example/black/{serial}.png",
        attributes=(("Tier", "Black"),),
    )
    reg = registry(metadata=tmpl)
    ref = reg.mint("BLACK", "ann", at=T0, item_no="BC-0001").token
    doc = reg.metadata(ref)
    assert json.loads(json.dumps(doc)) == {
        "name": "Black Card #1",
        "description": "Card BC-0001 of the BLACK series",
        "image": "https://img.example/black/1.png",
        "attributes": [
            {"trait_type": "Tier", "value": "Black"},
            {"trait_type": "Serial", "value": 1, "max_value": 3},
            {"trait_type": "Item number", "value": "BC-0001"},
        ],
    }
    r = rights(metadata=tmpl)
    rr = r.mint("BLACK", "ann", at=T0).token
    attrs = r.metadata(rr)["attributes"]
    assert {"trait_type": "Uses left", "value": 2, "max_value": 2} in attrs
    assert {"trait_type": "Expires", "display_type": "date", "value": int(T0 + 365 * DAY)} in attrs


def test_template_cannot_reach_attributes() -> None:
    reg = registry(metadata=MetadataTemplate(name="{serial.__class__}"))
    ref = reg.mint("BLACK", "ann", at=T0).token
    assert reg.metadata(ref)["name"] == "{serial.__class__}"


def test_provenance_is_append_only_and_hashable() -> None:
    reg = rights()
    ref = reg.mint("BLACK", "ann", at=T0, price=Decimal("999.00"), asset=Asset.SP).token
    reg.transfer_from("ann", "ann", "bob", ref, at=T0 + 1)
    reg.redeem("bob", ref, at=T0 + 2)
    reg.burn("bob", ref, at=T0 + 3)
    events = reg.provenance(ref)
    assert [(e.seq, e.kind, e.from_, e.to) for e in events] == [
        (1, EventKind.MINT, None, "ann"),
        (2, EventKind.TRANSFER, "ann", "bob"),
        (3, EventKind.REDEEM, "bob", "bob"),
        (4, EventKind.BURN, "bob", None),
    ]
    assert reg.events == tuple(events)
    first = json.loads(events[0].canonical())
    assert first == {
        "asset": "SP",
        "at": repr(T0),
        "code": "BLACK",
        "from": None,
        "kind": "mint",
        "price": "999.00",
        "seq": 1,
        "serial": 1,
        "to": "ann",
        "uses_left": 2,
    }
    assert events[0].canonical().startswith(b'{"asset":"SP","at":')
    assert events[0].leaf == merkle.leaf_hash(events[0].canonical())
    leaves = [e.leaf for e in events]
    r = events_root(events)
    for i, leaf in enumerate(leaves):
        assert merkle.verify_inclusion(leaf, i, 4, merkle.inclusion_proof(leaves, i), r)


def test_collection_validation() -> None:
    bad: list[dict[str, object]] = [
        {"code": "a b"},
        {"max_supply": 0},
        {"price": Decimal("1.001")},
        {"price": Decimal(-1)},
        {"royalty_bps": 10_001},
        {"royalty_bps": 6000, "fee_bps": 5000},
        {"fee_to_pool_ratio": Decimal("1.1")},
        {"accepted": frozenset()},
        {"kind": Kind.RIGHT, "uses": 0},
        {"uses": 2},
        {"min_holding_seconds": -1},
        {"daily_transfer_limit": 0},
        {"transfer_policy": Mode.GIFT_ONLY, "exchange_mode": Mode.OPEN},
        {"appreciation_step": Decimal(0)},
    ]
    for kw in bad:
        with pytest.raises(base.InvalidParameter):
            card(**kw)
    with pytest.raises(base.InvalidParameter):
        card().next_price(Decimal(1))
    reg = registry()
    with pytest.raises(base.InvalidParameter):
        reg.add_collection(card())
    reg.mint("BLACK", "ann", at=T0)
    reg.mint("BLACK", "ann", at=T0)
    with pytest.raises(base.InvalidParameter):
        reg.update_collection(card(max_supply=1))
    with pytest.raises(base.InvalidParameter):
        reg.update_collection(card(kind=Kind.RIGHT, uses=1))
    reg.update_collection(replace(card(), max_supply=10))
    assert reg.collection("BLACK").max_supply == 10


def test_every_error_has_a_code_and_is_an_invalid_command() -> None:
    codes = set()
    for name in nfg_errors.__all__:
        cls = getattr(nfg_errors, name)
        assert issubclass(cls, NFGError)
        assert issubclass(cls, base.InvalidCommand)
        codes.add(cls.code)
    assert len(codes) == len(set(nfg_errors.__all__)) - 1  # NotOwnerNorApproved is an alias


def test_the_nfg_domain_and_the_chain_package_import_nothing_heavy() -> None:
    code = (
        "import sys, tokenmall.domain.nfg, tokenmall.domain.merkle, tokenmall.chain;"
        "bad = [m for m in ('boa', 'vyper', 'sqlalchemy', 'fastapi') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
