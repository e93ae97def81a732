"""Water-filled daily dividends (SPEC.md R9) in exact integer arithmetic.

Why integers: a day close may cover a million holders; Python ints are exact, compact and an
order of magnitude faster than Decimal here, and the database adapter already stores atoms.

The water level ``t`` (CNY per unit of weight) is the one at which every member gets
``min(quota_i, t * w_i)`` and the total equals the fund.  Sorting members by ``quota_i / w_i``
(their "cap level") finds it in one pass: walking up from the lowest cap level, a member is
capped exactly when its pro-rata share of what is left reaches its quota; the first member who
is not capped ends the walk, because everyone after it has a higher cap level.  That is the
same outcome as SPEC.md's "cap, drop out, re-split" loop, in O(n log n) instead of O(n^2).
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import TypeVar

__all__ = ["water_fill", "water_fill_columns"]

K = TypeVar("K")

# Sort key resolution: cap levels that differ by less than 1e-30 (in quota atoms per weight
# atom) may be walked in either order; the exact check below still decides who is capped.
_KEY_SCALE = 10**30


def water_fill(
    fund: int, holders: Sequence[tuple[K, int, int]], pay_unit: int
) -> tuple[list[tuple[K, int]], int]:
    """Split ``fund`` among ``holders`` = (key, weight, quota), all in integer atoms.

    Returns ``(pays, paid_total)`` where every pay is floored to a multiple of ``pay_unit``
    (one fen), never exceeds the holder's quota, and ``paid_total <= fund``.  Holders with a
    zero weight or quota get nothing and are not listed.
    """
    pays, paid = water_fill_columns(
        fund, [h[1] for h in holders], [h[2] for h in holders], pay_unit
    )
    return [(holders[i][0], p) for i, p in enumerate(pays) if p], paid


def water_fill_columns(
    fund: int, weights: Sequence[int], quotas: Sequence[int], pay_unit: int
) -> tuple[array[int], int]:
    """:func:`water_fill` over parallel columns; ``pays[i]`` belongs to holder ``i``.

    Columns (e.g. ``array('q')``) keep a million holders in tens of MB instead of hundreds.
    """
    n = len(weights)
    pays = array("q", bytes(8 * n))
    eligible = [i for i in range(n) if weights[i] > 0 and quotas[i] > 0]
    if fund <= 0 or not eligible:
        return pays, 0
    eligible.sort(key=lambda i: quotas[i] * _KEY_SCALE // weights[i])
    left = fund
    weight_left = sum(weights[i] for i in eligible)
    paid = 0
    pos = 0
    count = len(eligible)
    while pos < count:
        i = eligible[pos]
        w, q = weights[i], quotas[i]
        # capped when share = left * w / weight_left >= q  (cross-multiplied, exact)
        if q * weight_left > left * w:
            break
        pay = q - q % pay_unit
        pays[i] = pay
        paid += pay
        left -= q
        weight_left -= w
        pos += 1
    if weight_left > 0:
        for i in eligible[pos:]:
            share = left * weights[i] // weight_left
            pay = share - share % pay_unit
            pays[i] = pay
            paid += pay
    return pays, paid
