"""The console's parameters form reads what is typed before the service sees it: a numeric
parameter is a plain number (no sign, no exponent, at most 12 + 8 digits), a list is such
numbers separated by commas; anything else is a message on the page, never a change."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenmall.web.base import FormError
from tokenmall.web.people import parse_param

BAD = ["-1", "1.123456789", "99999999999999999999", "1e3", "<script>alert(1)</script>", "NaN"]


@pytest.mark.parametrize("typed", BAD)
def test_bad_numbers_are_refused(typed: str) -> None:
    with pytest.raises(FormError):
        parse_param("withdraw_min", typed, Decimal(1))


def test_good_values_pass_unchanged() -> None:
    assert parse_param("withdraw_min", "2.50", Decimal(1)) == "2.50"
    assert parse_param("total_supply", "100000000", Decimal(1)) == "100000000"
    assert parse_param("level_thresholds", "0, 10,20.5", "0,100") == "0, 10,20.5"
    assert parse_param("dividend_weight", "shares", "points") == "shares"  # the service checks
    with pytest.raises(FormError):
        parse_param("level_thresholds", "0,<b>1</b>", "0,100")
    with pytest.raises(FormError):
        parse_param("level_thresholds", "0,,1", "0,100")


@given(st.text(max_size=40))
def test_whatever_is_typed_is_refused_or_a_plain_bounded_decimal(typed: str) -> None:
    try:
        kept = parse_param("pool_rate", typed, Decimal("0.3"))
    except FormError:
        return
    value = Decimal(kept)
    assert value.is_finite()
    assert value >= 0
    assert value < Decimal(10) ** 12
    assert -value.as_tuple().exponent <= 8  # type: ignore[operator]
