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

from collections.abc import Sequence
from typing import TypeVar

__all__ = ["water_fill"]

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
    eligible = [h for h in holders if h[1] > 0 and h[2] > 0]
    if fund <= 0 or not eligible:
        return [], 0
    order = sorted(
        range(len(eligible)), key=lambda i: eligible[i][2] * _KEY_SCALE // eligible[i][1]
    )
    left = fund
    weight_left = sum(h[1] for h in eligible)
    pays: list[tuple[K, int]] = []
    paid = 0
    pos = 0
    n = len(order)
    while pos < n:
        key, w, q = eligible[order[pos]]
        # capped when share = left * w / weight_left >= q  (cross-multiplied, exact)
        if q * weight_left > left * w:
            break
        pay = q - q % pay_unit
        if pay:
            pays.append((key, pay))
            paid += pay
        left -= q
        weight_left -= w
        pos += 1
    if weight_left > 0:
        for i in order[pos:]:
            key, w, _q = eligible[i]
            share = left * w // weight_left
            pay = share - share % pay_unit
            if pay:
                pays.append((key, pay))
                paid += pay
    return pays, paid
