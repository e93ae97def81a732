"""The EP price and what points are worth at it: the one home of these rules.

The price is ``pool / circulating``, kept as an exact ratio (never a rounded number);
``initial_price`` before the first issuance; while nothing circulates after points did, the last
price points had (the "empty price", stored as a pool/circulating pair), so emptying circulation
never makes the price fall back.  A sale of ``q`` points pays ``floor2(q x price x (1 - fee))``:
the sell fee (R3, R4) or the exchange fee (R5) stays behind.

Every caller prices through these functions: the economy (sell, redeem, exchange), the reads
(holdings, the price shown) and the order flow (how many points pay for goods).  The day close's
bulk exit cascade (:mod:`tokenmall.domain.exits`) repeats :func:`sale_value` on integer atoms for
speed; a Hypothesis test holds the two to the same result.
"""

from __future__ import annotations

from decimal import Decimal

from tokenmall.errors import InvalidCommand
from tokenmall.money import EP_PLACES, FEN, mul, ratio_floor

__all__ = ["points_worth", "price_ratio", "sale_value"]

_EP_EXP = Decimal(1).scaleb(-EP_PLACES)


def price_ratio(
    pool: Decimal,
    circulating: Decimal,
    empty_pool: Decimal,
    empty_circulating: Decimal,
    initial_price: Decimal,
) -> tuple[Decimal, Decimal]:
    """The price as (numerator CNY, denominator EP)."""
    if circulating > 0:
        return pool, circulating
    if empty_circulating > 0:
        return empty_pool, empty_circulating
    return initial_price, Decimal(1)


def sale_value(points: Decimal, num: Decimal, den: Decimal, fee: Decimal) -> Decimal:
    """What ``points`` pay when sold at ``num / den`` less ``fee``: whole fen, cut down."""
    return ratio_floor(mul(points, num, 1 - fee), den, FEN)


def points_bought(stable: Decimal, num: Decimal, den: Decimal) -> Decimal:
    """The EP that ``stable`` SP buys from the treasury at ``num / den`` (R6): cut down to the
    point atom, so the treasury never hands out more than was paid for."""
    return ratio_floor(mul(stable, den), num, _EP_EXP)


def points_worth(value: Decimal, num: Decimal, den: Decimal, fee: Decimal) -> Decimal:
    """The fewest points whose :func:`sale_value` is exactly ``value`` (points paying for goods).

    Each point atom is worth far less than a fen, so the cut-down payout steps through every
    fen and the smallest count reaching ``value`` hits it exactly.
    """
    keep = 1 - fee
    if keep <= 0:
        raise InvalidCommand("points cannot pay for goods while sell_fee is 1")
    points = ratio_floor(mul(value, den), mul(num, keep), _EP_EXP)
    if sale_value(points, num, den, fee) < value:
        points += _EP_EXP
    if sale_value(points, num, den, fee) != value:
        raise InvalidCommand(f"no number of points is worth exactly {value} CNY now")
    return points
