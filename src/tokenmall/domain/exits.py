"""Forced exits (rule R7, docs/RULES.md) over integer atoms: the bulk form of ``Economy.run_exits``.

Why a second form: a day close can bring a hundred thousand holders to their quota at once.
``Economy.run_exits`` pays each of them through ``Decimal`` arithmetic, ``Member`` objects and
``Transfer`` records, about 60 microseconds an exit; this class does the same walk on Python
ints, which the database adapter stores anyway, at a fraction of that.  It must give exactly
the same outcome, and a property test checks it against ``run_exits`` on random holders:

* order: lowest exact quota/EP first, ties by member number (``run_exits``' heap keys on
  ``ratio(quota, ep)`` cut to 80 digits, which never ties two different fractions of stored
  amounts, so the order is the exact one);
* stop: at the first candidate with ``ep * price < quota`` (each exit raises the price or
  leaves it, since the fee stays in the pool, so no later candidate can be due either);
* each exit sells all the member's EP at the current price, the payout (whole fen, cut down,
  after the sell fee) leaves the pool for the member's SP wallet and the EP is burned;
* the price while nothing circulates is the last one seen (``_remember_empty_price``).

Amounts are atoms: CNY and SP in 1/10,000 yuan, EP in 1/100,000,000 point.  No I/O: the
adapter offers candidates (members whose stored trigger passed the pre-filter bound, see
:meth:`ExitCascade.price_hint`) and stores what :meth:`ExitCascade.next_exit` returns.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from tokenmall.errors import InvariantViolation
from tokenmall.money import CNY_PLACES, EP_PLACES

__all__ = ["Exit", "ExitCascade"]

# EP atoms per CNY atom of the price's scale: price (CNY/EP) = pool_atoms / circ_atoms * _SCALE
_SCALE = 10 ** (EP_PLACES - CNY_PLACES)
# Heap key resolution: quota and EP atoms stay below 10**20, so two different quota/EP
# fractions differ by more than 10**-40 and their keys below never tie (floor of values that
# differ by at least one differs); equal fractions get equal keys, then the number decides.
_KEY_SCALE = 10**40
# CNY atoms per fen: payouts to a person are whole fen
_FEN = 10 ** (CNY_PLACES - 2)


@dataclass(frozen=True, slots=True)
class Exit:
    """One forced exit: member ``no`` sold ``ep`` atoms and received ``payout`` CNY atoms as SP."""

    no: int
    ep: int
    payout: int
    sp_after: int


class ExitCascade:
    """The exit walk of one day close, in atoms; see the module docstring."""

    def __init__(  # noqa: PLR0917 - the state of the tenant's price, all needed
        self,
        pool: int,
        circulating: int,
        empty_pool: int,
        empty_circulating: int,
        initial_price: Decimal,
        sell_fee: Decimal,
    ) -> None:
        if pool < 0 or circulating < 0:
            raise InvariantViolation("pool and circulating must not be negative")
        self.pool = pool
        self.circulating = circulating
        self.burned = 0  # EP atoms burned by this walk
        self.paid = 0  # CNY atoms paid out by this walk
        self.empty_pool = empty_pool
        self.empty_circulating = empty_circulating
        self._initial = Fraction(initial_price)
        keep = Fraction(1 - sell_fee)
        self._keep_num, self._keep_den = keep.numerator, keep.denominator
        self._heap: list[tuple[int, int, int, int, int]] = []

    def price(self) -> Fraction:
        """CNY per EP, exactly as :func:`tokenmall.domain.pricing.price_ratio` gives it: the
        same rule repeated on integer atoms, the form the 1M-holder close needs for speed
        (tests/unit/test_exit_cascade.py holds the two to the same transfers and price)."""
        if self.circulating > 0:
            return Fraction(self.pool * _SCALE, self.circulating)
        if self.empty_circulating > 0:
            return Fraction(self.empty_pool * _SCALE, self.empty_circulating)
        return self._initial

    def price_hint(self) -> float | None:
        """The price as a float for the adapter's pre-filter, or None if no exit can happen."""
        if self.circulating <= 0:
            return None
        price: float = self.pool * _SCALE / self.circulating
        return price

    def offer(self, no: int, ep: int, quota: int, spent: int, sp: int) -> None:
        """A candidate; members who never bought or hold nothing are never due (R7)."""
        if spent <= 0 or ep <= 0:
            return
        heapq.heappush(self._heap, (quota * _KEY_SCALE // ep, no, ep, quota, sp))

    def next_exit(self) -> Exit | None:
        """Pay out the lowest-trigger candidate if it is due now; None ends the walk."""
        heap = self._heap
        if not heap:
            return None
        _, no, ep, quota, sp = heap[0]
        circ = self.circulating
        if circ > 0:
            num, den = self.pool * _SCALE, circ
        else:
            p = self.price()
            num, den = p.numerator, p.denominator
        # due when ep * price >= quota, in atoms: ep/10^8 * num/den >= quota/10^4
        if ep * num < quota * den * _SCALE:
            return None
        heapq.heappop(heap)
        # payout in fen = floor(ep/10^8 * num/den * keep * 100), then in CNY atoms
        fen = (ep * num * self._keep_num * 100) // (den * self._keep_den * 10**EP_PLACES)
        payout = fen * _FEN
        if ep >= circ > 0:
            # the last points leave circulation: keep today's price (Economy._remember_empty_price)
            self.empty_pool, self.empty_circulating = self.pool, circ
        if payout > self.pool:
            raise InvariantViolation("pool CNY would go negative")
        if ep > circ:
            raise InvariantViolation("more EP burned than circulate")
        self.pool -= payout
        self.circulating = circ - ep
        self.burned += ep
        self.paid += payout
        return Exit(no, ep, payout, sp + payout)
