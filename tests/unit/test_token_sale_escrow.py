"""A token sale paid out of an order's escrow (an NFG listing bought with CNY): each asset sums
to zero whatever the price, split and payment mix; the escrow is settled once, by its payer,
for no more than it holds; the seller's and issuer's SP are backed 1:1."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from unit_helpers import asset_sums, sp_reserve

from tokenmall import Economy, IdempotencyConflict, InvalidCommand, Pay, Purchase, TenantParams
from tokenmall.domain.commands import Join, RewardGrant, TokenSale
from tokenmall.domain.economy import Asset, SystemAccount
from tokenmall.errors import NotFound

D = Decimal
CENT = D("0.01")


def _economy() -> Economy:
    e = Economy(TenantParams())
    e.apply(Purchase("seed", "A", D(100)))  # revenue to fund rewards, a price for EP
    for m in ("bob", "ann", "iss"):
        e.apply(Join(m))
    e.apply(RewardGrant("bob", D(500), "test"))
    e.apply(RewardGrant("ann", D(1), "test"))
    return e


def _sale(price: Decimal, fee: Decimal, pool: Decimal, royalty: Decimal, **kw: object) -> TokenSale:
    args: dict[str, object] = {
        "ref": "BLACK#1:1",
        "buyer": "bob",
        "price": price,
        "seller": "ann",
        "proceeds": price - fee - royalty,
        "fee": fee,
        "pool_share": pool,
        "royalty": royalty,
        "issuer": "iss",
        "order": "o1",
    }
    args.update(kw)
    return TokenSale(**args)  # type: ignore[arg-type]


@given(
    price_fen=st.integers(min_value=1, max_value=10**8),
    fee_bps=st.integers(min_value=0, max_value=3000),
    royalty_bps=st.integers(min_value=0, max_value=3000),
    pool_half=st.booleans(),
    sp_fen=st.integers(min_value=0, max_value=50_000),
    issuer_member=st.booleans(),
)
def test_conserved_for_any_price_and_mix(
    price_fen: int,
    fee_bps: int,
    royalty_bps: int,
    pool_half: bool,
    sp_fen: int,
    issuer_member: bool,
) -> None:
    e = _economy()
    price = D(price_fen) * CENT
    fee = (price * fee_bps / 10_000).quantize(CENT, rounding="ROUND_FLOOR")
    royalty = (price * royalty_bps / 10_000).quantize(CENT, rounding="ROUND_FLOOR")
    pool = (fee / 2).quantize(CENT, rounding="ROUND_FLOOR") if pool_half else D(0)
    sp = min(D(sp_fen) * CENT, price)
    e.apply(Pay("o1", "bob", cny=price - sp, sp=sp))
    reserve, revenue, pool_before = sp_reserve(e), e.balance("revenue", Asset.CNY), e.pool
    escrow = e.balance(SystemAccount.ESCROW, Asset.CNY)
    out = e.apply(_sale(price, fee, pool, royalty, issuer="iss" if issuer_member else None))
    assert all(v == 0 for v in asset_sums(e).values())
    assert e.balance(SystemAccount.ESCROW, Asset.CNY) == escrow - price
    assert e.member("ann").sp == D(1) + price - fee - royalty
    assert e.escrows["o1"].settled
    if out["exits"]:  # the pool's share raised the price past A's exit (R7): A's payout moves too
        return
    member_royalty = royalty if issuer_member else D(0)
    assert sp_reserve(e) - reserve == price - fee - royalty + member_royalty
    assert e.pool - pool_before == pool
    assert e.balance("revenue", Asset.CNY) - revenue == fee - pool + royalty - member_royalty


def test_settled_once_by_its_payer_for_what_it_holds() -> None:
    e = _economy()
    with pytest.raises(NotFound):
        e.apply(_sale(D(100), D(0), D(0), D(0)))  # no such paid order
    e.apply(Pay("o1", "bob", cny=D(100)))
    with pytest.raises(InvalidCommand, match="holds"):
        e.apply(_sale(D("100.01"), D(0), D(0), D(0)))
    with pytest.raises(InvalidCommand, match="paid by"):
        e.apply(_sale(D(100), D(0), D(0), D(0), buyer="A"))
    sp_bob = e.member("bob").sp
    e.apply(_sale(D(100), D("2.50"), D("1.25"), D(5)))
    assert e.member("bob").sp == sp_bob  # the escrow paid, not bob's wallet
    with pytest.raises(IdempotencyConflict):
        e.apply(_sale(D(100), D("2.50"), D("1.25"), D(5)))
    assert all(v == 0 for v in asset_sums(e).values())
