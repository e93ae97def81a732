"""Exact amounts and the one place where tokenmall rounds.

Every amount is a :class:`decimal.Decimal`.  Arithmetic that can produce more digits than the
stored scale goes through the helpers here, which compute with 80 significant digits (so
products of stored amounts are exact) and then cut *down* to the scale.  Cutting down is the
rule of docs/RULES.md section 1: whatever is cut off stays with the pool or the fund, so the
platform never pays out more than it holds.

Stored scales (also the integer "atoms" used by the database adapter):

* CNY and SP: 4 decimal places inside the platform (pool, funds, quota); whole fen (2 places)
  whenever an amount moves to or from a person.
* EP: 8 decimal places.
"""

from __future__ import annotations

from decimal import (
    ROUND_DOWN,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
)
from typing import Final

__all__ = [
    "CNY_PLACES",
    "EP_PLACES",
    "FEN",
    "FEN_PLACES",
    "ZERO",
    "atoms",
    "atoms_unchecked",
    "cny_of_fen",
    "fen_of",
    "floor_cny",
    "floor_ep",
    "floor_fen",
    "from_atoms",
    "mul",
    "opt_cny_of_fen",
    "parse_amount",
    "ratio",
    "ratio_floor",
    "show_price",
]

ZERO: Final = Decimal(0)
FEN: Final = Decimal("0.01")
CNY_PLACES: Final = 4
EP_PLACES: Final = 8
FEN_PLACES: Final = 2
_CNY_EXP: Final = Decimal(1).scaleb(-CNY_PLACES)
_EP_EXP: Final = Decimal(1).scaleb(-EP_PLACES)
_PRICE_EXP: Final = Decimal("0.0001")

# 80 digits: the product of two stored amounts (at most ~20 digits each) is exact, and a quotient
# is cut (never rounded up) before it is floored to its scale, so floor(cut(x)) == floor(x).
_CTX: Final = Context(
    prec=80, rounding=ROUND_DOWN, traps=[InvalidOperation, DivisionByZero, Overflow]
)


def parse_amount(value: object, *, what: str = "amount", allow_zero: bool = True) -> Decimal:
    """Turn user input (str, int or Decimal, never float) into a finite non-negative Decimal.

    Floats are refused because they already lost the exact value the user meant.
    """
    if isinstance(value, (bool, float)):
        raise ValueError(f"{what} must be a decimal string, not {type(value).__name__}")
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, int | str):
        try:
            d = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError(f"{what} is not a number: {value!r}") from None
    else:
        raise ValueError(f"{what} must be a decimal string, not {type(value).__name__}")
    if not d.is_finite():
        raise ValueError(f"{what} must be finite: {value!r}")
    if d < 0:
        raise ValueError(f"{what} must not be negative: {value!r}")
    if not allow_zero and d == 0:
        raise ValueError(f"{what} must be greater than zero")
    return d


def mul(*factors: Decimal) -> Decimal:
    """Exact product (within 80 digits) of stored amounts and rates."""
    out = factors[0]
    m = _CTX.multiply
    for f in factors[1:]:
        out = m(out, f)
    return out


def _floor(x: Decimal, exp: Decimal) -> Decimal:
    return x.quantize(exp, rounding=ROUND_DOWN, context=_CTX)


def floor_fen(x: Decimal) -> Decimal:
    """Whole fen, cut down: the scale of any CNY or SP that reaches a person."""
    return _floor(x, FEN)


def floor_cny(x: Decimal) -> Decimal:
    """The internal CNY scale (0.0001), cut down."""
    return _floor(x, _CNY_EXP)


def floor_ep(x: Decimal) -> Decimal:
    """EP scale (8 places), cut down: issuance never creates a fraction of an atom."""
    return _floor(x, _EP_EXP)


def ratio(numerator: Decimal, denominator: Decimal) -> Decimal:
    """numerator / denominator to 80 digits, cut down: an ordering key, never an amount."""
    return _CTX.divide(numerator, denominator)


def ratio_floor(numerator: Decimal, denominator: Decimal, exp: Decimal) -> Decimal:
    """floor(numerator / denominator) at the scale of ``exp``, exactly.

    The quotient is cut to 80 digits first (never rounded up), so the final floor equals the
    floor of the exact rational.
    """
    return _floor(_CTX.divide(numerator, denominator), exp)


def show_price(pool: Decimal, circulating: Decimal, initial: Decimal) -> str:
    """The EP price for display: 4 decimals, half up (display only, never used to compute)."""
    if circulating == 0:
        return str(initial.quantize(_PRICE_EXP, rounding=ROUND_HALF_UP))
    q = _CTX.divide(pool, circulating)
    return str(q.quantize(_PRICE_EXP, rounding=ROUND_HALF_UP, context=_CTX))


def atoms(x: Decimal, places: int) -> int:
    """Integer count of the smallest unit; refuses a value with more places than the scale."""
    scaled = x.scaleb(places, context=_CTX)
    i = int(scaled)
    if i != scaled:
        raise ValueError(f"{x} has more than {places} decimal places")
    return i


def atoms_unchecked(x: Decimal, places: int) -> int:
    """:func:`atoms` for values the domain already cut to their scale (the hot write path)."""
    return int(x.scaleb(places))


def from_atoms(n: int, places: int) -> Decimal:
    """Inverse of :func:`atoms`."""
    return Decimal(n).scaleb(-places)


# Whole fen: how the mall stores prices, order totals, refunds and withdrawals (integer columns),
# and the only unit a person is paid in.  One pair of conversions for every service.


def fen_of(amount: Decimal) -> int:
    """``amount`` CNY as integer fen; ``ValueError`` for a fraction of a fen (never rounds)."""
    return atoms(amount, FEN_PLACES)


def cny_of_fen(fen: int) -> Decimal:
    """Integer fen as CNY, always shown with two places (``12.30``)."""
    return Decimal(fen).scaleb(-FEN_PLACES).quantize(FEN)


def opt_cny_of_fen(fen: int | None) -> Decimal | None:
    return None if fen is None else cny_of_fen(fen)
