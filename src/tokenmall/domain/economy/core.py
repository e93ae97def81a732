"""The economy's state and what every rule is made of: balances and members, the price, the
balanced transfers, the exit heap and the set-off of debts.  The rules are its subclasses
(see the package docstring)."""

from __future__ import annotations

import heapq
from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from tokenmall.domain.accounts import (
    NON_NEGATIVE,
    Asset,
    Escrow,
    Grant,
    Member,
    PayoutHold,
    SystemAccount,
    Transfer,
)
from tokenmall.domain.events import MemberExit
from tokenmall.domain.params import TenantParams
from tokenmall.domain.pricing import price_ratio
from tokenmall.errors import InvariantViolation, UnknownMember
from tokenmall.money import EP_PLACES, ZERO

__all__ = ["EP_EXP", "EconomyCore", "EconomyState", "MemberSource"]

_POOL = (SystemAccount.POOL, Asset.CNY)
_ISSUANCE = (SystemAccount.ISSUANCE, Asset.EP)
_BURNED = (SystemAccount.BURNED, Asset.EP)
_TREASURY = (SystemAccount.TREASURY, Asset.EP)
_FUND = (SystemAccount.DIVIDEND_FUND, Asset.CNY)
# points are issued and taken back in atoms of 10^-8 EP (R1, R2, R11)
EP_EXP = Decimal(1).scaleb(-EP_PLACES)


class MemberSource(Protocol):
    """Where an economy finds members it does not hold yet (the database adapter)."""

    def fetch(self, code: str) -> Member | None:
        """The stored member, or None if there is none."""

    def fetch_grant(self, order: str) -> Grant | None:
        """The stored grant of a settled order, or None."""

    def fetch_escrow(self, order: str) -> Escrow | None:
        """The stored escrow of a paid order, or None."""

    def fetch_hold(self, request: str) -> PayoutHold | None:
        """The stored payout hold, or None."""

    def due(self, pool: Decimal, circulating: Decimal, exclude: Container[str]) -> Iterable[Member]:
        """Members not in ``exclude`` whose stored trigger price may be <= pool/circulating.

        May return more than needed (it is a pre-filter); the economy checks exactly.
        """


@dataclass(slots=True)
class EconomyState:
    """The tenant-wide part of the state, loaded and saved by the adapter."""

    balances: dict[tuple[str, Asset], Decimal] = field(default_factory=dict)
    member_count: int = 0
    # The last (pool, circulating) with circulating > 0; the price while nothing circulates.
    empty_pool: Decimal = ZERO
    empty_circulating: Decimal = ZERO


class EconomyCore:
    """The state of one tenant's economy and the moves every rule is made of."""

    def __init__(
        self,
        params: TenantParams,
        state: EconomyState | None = None,
        source: MemberSource | None = None,
    ) -> None:
        self.params = params
        self.state = state if state is not None else EconomyState()
        self.source = source
        self.members: dict[str, Member] = {}
        self.grants: dict[str, Grant] = {}
        self.escrows: dict[str, Escrow] = {}
        # days closed by this in-memory economy; the ledger makes closes idempotent by key
        self.closed_days: set[str] = set()
        self.holds: dict[str, PayoutHold] = {}
        self.dirty_escrows: set[str] = set()
        self.dirty_holds: set[str] = set()
        self._journal: list[Transfer] = []
        self._exits: list[MemberExit] = []
        self._heap: list[tuple[Decimal, int, int, str]] = []
        self.dirty: set[str] = set()
        self.dirty_grants: set[str] = set()

    # ------------------------------------------------------------------ reads

    def balance(self, account: str, asset: Asset) -> Decimal:
        return self.state.balances.get((account, asset), ZERO)

    @property
    def pool(self) -> Decimal:
        return self.state.balances.get(_POOL, ZERO)

    @property
    def issued(self) -> Decimal:
        return -self.state.balances.get(_ISSUANCE, ZERO)

    @property
    def burned(self) -> Decimal:
        return self.state.balances.get(_BURNED, ZERO)

    @property
    def circulating(self) -> Decimal:
        """Issued and not burned: members' and the treasury's points."""
        b = self.state.balances
        return -b.get(_ISSUANCE, ZERO) - b.get(_BURNED, ZERO)

    @property
    def treasury(self) -> Decimal:
        return self.state.balances.get(_TREASURY, ZERO)

    @property
    def dividend_fund(self) -> Decimal:
        return self.state.balances.get(_FUND, ZERO)

    def price_ratio(self) -> tuple[Decimal, Decimal]:
        """The price as an exact ratio (numerator CNY, denominator EP)."""
        st = self.state
        return price_ratio(
            self.pool,
            self.circulating,
            st.empty_pool,
            st.empty_circulating,
            self.params.initial_price,
        )

    def snapshot(self) -> dict[str, Decimal]:
        """The figures docs/RULES.md section 7 prints after each step (price kept as a ratio)."""
        num, den = self.price_ratio()
        return {
            "price_num": num,
            "price_den": den,
            "pool": self.pool,
            "circulating": self.circulating,
            "burned": self.burned,
            "treasury": self.treasury,
            "dividend_fund": self.dividend_fund,
        }

    def member(self, code: str) -> Member:
        m = self._find(code)
        if m is None:
            raise UnknownMember(f"unknown member {code!r}")
        return m

    def take_exits(self) -> list[MemberExit]:
        """The forced exits since the last call (the adapter reports them as an event)."""
        out = self._exits
        self._exits = []
        return out

    def take_journal(self) -> list[Transfer]:
        """The transfers recorded since the last call (the adapter persists them)."""
        out = self._journal
        self._journal = []
        return out

    # ------------------------------------------------------------------ plumbing

    def _find(self, code: str) -> Member | None:
        m = self.members.get(code)
        if m is None and self.source is not None:
            m = self.source.fetch(code)
            if m is not None:
                self._adopt(m)
        return m

    def _escrow(self, order: str) -> Escrow | None:
        """An order's escrow, loaded once (orders settle and refund it; an NFG listing bought
        with CNY is paid out of it)."""
        esc = self.escrows.get(order)
        if esc is None and self.source is not None:
            esc = self.source.fetch_escrow(order)
            if esc is not None:
                self.escrows[order] = esc
        return esc

    def _adopt(self, m: Member) -> None:
        self.members[m.code] = m
        self._index(m)

    def _create(self, code: str, referrer: str | None) -> Member:
        self.state.member_count += 1
        m = Member(code=code, no=self.state.member_count, referrer=referrer, new=True)
        self.members[code] = m
        self.dirty.add(code)
        return m

    def _index(self, m: Member) -> None:
        m.version += 1
        trig = m.trigger()
        if trig is not None:
            heapq.heappush(self._heap, (trig, m.no, m.version, m.code))
            if len(self._heap) > 4 * len(self.members) + 1024:
                self._compact()

    def _compact(self) -> None:
        """Drop stale heap entries (each change pushes a new one), keeping memory bounded."""
        live = [e for e in self._heap if self.members[e[3]].version == e[2]]
        heapq.heapify(live)
        self._heap = live

    def _touch(self, m: Member) -> None:
        self.dirty.add(m.code)
        self._index(m)

    def _move(
        self, asset: Asset, debit: str | Member, credit: str | Member, amount: Decimal
    ) -> None:
        if amount == 0:
            return
        if amount < 0:
            raise InvariantViolation(f"negative transfer of {amount} {asset}")
        bal = self.state.balances
        if isinstance(debit, Member):
            self._member_add(debit, asset, -amount)
            debit_name = debit.account
        else:
            key = (debit, asset)
            new = bal.get(key, ZERO) - amount
            if new < 0 and key in NON_NEGATIVE:
                raise InvariantViolation(f"{debit} {asset} would go negative")
            bal[key] = new
            debit_name = debit
        if isinstance(credit, Member):
            self._member_add(credit, asset, amount)
            credit_name = credit.account
        else:
            key = (credit, asset)
            bal[key] = bal.get(key, ZERO) + amount
            credit_name = credit
        self._journal.append(Transfer(asset, debit_name, credit_name, amount))

    @staticmethod
    def _member_add(m: Member, asset: Asset, delta: Decimal) -> None:
        if asset is Asset.EP:
            m.ep += delta
            if m.ep < 0:
                raise InvariantViolation(f"member {m.code} EP would go negative")
        elif asset is Asset.SP:
            m.sp += delta
            if m.sp < 0:
                raise InvariantViolation(f"member {m.code} SP would go negative")
        else:
            raise InvariantViolation("members hold no CNY account")

    def _remember_empty_price(
        self, burn: Decimal, before: tuple[Decimal, Decimal] | None = None
    ) -> None:
        """Before ``burn`` points leave circulation: if that empties it, keep the price.

        The price kept is the one just before the event that empties circulation: today's
        ``pool / circulating`` for a single burn, or ``before`` (the price the event started
        from) for an event that burns in steps and moves the pool afterwards (a refund), whose
        intermediate ratios are no price any point ever had.
        """
        circ = self.circulating
        if burn > 0 and burn >= circ > 0:
            num, den = before if before is not None else (self.pool, circ)
            self.state.empty_pool, self.state.empty_circulating = num, den

    def _credit_ep(self, m: Member, amount: Decimal, source: str) -> Decimal:
        """Give ``amount`` EP; a refund debt is set off first (those points are burned)."""
        if amount <= 0:
            return ZERO
        self._move(Asset.EP, source, m, amount)
        if m.ep_debt > 0:
            off = min(m.ep_debt, amount)
            self._remember_empty_price(off)
            self._move(Asset.EP, m, SystemAccount.BURNED, off)
            m.ep_debt -= off
        return amount

    def _credit_sp(self, m: Member, amount: Decimal) -> Decimal:
        """Give ``amount`` SP (its CNY backing already moved into ``sp_reserve`` by the
        caller); an SP debt of a reward take-back is set off first.  Every SP credit of the
        economy goes through here, so a member with ``sp_debt > 0`` always holds 0 SP.

        Returns what the member keeps (``amount`` less the set-off)."""
        if amount <= 0:
            return ZERO
        self._move(Asset.SP, SystemAccount.SP_ISSUANCE, m, amount)
        return amount - self.set_off_sp(m)

    def set_off_sp(self, m: Member) -> Decimal:
        """Set ``m``'s SP debt off against the SP they hold: the SP goes back to issuance and
        its CNY backing from ``sp_reserve`` to revenue, where the reward came from.  Public
        for the ledger's bulk day close, which credits dividends in SQL and then corrects
        the few indebted members through here."""
        off = min(m.sp_debt, m.sp)
        if off <= 0:
            return ZERO
        self._move(Asset.SP, m, SystemAccount.SP_ISSUANCE, off)
        self._move(Asset.CNY, SystemAccount.SP_RESERVE, SystemAccount.REVENUE, off)
        m.sp_debt -= off
        self._touch(m)
        return off
