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
from fractions import Fraction
from typing import TypeVar

__all__ = ["water_fill", "water_fill_columns"]

K = TypeVar("K")


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

    The walk needs holders in cap-level order.  Floats give that order several times faster
    than exact integer keys, and an order off by float rounding can only matter where the walk
    stops: a holder placed just after the stop whose exact cap level is at or below the level
    would be paid as uncapped.  Every holder whose float key is within rounding of the stop's
    is therefore re-checked exactly; if one of them is capped, the walk runs again on the exact
    order.  Holders walked as capped before the stop were each checked exactly, and the level
    only rises as capped holders leave, so they are capped in the exact solution too.
    """
    n = len(weights)
    pays = array("q", bytes(8 * n))
    if fund <= 0:
        return pays, 0
    eligible = [i for i, w, q in zip(range(n), weights, quotas, strict=True) if w > 0 and q > 0]
    if not eligible:
        return pays, 0
    fkeys = [quotas[i] / weights[i] for i in eligible]
    order = sorted(range(len(eligible)), key=fkeys.__getitem__)
    ordered = [eligible[j] for j in order]
    walked = _walk(fund, ordered, weights, quotas)
    pos, left, weight_left = walked
    if pos < len(ordered):
        # float keys within rounding of the stop's may hide an exact order that differs
        edge = fkeys[order[pos]] * (1 + 1e-9)
        j = pos + 1
        while j < len(ordered) and fkeys[order[j]] <= edge:
            i = ordered[j]
            if quotas[i] * weight_left <= left * weights[i]:  # capped: the order mattered
                ordered.sort(key=lambda i: Fraction(quotas[i], weights[i]))
                pos, left, weight_left = _walk(fund, ordered, weights, quotas)
                break
            j += 1
    paid = 0
    for i in ordered[:pos]:
        q = quotas[i]
        pay = q - q % pay_unit
        pays[i] = pay
        paid += pay
    if weight_left > 0:
        for i in ordered[pos:]:
            share = left * weights[i] // weight_left
            pay = share - share % pay_unit
            pays[i] = pay
            paid += pay
    return pays, paid


def _walk(
    fund: int, ordered: Sequence[int], weights: Sequence[int], quotas: Sequence[int]
) -> tuple[int, int, int]:
    """Walk up the cap levels: (holders capped, fund left for the rest, their weight)."""
    left = fund
    weight_left = sum(weights[i] for i in ordered)
    pos = 0
    count = len(ordered)
    while pos < count:
        i = ordered[pos]
        w, q = weights[i], quotas[i]
        # capped when share = left * w / weight_left >= q  (cross-multiplied, exact)
        if q * weight_left > left * w:
            break
        left -= q
        weight_left -= w
        pos += 1
    return pos, left, weight_left
