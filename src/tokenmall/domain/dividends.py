"""Water-filled daily dividends (rule R9, docs/RULES.md) in exact integer arithmetic.

Why integers: a day close may cover a million holders; Python ints are exact, compact and an
order of magnitude faster than Decimal here, and the database adapter already stores atoms.

The water level ``t`` (CNY per unit of weight) is the one at which every member gets
``min(quota_i, t * w_i)`` and the total equals the fund.  Sorting members by ``quota_i / w_i``
(their "cap level") finds it in one pass: walking up from the lowest cap level, a member is
capped exactly when its pro-rata share of what is left reaches its quota; the first member who
is not capped ends the walk, because everyone after it has a higher cap level.  That is the
same outcome as docs/RULES.md's "cap, drop out, re-split" loop, in O(n log n) instead of O(n^2).
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from itertools import repeat
from operator import floordiv, mod, mul, sub
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
    if fund <= 0 or n == 0:
        return array("q", bytes(8 * n)), 0
    # Every holder takes part (what the ledger's close reads): keys and the uncapped pays are
    # computed by map() over the columns, not by a Python call per holder (1M: 1.56 -> 1.05 s)
    everyone = min(weights) > 0 and min(quotas) > 0
    if everyone:
        keys = list(map(floordiv, map(mul, quotas, repeat(_KEY_SCALE)), weights))
        # a stable sort of the indices: ties keep index order, as below
        order = sorted(range(n), key=keys.__getitem__)
        del keys
        weight_left = sum(weights)
    else:
        order = [i for i in range(n) if weights[i] > 0 and quotas[i] > 0]
        if not order:
            return array("q", bytes(8 * n)), 0
        order.sort(key=lambda i: quotas[i] * _KEY_SCALE // weights[i])
        weight_left = sum(weights[i] for i in order)
    left = fund
    pos = 0
    count = len(order)
    while pos < count:
        i = order[pos]
        w, q = weights[i], quotas[i]
        # capped when share = left * w / weight_left >= q  (cross-multiplied, exact)
        if q * weight_left > left * w:
            break
        left -= q
        weight_left -= w
        pos += 1
    if everyone and weight_left > 0:
        # everyone's share of what is left; the capped ones are overwritten below
        shares = list(map(floordiv, map(mul, repeat(left), weights), repeat(weight_left)))
        pays = array("q", map(sub, shares, map(mod, shares, repeat(pay_unit))))
        del shares
    else:
        pays = array("q", bytes(8 * n))
        if weight_left > 0:
            for i in order[pos:]:
                share = left * weights[i] // weight_left
                pays[i] = share - share % pay_unit
    for i in order[:pos]:
        q = quotas[i]
        pays[i] = q - q % pay_unit
    return pays, sum(pays)
