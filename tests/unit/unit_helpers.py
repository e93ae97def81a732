"""Shared helpers of the domain unit tests: exact references and a state fingerprint."""

from __future__ import annotations

import math
from collections import defaultdict
from decimal import Decimal
from fractions import Fraction
from typing import Any

from tokenmall.domain.economy import Asset, Economy, SystemAccount

EP_ATOM = Fraction(1, 10**8)
FEN = Fraction(1, 100)


def fr(x: Decimal | int | str) -> Fraction:
    return Fraction(Decimal(x))


def floor_to(x: Fraction, unit: Fraction) -> Fraction:
    """floor(x) at the scale of ``unit``, on exact rationals."""
    return math.floor(x / unit) * unit


def price(e: Economy) -> Fraction:
    num, den = e.price_ratio()
    return fr(num) / fr(den)


def fingerprint(e: Economy) -> dict[str, Any]:
    """Everything a refused command must leave alone (bookkeeping like versions excluded)."""
    return {
        "balances": dict(e.state.balances),
        "member_count": e.state.member_count,
        "empty": (e.state.empty_pool, e.state.empty_circulating),
        "members": {
            code: (
                m.no,
                m.referrer,
                m.ep,
                m.sp,
                m.quota,
                m.spent,
                m.dividends,
                m.ep_debt,
                m.sp_debt,
                m.exited,
            )
            for code, m in e.members.items()
        },
        "grants": {
            o: (g.member, g.referrer, g.amount, g.ep_member, g.ep_referrer, g.quota, g.refunded)
            for o, g in e.grants.items()
        },
        "escrows": {
            o: (x.member, x.cny, x.sp, x.ep_points, x.ep_value, x.refunded, x.settled)
            for o, x in getattr(e, "escrows", {}).items()
        },
        "holds": {
            r: (h.member, h.amount, h.fee, h.status) for r, h in getattr(e, "holds", {}).items()
        },
        "snapshot": e.snapshot(),
    }


def asset_sums(e: Economy) -> dict[Asset, Decimal]:
    """Sum of every account of each asset: system accounts plus member wallets."""
    sums: dict[Asset, Decimal] = defaultdict(Decimal)
    for (_account, asset), amount in e.state.balances.items():
        sums[asset] += amount
    for m in e.members.values():
        sums[Asset.EP] += m.ep
        sums[Asset.SP] += m.sp
    return sums


def sp_reserve(e: Economy) -> Decimal:
    return e.balance(SystemAccount.SP_RESERVE, Asset.CNY)


def revenue(e: Economy) -> Decimal:
    return e.balance(SystemAccount.REVENUE, Asset.CNY)


def world(e: Economy) -> Decimal:
    return e.balance(SystemAccount.WORLD, Asset.CNY)


def naive_water_fill(
    fund: int, holders: list[tuple[Any, int, int]], pay_unit: int
) -> dict[Any, int]:
    """docs/RULES.md R9 literally: cap everyone whose pro-rata share reaches their quota, drop them
    out, re-split what is left among the others, repeat; then floor each share to ``pay_unit``.
    """
    active = [(k, Fraction(w), Fraction(q)) for k, w, q in holders if w > 0 and q > 0]
    if fund <= 0:
        return {}
    left = Fraction(fund)
    shares: dict[Any, Fraction] = {}
    while active:
        total_w = sum(w for _, w, _ in active)
        capped = [(k, w, q) for k, w, q in active if left * w / total_w >= q]
        if not capped:
            for k, w, _ in active:
                shares[k] = left * w / total_w
            break
        for k, _, q in capped:
            shares[k] = q
            left -= q
        capped_keys = {k for k, _, _ in capped}
        active = [h for h in active if h[0] not in capped_keys]
    pays = {k: math.floor(s / pay_unit) * pay_unit for k, s in shares.items()}
    return {k: p for k, p in pays.items() if p > 0}
