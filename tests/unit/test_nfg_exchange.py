"""The NFG exchange: listings, buys, cancels, settlement amounts and automatic appreciation."""

from __future__ import annotations

import itertools
from dataclasses import replace
from decimal import Decimal

import pytest

from tokenmall import errors as base
from tokenmall.domain.economy import Asset
from tokenmall.domain.nfg import (
    AlreadyListed,
    AssetNotAccepted,
    Collection,
    DailyLimit,
    ERC721InsufficientApproval,
    EventKind,
    Exchange,
    ExchangeClosed,
    HoldingPeriod,
    Kind,
    ListingClosed,
    ListingStale,
    ListingState,
    Mode,
    Payment,
    PriceFixed,
    Registry,
    SelfTransfer,
    TokenMove,
    TokenRef,
    TransferForbidden,
    UnknownListing,
    primary_sale,
    settle,
)

T0 = 1_767_225_600.0
DAY = 86_400.0


def card(**kw: object) -> Collection:
    base_kw: dict[str, object] = {
        "code": "BLACK",
        "name": "Black Card",
        "max_supply": 5000,
        "price": Decimal("999.00"),
        "transfer_policy": Mode.OPEN,
        "issuer": "merchant:7",
        "fee_bps": 250,
        "royalty_bps": 500,
    }
    base_kw.update(kw)
    return Collection(**base_kw)  # type: ignore[arg-type]


def market(**kw: object) -> tuple[Registry, Exchange, TokenRef]:
    reg = Registry()
    reg.add_collection(card(**kw))
    ref = reg.mint("BLACK", "ann", at=T0).token
    return reg, Exchange(reg), ref


def test_settlement_amounts_and_moves_sum_to_the_price() -> None:
    c = card(fee_to_pool_ratio=Decimal("0.5"))
    s = settle(
        c, Decimal("1234.57"), Asset.SP, buyer="bob", seller="ann", token=TokenRef("BLACK", 1)
    )
    # fee = floor2(1234.57 x 0.025) = floor2(30.86425); royalty = floor2(61.7285)
    assert (s.fee, s.royalty) == (Decimal("30.86"), Decimal("61.72"))
    assert s.pool_share == Decimal("15.43")
    assert s.proceeds == Decimal("1141.99")
    assert s.payments == (
        Payment(Asset.SP, "bob", "ann", Decimal("1141.99")),
        Payment(Asset.SP, "bob", "revenue", Decimal("15.43")),
        Payment(Asset.SP, "bob", "pool", Decimal("15.43")),
        Payment(Asset.SP, "bob", "merchant:7", Decimal("61.72")),
    )
    assert sum(p.amount for p in s.payments) == s.price
    assert s.token_moves == (TokenMove(TokenRef("BLACK", 1), "ann", "bob"),)


def test_zero_fee_and_royalty_leave_no_empty_moves() -> None:
    s = settle(
        card(fee_bps=0, royalty_bps=0),
        Decimal("0.03"),
        Asset.CNY,
        buyer="bob",
        seller="ann",
        token=TokenRef("BLACK", 1),
    )
    assert s.payments == (Payment(Asset.CNY, "bob", "ann", Decimal("0.03")),)


def test_list_buy_and_provenance() -> None:
    reg, ex, ref = market()
    listing = ex.list_token("ann", ref, Decimal("1500.00"), at=T0 + 10)
    assert ex.open_listings() == [listing]
    s = ex.buy("bob", listing.id, Asset.CNY, at=T0 + 20)
    assert (s.fee, s.royalty, s.proceeds) == (
        Decimal("37.50"),
        Decimal("75.00"),
        Decimal("1387.50"),
    )
    assert reg.owner_of(ref) == "bob"
    assert s.event is not None
    assert s.event.kind is EventKind.SALE
    assert s.event.price == Decimal("1500.00")
    assert s.event.asset is Asset.CNY
    assert s.listing is not None
    assert s.listing.state is ListingState.SOLD
    assert ex.open_listings() == []
    assert reg.token(ref).last_price == Decimal("1500.00")
    with pytest.raises(ListingClosed):
        ex.buy("cat", listing.id, Asset.CNY, at=T0 + 30)
    with pytest.raises(UnknownListing):
        ex.buy("cat", 99, Asset.CNY, at=T0 + 30)


def test_listing_by_an_approved_operator_and_its_revocation() -> None:
    reg, ex, ref = market()
    with pytest.raises(ERC721InsufficientApproval):
        ex.list_token("bob", ref, Decimal(10), at=T0)
    reg.set_approval_for_all("ann", "BLACK", "broker", True)
    listing = ex.list_token("broker", ref, Decimal(10), at=T0)
    assert (listing.seller, listing.lister) == ("ann", "broker")
    reg.set_approval_for_all("ann", "BLACK", "broker", False)
    with pytest.raises(ListingStale, match="no longer approved"):
        ex.buy("bob", listing.id, Asset.SP, at=T0)
    assert reg.owner_of(ref) == "ann"


def test_buy_fails_cleanly_when_the_owner_changed_or_the_token_was_burned() -> None:
    reg, ex, ref = market()
    listing = ex.list_token("ann", ref, Decimal(10), at=T0)
    reg.transfer_from("ann", "ann", "cat", ref, at=T0 + 1)
    before = reg.events
    with pytest.raises(ListingStale, match="changed owner") as err:
        ex.buy("bob", listing.id, Asset.SP, at=T0 + 2)
    assert err.value.code == "nfg_listing_stale"
    assert reg.events == before
    assert reg.owner_of(ref) == "cat"
    # the new owner lists again: the stale listing is closed, not left open
    new = ex.list_token("cat", ref, Decimal(12), at=T0 + 3)
    assert ex.listing(listing.id).state is ListingState.CANCELLED
    reg.burn("cat", ref, at=T0 + 4)
    with pytest.raises(ListingStale, match="burned"):
        ex.buy("bob", new.id, Asset.SP, at=T0 + 5)


def test_buy_fails_when_a_use_was_redeemed_since_listing() -> None:
    reg, ex, ref = market(kind=Kind.RIGHT, uses=3)
    listing = ex.list_token("ann", ref, Decimal(10), at=T0)
    reg.redeem("ann", ref, at=T0 + 1)
    with pytest.raises(ListingStale, match="redeemed"):
        ex.buy("bob", listing.id, Asset.SP, at=T0 + 2)


def test_cancel() -> None:
    _reg, ex, ref = market()
    listing = ex.list_token("ann", ref, Decimal(10), at=T0)
    with pytest.raises(AlreadyListed):
        ex.list_token("ann", ref, Decimal(11), at=T0)
    with pytest.raises(ERC721InsufficientApproval):
        ex.cancel("bob", listing.id, at=T0)
    cancelled = ex.cancel("ann", listing.id, at=T0 + 1)
    assert (cancelled.state, cancelled.closed_at) == (ListingState.CANCELLED, T0 + 1)
    with pytest.raises(ListingClosed):
        ex.buy("bob", listing.id, Asset.SP, at=T0 + 2)
    with pytest.raises(ListingClosed):
        ex.cancel("ann", listing.id, at=T0 + 2)
    ex.list_token("ann", ref, Decimal(11), at=T0 + 3)  # relisting after a cancel


def test_policy_is_checked_at_listing_and_again_at_buying() -> None:
    reg, ex, ref = market(min_holding_seconds=DAY, daily_transfer_limit=1)
    with pytest.raises(HoldingPeriod):
        ex.list_token("ann", ref, Decimal(10), at=T0)
    listing = ex.list_token("ann", ref, Decimal(10), at=T0 + DAY)
    with pytest.raises(SelfTransfer):
        ex.buy("ann", listing.id, Asset.SP, at=T0 + DAY)
    # ann gifts another token today: her one transfer of the day is spent
    other = reg.mint("BLACK", "ann", at=T0).token
    reg.transfer_from("ann", "ann", "cat", other, at=T0 + DAY)
    with pytest.raises(DailyLimit):
        ex.buy("bob", listing.id, Asset.SP, at=T0 + DAY + 1)
    ex.buy("bob", listing.id, Asset.SP, at=T0 + 2 * DAY)


def test_exchange_modes() -> None:
    reg, ex, ref = market()
    listing = ex.list_token("ann", ref, Decimal(10), at=T0)
    # the operator halts trading: open listings can no longer be bought, gifts still work
    reg.update_collection(card(exchange_mode=Mode.GIFT_ONLY))
    with pytest.raises(ExchangeClosed, match="may only be gifted") as err:
        ex.buy("bob", listing.id, Asset.SP, at=T0)
    assert err.value.code == "nfg_exchange_closed"
    with pytest.raises(ExchangeClosed):
        ex.list_token("ann", ref, Decimal(10), at=T0)
    reg.update_collection(card(exchange_mode=Mode.OFF))
    with pytest.raises(ExchangeClosed, match="not traded"):
        ex.buy("bob", listing.id, Asset.SP, at=T0)
    reg.transfer_from("ann", "ann", "cat", ref, at=T0)
    reg.update_collection(card())
    assert reg.owner_of(ref) == "cat"


def test_a_gift_only_collection_cannot_be_listed() -> None:
    _reg, ex, ref = market(transfer_policy=Mode.GIFT_ONLY)
    with pytest.raises(ExchangeClosed):
        ex.list_token("ann", ref, Decimal(10), at=T0)


def test_a_transfer_policy_below_open_refuses_sales_even_if_listed() -> None:
    reg, ex, ref = market()
    listing = ex.list_token("ann", ref, Decimal(10), at=T0)
    reg.update_collection(card(transfer_policy=Mode.GIFT_ONLY, exchange_mode=Mode.GIFT_ONLY))
    with pytest.raises((ExchangeClosed, TransferForbidden)):
        ex.buy("bob", listing.id, Asset.SP, at=T0)


def test_assets() -> None:
    _reg, ex, ref = market(accepted=frozenset({Asset.CNY, Asset.EP}))
    listing = ex.list_token("ann", ref, Decimal(10), at=T0)
    with pytest.raises(AssetNotAccepted, match="trades in CNY"):
        ex.buy("bob", listing.id, Asset.SP, at=T0)
    with pytest.raises(AssetNotAccepted):
        ex.buy("bob", listing.id, Asset.EP, at=T0)  # EP buys only from the issuer
    ex.buy("bob", listing.id, Asset.CNY, at=T0)


def test_listing_prices() -> None:
    _reg, ex, ref = market()
    for bad in (None, Decimal(0), Decimal("10.001")):
        with pytest.raises(base.InvalidParameter):
            ex.list_token("ann", ref, bad, at=T0)


def test_automatic_appreciation_fixes_every_resale_price() -> None:
    reg, ex, ref = market(appreciation_step=Decimal("0.05"))
    with pytest.raises(PriceFixed, match=r"1048\.95"):
        ex.list_token("ann", ref, Decimal("2000"), at=T0)
    prices = []
    owners = ["ann", "bob", "cat", "dan", "eve"]
    for seller, buyer in itertools.pairwise(owners):
        listing = ex.list_token(seller, ref, at=T0)
        prices.append(listing.price)
        ex.buy(buyer, listing.id, Asset.SP, at=T0)
    # 999.00 -> 1048.95 -> 1101.39 (1101.3975) -> 1156.45 (1156.4595) -> 1214.27 (1214.2725)
    assert prices == [Decimal(p) for p in ("1048.95", "1101.39", "1156.45", "1214.27")]
    assert reg.owner_of(ref) == "eve"


def test_primary_sale_in_each_asset() -> None:
    reg = Registry()
    reg.add_collection(card(accepted=frozenset({Asset.CNY, Asset.SP, Asset.EP})))
    s = primary_sale(reg, "BLACK", "ann", Asset.SP, at=T0, item_no="BC-0001")
    assert s.payments == (Payment(Asset.SP, "ann", "merchant:7", Decimal("999.00")),)
    assert s.token_moves == (TokenMove(TokenRef("BLACK", 1), None, "ann"),)
    assert s.event is not None
    assert s.event.price == Decimal("999.00")
    # 999 / 3.0007 = 332.922318125...: rounded up so the issuer gets at least 999.00 of value
    e = primary_sale(reg, "BLACK", "bob", Asset.EP, at=T0, ep_price=Decimal("3.0007"))
    assert e.payments[0].amount == Decimal("332.92231813")
    assert e.payments[0].amount * Decimal("3.0007") >= Decimal(999)
    exact = primary_sale(reg, "BLACK", "bob", Asset.EP, at=T0, ep_price=Decimal("0.5"))
    assert exact.payments[0].amount == Decimal(1998)
    with pytest.raises(base.InvalidParameter):
        primary_sale(reg, "BLACK", "bob", Asset.EP, at=T0)
    reg.update_collection(replace(card(), accepted=frozenset({Asset.CNY})))
    with pytest.raises(AssetNotAccepted):
        primary_sale(reg, "BLACK", "bob", Asset.SP, at=T0)
    assert reg.minted("BLACK") == 3
