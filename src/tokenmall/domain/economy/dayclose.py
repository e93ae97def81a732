"""The forced exits (R7) and the day close that pays the dividend fund out (R9)."""

from __future__ import annotations

import heapq
from decimal import Decimal

from tokenmall.domain.accounts import Asset, Member, SystemAccount
from tokenmall.domain.dividends import water_fill
from tokenmall.domain.economy.trading import Trading
from tokenmall.domain.events import MemberExit
from tokenmall.errors import IdempotencyConflict, InvariantViolation
from tokenmall.money import CNY_PLACES, EP_PLACES, ZERO, atoms, from_atoms, mul

__all__ = ["DayClose"]

_FEN_ATOMS = 10 ** (CNY_PLACES - 2)


class DayClose(Trading):
    """R7 and R9, in memory; the ledger closes a stored tenant's day in bulk."""

    # ------------------------------------------------------------------ R7

    def run_exits(self) -> int:
        """Force-sell every member whose holdings reached their quota, lowest trigger first."""
        count = 0
        while True:
            num, den = self.price_ratio()
            if self.source is not None:
                for m in self.source.due(num, den, self.members):
                    if m.code not in self.members:
                        self._adopt(m)
            heap = self._heap
            while heap:
                _, _, version, code = heap[0]
                m = self.members[code]
                # stale, or never due (what trigger() returns None for, without its division)
                if version != m.version or m.spent <= 0 or m.ep <= 0:
                    heapq.heappop(heap)
                    continue
                break
            if not heap:
                return count
            m = self.members[heap[0][3]]
            # due when ep * price >= quota, i.e. ep * num >= quota * den (exact)
            if mul(m.ep, num) < mul(m.quota, den):
                return count
            heapq.heappop(heap)
            points = m.ep
            payout = self._sell(m, points, to_wallet=True)
            self._exits.append(MemberExit(m.code, points, payout))
            m.quota = ZERO
            m.exited = True
            self._touch(m)
            count += 1

    # ------------------------------------------------------------------ R9

    def _close_day(self, day: str) -> dict[str, Decimal]:
        """Water-fill the fund over members in memory (the adapter has its own bulk path)."""
        if self.source is not None:
            raise InvariantViolation("close_day on a partial economy: use the adapter's path")
        if day:
            if day in self.closed_days:
                raise IdempotencyConflict(f"day {day!r} is already closed")
            self.closed_days.add(day)
        holders = []
        by_points = self.params.dividend_weight == "points"
        for m in self.members.values():
            if m.ep <= 0 or m.quota <= 0:
                continue
            w = atoms(m.ep, EP_PLACES) if by_points else self.shares(m)
            holders.append((m.code, w, atoms(m.quota, CNY_PLACES)))
        fund = atoms(self.dividend_fund, CNY_PLACES)
        pays, paid = water_fill(fund, holders, _FEN_ATOMS)
        self.pay_dividends([(self.members[c], from_atoms(a, CNY_PLACES)) for c, a in pays])
        return {"paid": from_atoms(paid, CNY_PLACES), "recipients": Decimal(len(pays))}

    def shares(self, m: Member) -> int:
        """Dividend weight under ``shares``: whole share units of cumulative spend."""
        return int(m.spent // self.params.share_unit)

    def pay_dividends(self, pays: list[tuple[Member, Decimal]]) -> None:
        total = sum((p for _, p in pays), ZERO)
        self._move(Asset.CNY, SystemAccount.DIVIDEND_FUND, SystemAccount.SP_RESERVE, total)
        for m, pay in pays:
            self._credit_sp(m, pay)
            m.quota -= pay
            m.dividends += pay
            self._touch(m)
