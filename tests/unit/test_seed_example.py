"""The seed's worked example (docs/RULES.md section 2), reproduced to the digit."""

from __future__ import annotations

from decimal import Decimal

from tokenmall.domain.economy import Economy, Purchase
from tokenmall.domain.params import TenantParams
from tokenmall.money import show_price

# (buyer, EP to buyer, pool, circulating, price after) -- docs/RULES.md section 2's table.
SEED_TABLE = [
    ("A", "21", "30", "21", "1.4286"),
    ("B", "14.7", "60", "35.7", "1.6807"),
    ("C", "12.495", "90", "48.195", "1.8674"),
    ("D", "11.2455", "120", "59.4405", "2.0188"),
]


def shown(e: Economy) -> str:
    num, den = e.price_ratio()
    return show_price(num, den, e.params.initial_price)


def hundred_yuan(e: Economy, member: str) -> dict[str, Decimal]:
    return e.apply(Purchase(order=f"order-{member}", member=member, amount=Decimal(100)))


def test_initial_price_is_one() -> None:
    assert shown(Economy(TenantParams())) == "1.0000"


def test_seed_table_a_to_d() -> None:
    e = Economy(TenantParams())
    for buyer, ep, pool, circulating, price_after in SEED_TABLE:
        out = hundred_yuan(e, buyer)
        assert out["points"] == Decimal(ep), buyer
        assert e.member(buyer).ep == Decimal(ep), buyer
        assert e.pool == Decimal(pool), buyer
        assert e.circulating == Decimal(circulating), buyer
        assert shown(e) == price_after, buyer
        assert out["exits"] == 0


def test_hundredth_purchase_prices_the_point_at_5_1731() -> None:
    e = Economy(TenantParams())
    members = [f"M{i:03d}" for i in range(1, 101)]
    members[:4] = ["A", "B", "C", "D"]
    for i, m in enumerate(members):
        hundred_yuan(e, m)
        if i == 98:
            assert shown(e) != "5.1731"  # it is the 100th purchase that reaches it
    assert shown(e) == "5.1731"
    assert e.pool == Decimal(3000)
    # Nobody reached their quota (2 x 100) on the way, so nobody was forced out.
    assert all(not m.exited and m.ep > 0 for m in e.members.values())

    a = e.member("A")
    assert a.ep == Decimal(21)
    worth = a.ep * Decimal(shown(e))
    assert worth == Decimal("108.6351")
