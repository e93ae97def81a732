"""The appreciating-point economy of one tenant (docs/RULES.md R1-R9, R11), as pure domain code.

An :class:`Economy` holds the tenant's system account balances and the members it has been
given, applies one command at a time, and records every movement of value as a balanced
:class:`Transfer`.  It does no I/O: the database adapter lends it members through a
:class:`MemberSource` and persists what it recorded; unit tests and the simulator use it with
every member in memory.

Price.  ``price = pool / circulating`` where *circulating* is every issued point that is not
burned (members' and the treasury's).  It is never stored as a number: comparisons are done by
cross-multiplication, so they are exact.  While nothing circulates the price is
``initial_price``, or, once points have circulated and all were burned, the last price they had
(so an empty pool never makes the price fall back).

Validation happens before any mutation, so a refused command leaves the state untouched.
"""

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
from tokenmall.domain.commands import (
    BuyPoints,
    CloseDay,
    Command,
    Exchange,
    Join,
    Pay,
    PayoutResult,
    Purchase,
    Redeem,
    Refund,
    RewardGrant,
    RewardTakeBack,
    Sell,
    Settle,
    TokenSale,
    Withdraw,
)
from tokenmall.domain.dividends import water_fill
from tokenmall.domain.events import MemberExit
from tokenmall.domain.params import TenantParams
from tokenmall.domain.pricing import points_bought, price_ratio, sale_value
from tokenmall.errors import (
    IdempotencyConflict,
    InsufficientBalance,
    InvalidCommand,
    InvariantViolation,
    NotFound,
    UnknownMember,
)
from tokenmall.money import (
    CNY_PLACES,
    EP_PLACES,
    ZERO,
    atoms,
    floor_cny,
    floor_ep,
    floor_fen,
    from_atoms,
    mul,
    ratio_floor,
)

__all__ = [
    "NON_NEGATIVE",
    "Asset",
    "BuyPoints",
    "CloseDay",
    "Command",
    "Economy",
    "Escrow",
    "Exchange",
    "Grant",
    "Join",
    "Member",
    "MemberSource",
    "Pay",
    "PayoutHold",
    "PayoutResult",
    "Purchase",
    "Redeem",
    "Refund",
    "RewardGrant",
    "RewardTakeBack",
    "Sell",
    "Settle",
    "SystemAccount",
    "TokenSale",
    "Transfer",
    "Withdraw",
]


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


_FEN_ATOMS = 10 ** (CNY_PLACES - 2)


# ----------------------------------------------------------------------------- economy


@dataclass(slots=True)
class EconomyState:
    """The tenant-wide part of the state, loaded and saved by the adapter."""

    balances: dict[tuple[str, Asset], Decimal] = field(default_factory=dict)
    member_count: int = 0
    # The last (pool, circulating) with circulating > 0; the price while nothing circulates.
    empty_pool: Decimal = ZERO
    empty_circulating: Decimal = ZERO


class Economy:
    """Applies commands to one tenant's state; see the module docstring."""

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

    # ------------------------------------------------------------------ dispatch

    def apply(self, cmd: Command) -> dict[str, Decimal]:
        """Apply one command, then the exit cascade (R7); return its own figures."""
        # NaN and infinities otherwise surface as decimal.InvalidOperation (or pass a "> 0"
        # check), not as the InvalidCommand every bad input must raise.
        for name in _DECIMAL_FIELDS[type(cmd)]:
            v = getattr(cmd, name)
            if v is not None and (not v.is_finite() or v.adjusted() >= _MAX_DIGITS):
                raise InvalidCommand(f"{name} must be a finite number below 10^12, got {v}")
        if isinstance(cmd, Purchase):
            out = self._purchase(cmd)
        elif isinstance(cmd, Sell):
            out = self._sell_cmd(cmd.member, cmd.points, to_wallet=True)
        elif isinstance(cmd, Redeem):
            out = self._sell_cmd(cmd.member, cmd.points, to_wallet=False)
        elif isinstance(cmd, Exchange):
            out = self._exchange(cmd)
        elif isinstance(cmd, BuyPoints):
            out = self._buy_points(cmd)
        elif isinstance(cmd, CloseDay):
            out = self._close_day(cmd.day)
        elif isinstance(cmd, Refund):
            out = self._refund(cmd)
        elif isinstance(cmd, Join):
            out = self._join(cmd)
        elif isinstance(cmd, Pay):
            out = self._pay(cmd)
        elif isinstance(cmd, Settle):
            out = self._settle(cmd)
        elif isinstance(cmd, Withdraw):
            out = self._withdraw(cmd)
        elif isinstance(cmd, PayoutResult):
            out = self._payout_result(cmd)
        elif isinstance(cmd, RewardGrant):
            out = self._reward_grant(cmd)
        elif isinstance(cmd, RewardTakeBack):
            out = self._reward_take_back(cmd)
        elif isinstance(cmd, TokenSale):
            out = self._token_sale(cmd)
        else:  # pragma: no cover - the union is closed
            raise InvalidCommand(f"unknown command {cmd!r}")
        out["exits"] = Decimal(self.run_exits())
        return out

    # ------------------------------------------------------------------ R1, R2

    def _purchase(self, cmd: Purchase) -> dict[str, Decimal]:
        x = cmd.amount
        if x <= 0:
            raise InvalidCommand("purchase amount must be greater than zero")
        if floor_fen(x) != x:
            raise InvalidCommand("purchase amount must be whole fen (0.01)")
        if cmd.referrer is not None and cmd.referrer == cmd.member:
            raise InvalidCommand("a member cannot refer themselves")
        if cmd.order in self.grants or (
            self.source is not None and self.source.fetch_grant(cmd.order) is not None
        ):
            raise IdempotencyConflict(f"order {cmd.order!r} was already settled")
        # A negative override used to pass the c + d <= x check and only fail in _move, after
        # the buyer had been created: refuse it here, before anything changes.
        for override in (cmd.pool_amount, cmd.fund_amount):
            if override is not None and override < 0:
                raise InvalidCommand("pool and dividend amounts must not be negative")
        p = self.params
        c = floor_cny(cmd.pool_amount if cmd.pool_amount is not None else mul(x, p.pool_rate))
        d = floor_cny(cmd.fund_amount if cmd.fund_amount is not None else mul(x, p.dividend_rate))
        if c + d > x:
            raise InvalidCommand("pool and dividend amounts exceed the order amount")
        buyer = self._find(cmd.member)
        if (
            buyer is not None
            and cmd.referrer is not None
            and buyer.referrer not in (None, cmd.referrer)
        ):
            raise InvalidCommand(
                f"member {cmd.member!r} already has referrer {buyer.referrer!r}; "
                "links are permanent"
            )
        if buyer is not None and buyer.referrer is None and cmd.referrer is not None:
            buyer.referrer = cmd.referrer  # first binding of a member who joined unreferred
        referrer: Member | None = None
        ref_code = buyer.referrer if buyer is not None else cmd.referrer
        if ref_code is not None:
            referrer = self._find(ref_code) or self._create(ref_code, None)
        if buyer is None:
            buyer = self._create(cmd.member, cmd.referrer)

        return self._reward(
            cmd.order,
            buyer,
            referrer,
            x=x,
            c=c,
            d=d,
            source=SystemAccount.WORLD,
            total=x,
            cny_part=x,
        )

    def _reward(
        self,
        order: str,
        buyer: Member,
        referrer: Member | None,
        *,
        x: Decimal,
        c: Decimal,
        d: Decimal,
        source: str,
        total: Decimal,
        cny_part: Decimal,
    ) -> dict[str, Decimal]:
        """R1/R2 once validated: move x from ``source``, issue EP, grant quota, record it."""
        p = self.params
        num, den = self.price_ratio()  # price before c enters the pool
        left = p.total_supply - self.issued
        ep_buyer = min(ratio_floor(mul(c, p.gift_ratio, den), num, _EP_EXP), max(left, ZERO))
        left -= ep_buyer
        ep_ref = ZERO
        if referrer is not None:
            ep_ref = min(ratio_floor(mul(c, p.referral_ratio, den), num, _EP_EXP), max(left, ZERO))

        self._move(Asset.CNY, source, SystemAccount.POOL, c)
        self._move(Asset.CNY, source, SystemAccount.DIVIDEND_FUND, d)
        self._move(Asset.CNY, source, SystemAccount.REVENUE, x - c - d)
        self._credit_ep(buyer, ep_buyer, SystemAccount.ISSUANCE)
        if referrer is not None:
            self._credit_ep(referrer, ep_ref, SystemAccount.ISSUANCE)
            self._touch(referrer)
        quota = floor_cny(mul(x, p.quota_multiplier))
        buyer.spent += x
        buyer.quota += quota
        buyer.exited = False
        self._touch(buyer)
        g = Grant(
            order,
            buyer.code,
            referrer.code if referrer else None,
            x,
            c,
            d,
            ep_buyer,
            ep_ref,
            quota,
            new=True,
            total=total,
            cny_part=cny_part,
        )
        self.grants[order] = g
        self.dirty_grants.add(order)
        return {"points": ep_buyer, "referral_points": ep_ref, "quota": quota}

    # ------------------------------------------------------------------ R3, R4

    def _sell_cmd(self, code: str, q: Decimal, *, to_wallet: bool) -> dict[str, Decimal]:
        m = self.member(code)
        if q <= 0:
            raise InvalidCommand("points to sell must be greater than zero")
        if floor_ep(q) != q:
            raise InvalidCommand("points have at most 8 decimal places")
        if q > m.ep:
            raise InsufficientBalance(f"member {code!r} holds {m.ep} EP, cannot sell {q}")
        payout = self._sell(m, q, to_wallet=to_wallet)
        self._touch(m)
        return {"payout": payout}

    def _sell(self, m: Member, q: Decimal, *, to_wallet: bool) -> Decimal:
        num, den = self.price_ratio()
        payout = sale_value(q, num, den, self.params.sell_fee)
        self._remember_empty_price(q)
        self._move(Asset.EP, m, SystemAccount.BURNED, q)
        if to_wallet:
            self._move(Asset.CNY, SystemAccount.POOL, SystemAccount.SP_RESERVE, payout)
            self._credit_sp(m, payout)
        else:
            self._move(Asset.CNY, SystemAccount.POOL, SystemAccount.REVENUE, payout)
        return payout

    # ------------------------------------------------------------------ R5, R6

    def _exchange(self, cmd: Exchange) -> dict[str, Decimal]:
        m = self.member(cmd.member)
        q = cmd.points
        if q <= 0 or floor_ep(q) != q:
            raise InvalidCommand("points to exchange must be > 0 with at most 8 decimal places")
        if q > m.ep:
            raise InsufficientBalance(f"member {cmd.member!r} holds {m.ep} EP, cannot exchange {q}")
        num, den = self.price_ratio()
        sp = sale_value(q, num, den, self.params.exchange_fee)
        self._move(Asset.EP, m, SystemAccount.TREASURY, q)
        # The platform backs the new SP from its revenue: the pool (and so the price) is untouched.
        self._move(Asset.CNY, SystemAccount.REVENUE, SystemAccount.SP_RESERVE, sp)
        self._credit_sp(m, sp)
        self._touch(m)
        return {"stable": sp}

    def _buy_points(self, cmd: BuyPoints) -> dict[str, Decimal]:
        m = self.member(cmd.member)
        s = cmd.stable
        if s <= 0 or floor_fen(s) != s:
            raise InvalidCommand("stable points must be > 0 and whole fen")
        if s > m.sp:
            raise InsufficientBalance(f"member {cmd.member!r} holds {m.sp} SP, cannot spend {s}")
        num, den = self.price_ratio()
        q = points_bought(s, num, den)
        if q <= 0:
            raise InvalidCommand(f"{s} SP buys less than one point atom at the current price")
        if q > self.treasury:
            # the treasury's balance is the platform's business, not the member's: say only
            # that this purchase does not fit (R6)
            raise InsufficientBalance(
                f"the treasury cannot sell {q} EP for {s} SP now; try a smaller amount later"
            )
        self._move(Asset.SP, m, SystemAccount.SP_ISSUANCE, s)
        self._move(Asset.CNY, SystemAccount.SP_RESERVE, SystemAccount.REVENUE, s)
        self._credit_ep(m, q, SystemAccount.TREASURY)
        self._touch(m)
        return {"points": q}

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

    # ------------------------------------------------------------------ R11

    def _refund(self, cmd: Refund) -> dict[str, Decimal]:
        esc = self._escrow(cmd.order)
        if esc is not None and not esc.settled:
            return self._void(esc, cmd.amount)
        g = self.grants.get(cmd.order)
        if g is None and self.source is not None:
            g = self.source.fetch_grant(cmd.order)
            if g is not None:
                self.grants[g.order] = g
        if g is None:
            raise NotFound(f"no paid order {cmd.order!r}")
        total = g.total if g.total is not None else g.amount
        cny_total = g.cny_part if g.cny_part is not None else g.amount
        left = total - g.refunded
        r = left if cmd.amount is None else cmd.amount
        if r <= 0 or floor_fen(r) != r:
            raise InvalidCommand("refund amount must be > 0 and whole fen")
        if r > left:
            raise InvalidCommand(f"order {cmd.order!r} has only {left} left to refund")
        # Cumulative take-back after this refund is floor(grant * refunded_after / total), so
        # partial refunds add up to exactly what the order granted once it is fully refunded.
        before, after = g.refunded, g.refunded + r

        def part(amount: Decimal, exp: Decimal) -> Decimal:
            return ratio_floor(mul(amount, after), total, exp) - ratio_floor(
                mul(amount, before), total, exp
            )

        buyer = self.member(g.member)
        take_buyer = part(g.ep_member, _EP_EXP)
        take_ref = ZERO
        referrer = None
        if g.referrer is not None:
            referrer = self.member(g.referrer)
            take_ref = part(g.ep_referrer, _EP_EXP)
        pool_part = part(g.pool_in, _CNY_EXP)
        quota_part = part(g.quota, _CNY_EXP)
        spent_part = part(g.amount, _CNY_EXP)
        cny_back = part(cny_total, _FEN_EXP)

        num, den = self.price_ratio()
        burned = ZERO
        for who, take in ((buyer, take_buyer), (referrer, take_ref)):
            if who is None or take <= 0:
                continue
            burn = min(take, who.ep)
            if burn > 0:
                # if this empties circulation, the price is the one the refund started from:
                # the buyer's points may be gone already and the pool gives back below
                self._remember_empty_price(burn, (num, den))
                self._move(Asset.EP, who, SystemAccount.BURNED, burn)
                burned += burn
            who.ep_debt += take - burn
            self._touch(who)
        back = min(pool_part, ratio_floor(mul(burned, num), den, _FEN_EXP), r)
        # The pool's share goes out first, to the payer's account, then the platform's revenue
        # covers the rest; what was paid in SP or EP comes back as SP.
        pool_to_world = min(back, cny_back)
        self._move(Asset.CNY, SystemAccount.POOL, SystemAccount.WORLD, pool_to_world)
        self._move(Asset.CNY, SystemAccount.REVENUE, SystemAccount.WORLD, cny_back - pool_to_world)
        self._refund_as_sp(buyer, r - cny_back, from_pool=back - pool_to_world)
        buyer.quota = max(ZERO, buyer.quota - quota_part)
        buyer.spent = max(ZERO, buyer.spent - spent_part)
        self._touch(buyer)
        g.refunded += r
        self.dirty_grants.add(g.order)
        return {"burned": burned, "pool_back": back, "debt": buyer.ep_debt}

    def _refund_as_sp(self, m: Member, amount: Decimal, *, from_pool: Decimal) -> None:
        if amount <= 0:
            return
        self._move(Asset.CNY, SystemAccount.POOL, SystemAccount.SP_RESERVE, from_pool)
        self._move(Asset.CNY, SystemAccount.REVENUE, SystemAccount.SP_RESERVE, amount - from_pool)
        self._credit_sp(m, amount)
        self._touch(m)

    # ------------------------------------------------------------------ orders (R4, R11)

    def _escrow(self, order: str) -> Escrow | None:
        esc = self.escrows.get(order)
        if esc is None and self.source is not None:
            esc = self.source.fetch_escrow(order)
            if esc is not None:
                self.escrows[order] = esc
        return esc

    def _join(self, cmd: Join) -> dict[str, Decimal]:
        if cmd.referrer is not None and cmd.referrer == cmd.member:
            raise InvalidCommand("a member cannot refer themselves")
        m = self._find(cmd.member)
        if m is not None:
            if cmd.referrer is not None and m.referrer not in (None, cmd.referrer):
                raise InvalidCommand(
                    f"member {cmd.member!r} already has referrer {m.referrer!r}; "
                    "links are permanent"
                )
            if m.referrer is None and cmd.referrer is not None:
                m.referrer = cmd.referrer
                self.dirty.add(m.code)
            return {"created": ZERO}
        if cmd.referrer is not None and self._find(cmd.referrer) is None:
            self._create(cmd.referrer, None)
        self._create(cmd.member, cmd.referrer)
        return {"created": Decimal(1)}

    def _pay(self, cmd: Pay) -> dict[str, Decimal]:
        if (
            self._escrow(cmd.order) is not None
            or cmd.order in self.grants
            or (self.source is not None and self.source.fetch_grant(cmd.order) is not None)
        ):
            raise IdempotencyConflict(f"order {cmd.order!r} was already paid")
        for name, v in (("cny", cmd.cny), ("sp", cmd.sp)):
            if v < 0 or floor_fen(v) != v:
                raise InvalidCommand(f"{name} must be >= 0 and whole fen")
        if cmd.points < 0 or floor_ep(cmd.points) != cmd.points:
            raise InvalidCommand("points must be >= 0 with at most 8 decimal places")
        if cmd.cny + cmd.sp + cmd.points <= 0:
            raise InvalidCommand("a payment must pay something")
        m = self._find(cmd.member)
        if m is None:
            if cmd.sp > 0 or cmd.points > 0:
                raise UnknownMember(f"unknown member {cmd.member!r}")
            m = self._create(cmd.member, None)
        if cmd.sp > m.sp:
            raise InsufficientBalance(f"member {cmd.member!r} holds {m.sp} SP, {cmd.sp} asked")
        if cmd.points > m.ep:
            raise InsufficientBalance(f"member {cmd.member!r} holds {m.ep} EP, {cmd.points} asked")
        ep_value = ZERO
        if cmd.points > 0:
            num, den = self.price_ratio()
            ep_value = sale_value(cmd.points, num, den, self.params.sell_fee)
        # Points worth less than a fen, paid alone, used to pass the check above and leave an
        # escrow worth 0 that Settle and a refund then divide by (decimal.InvalidOperation).
        if cmd.cny + cmd.sp + ep_value <= 0:
            raise InvalidCommand("a payment must be worth at least one fen")
        if cmd.points > 0:
            self._remember_empty_price(cmd.points)
            self._move(Asset.EP, m, SystemAccount.BURNED, cmd.points)
            self._move(Asset.CNY, SystemAccount.POOL, SystemAccount.ESCROW, ep_value)
        self._move(Asset.CNY, SystemAccount.WORLD, SystemAccount.ESCROW, cmd.cny)
        if cmd.sp > 0:
            self._move(Asset.SP, m, SystemAccount.SP_ISSUANCE, cmd.sp)
            self._move(Asset.CNY, SystemAccount.SP_RESERVE, SystemAccount.ESCROW, cmd.sp)
        self._touch(m)
        esc = Escrow(cmd.order, m.code, cmd.cny, cmd.sp, cmd.points, ep_value, new=True)
        self.escrows[cmd.order] = esc
        self.dirty_escrows.add(cmd.order)
        return {"total": esc.total, "ep_value": ep_value}

    def _void(self, esc: Escrow, amount: Decimal | None) -> dict[str, Decimal]:
        """Refund before settlement: money back in the mix it came, no reward to take back."""
        total = esc.total
        left = total - esc.refunded
        r = left if amount is None else amount
        if r <= 0 or floor_fen(r) != r:
            raise InvalidCommand("refund amount must be > 0 and whole fen")
        if r > left:
            raise InvalidCommand(f"order {esc.order!r} has only {left} left to refund")
        after = esc.refunded + r
        cny_back = ratio_floor(mul(esc.cny, after), total, _FEN_EXP) - ratio_floor(
            mul(esc.cny, esc.refunded), total, _FEN_EXP
        )
        m = self.member(esc.member)
        self._move(Asset.CNY, SystemAccount.ESCROW, SystemAccount.WORLD, cny_back)
        if r > cny_back:
            self._move(Asset.CNY, SystemAccount.ESCROW, SystemAccount.SP_RESERVE, r - cny_back)
            self._credit_sp(m, r - cny_back)
            self._touch(m)
        esc.refunded = after
        self.dirty_escrows.add(esc.order)
        return {"refunded": r, "cny_back": cny_back}

    def _settle(self, cmd: Settle) -> dict[str, Decimal]:
        esc = self._escrow(cmd.order)
        if esc is None:
            raise NotFound(f"no paid order {cmd.order!r}")
        if esc.settled:
            raise IdempotencyConflict(f"order {cmd.order!r} was already settled")
        for override in (cmd.pool_amount, cmd.fund_amount):
            if override is not None and override < 0:
                raise InvalidCommand("pool and dividend amounts must not be negative")
        total = esc.total
        left = total - esc.refunded
        # What is left of each part after pre-settlement refunds (cut down: the rest stays in
        # escrow's rounding and goes to revenue below).
        base = ratio_floor(mul(esc.cny + esc.sp, left), total, _FEN_EXP)
        cny_left = ratio_floor(mul(esc.cny, left), total, _FEN_EXP)
        p = self.params
        c = floor_cny(cmd.pool_amount if cmd.pool_amount is not None else mul(base, p.pool_rate))
        d = floor_cny(
            cmd.fund_amount if cmd.fund_amount is not None else mul(base, p.dividend_rate)
        )
        if c + d > base:
            raise InvalidCommand("pool and dividend amounts exceed the rewarded amount")
        buyer = self.member(esc.member)
        referrer = None
        if buyer.referrer is not None:
            referrer = self._find(buyer.referrer) or self._create(buyer.referrer, None)
        esc.settled = True
        self.dirty_escrows.add(esc.order)
        rest = left - base  # the EP-paid part: the merchant's revenue, no reward
        self._move(Asset.CNY, SystemAccount.ESCROW, SystemAccount.REVENUE, rest)
        if base <= 0:
            # Paid entirely with points: no reward, but a grant so a later refund finds it
            # (the money goes back as SP, out of revenue, like any non-CNY part).
            g = Grant(
                esc.order,
                buyer.code,
                None,
                ZERO,
                ZERO,
                ZERO,
                ZERO,
                ZERO,
                ZERO,
                new=True,
                total=left,
                cny_part=cny_left,
            )
            self.grants[esc.order] = g
            self.dirty_grants.add(esc.order)
            return {"points": ZERO, "referral_points": ZERO, "quota": ZERO}
        return self._reward(
            esc.order,
            buyer,
            referrer,
            x=base,
            c=c,
            d=d,
            source=SystemAccount.ESCROW,
            total=left,
            cny_part=cny_left,
        )

    # ------------------------------------------------------------------ withdrawals

    def _hold(self, request: str) -> PayoutHold | None:
        h = self.holds.get(request)
        if h is None and self.source is not None:
            h = self.source.fetch_hold(request)
            if h is not None:
                self.holds[request] = h
        return h

    def _withdraw(self, cmd: Withdraw) -> dict[str, Decimal]:
        if self._hold(cmd.request) is not None:
            raise IdempotencyConflict(f"withdrawal {cmd.request!r} already exists")
        m = self.member(cmd.member)
        if cmd.amount <= 0 or floor_fen(cmd.amount) != cmd.amount:
            raise InvalidCommand("withdrawal amount must be > 0 and whole fen")
        if cmd.fee < 0 or floor_fen(cmd.fee) != cmd.fee or cmd.fee >= cmd.amount:
            raise InvalidCommand("fee must be whole fen, >= 0 and below the amount")
        if cmd.amount > m.sp:
            raise InsufficientBalance(
                f"member {cmd.member!r} holds {m.sp} SP, cannot withdraw {cmd.amount}"
            )
        self._move(Asset.SP, m, SystemAccount.SP_ISSUANCE, cmd.amount)
        self._move(
            Asset.CNY, SystemAccount.SP_RESERVE, SystemAccount.PAYOUT_HOLD, cmd.amount - cmd.fee
        )
        self._move(Asset.CNY, SystemAccount.SP_RESERVE, SystemAccount.REVENUE, cmd.fee)
        self._touch(m)
        self.holds[cmd.request] = PayoutHold(cmd.request, m.code, cmd.amount, cmd.fee, new=True)
        self.dirty_holds.add(cmd.request)
        return {"held": cmd.amount, "net": cmd.amount - cmd.fee}

    def _payout_result(self, cmd: PayoutResult) -> dict[str, Decimal]:
        h = self._hold(cmd.request)
        if h is None:
            raise NotFound(f"no withdrawal {cmd.request!r}")
        if h.status != "held":
            raise InvalidCommand(f"withdrawal {cmd.request!r} is already {h.status}")
        net = h.amount - h.fee
        if cmd.paid:
            self._move(Asset.CNY, SystemAccount.PAYOUT_HOLD, SystemAccount.WORLD, net)
            h.status = "paid"
        else:
            m = self.member(h.member)
            self._move(Asset.CNY, SystemAccount.PAYOUT_HOLD, SystemAccount.SP_RESERVE, net)
            self._move(Asset.CNY, SystemAccount.REVENUE, SystemAccount.SP_RESERVE, h.fee)
            self._credit_sp(m, h.amount)
            self._touch(m)
            h.status = "released"
        self.dirty_holds.add(h.request)
        return {"paid": net if cmd.paid else ZERO}

    # ------------------------------------------------------------------ model rewards

    def _reward_member(self, code: str, amount: Decimal, what: str) -> Member:
        if amount <= 0 or floor_fen(amount) != amount:
            raise InvalidCommand(f"{what} must be > 0 and whole fen, got {amount}")
        return self.member(code)

    def _reward_grant(self, cmd: RewardGrant) -> dict[str, Decimal]:
        """SP from the platform's revenue share: revenue -> sp_reserve, SP to the member."""
        m = self._reward_member(cmd.member, cmd.amount, "a reward")
        self._move(Asset.CNY, SystemAccount.REVENUE, SystemAccount.SP_RESERVE, cmd.amount)
        kept = self._credit_sp(m, cmd.amount)
        self._touch(m)
        return {"granted": cmd.amount, "set_off": cmd.amount - kept, "debt": m.sp_debt}

    def _reward_take_back(self, cmd: RewardTakeBack) -> dict[str, Decimal]:
        """What the member still holds goes back to revenue; the rest becomes an SP debt."""
        m = self._reward_member(cmd.member, cmd.amount, "a take-back")
        taken = min(cmd.amount, m.sp)
        self._move(Asset.SP, m, SystemAccount.SP_ISSUANCE, taken)
        self._move(Asset.CNY, SystemAccount.SP_RESERVE, SystemAccount.REVENUE, taken)
        m.sp_debt += cmd.amount - taken
        self._touch(m)
        return {"taken": taken, "debt": m.sp_debt}

    # ------------------------------------------------------------------ NFG

    def _token_sale(self, cmd: TokenSale) -> dict[str, Decimal]:
        """The buyer's SP leaves circulation; its CNY backing in ``sp_reserve`` follows each
        part: it stays behind the SP credited to a member (seller, issuer), goes to revenue
        for the platform's parts and into the pool for the pool share (which raises the
        price: nothing is issued against it).  Paid through an order (``cmd.order``), the
        same parts leave that order's escrow instead and settle it: the seller's and the
        issuer's shares back the SP credited to them, anything the escrow holds beyond the
        price (EP rounding) is revenue, as :meth:`_settle` does with it."""
        parts = (cmd.proceeds, cmd.fee, cmd.pool_share, cmd.royalty)
        if cmd.price <= 0 or floor_fen(cmd.price) != cmd.price:
            raise InvalidCommand(f"a token's price must be > 0 and whole fen, got {cmd.price}")
        if any(p < 0 or floor_fen(p) != p for p in parts):
            raise InvalidCommand("a token sale's parts must be >= 0 and whole fen")
        if cmd.proceeds + cmd.fee + cmd.royalty != cmd.price or cmd.pool_share > cmd.fee:
            raise InvalidCommand("proceeds, fee and royalty must add up to the price")
        buyer = self.member(cmd.buyer)
        seller = None if cmd.seller is None else self.member(cmd.seller)
        issuer = None if cmd.issuer is None else self.member(cmd.issuer)
        if buyer is seller:
            raise InvalidCommand("a member cannot buy a token from themselves")
        source = SystemAccount.SP_RESERVE
        extra = ZERO  # what a paid order's escrow holds beyond the price (EP rounding)
        if cmd.order is not None:
            esc = self._escrow(cmd.order)
            if esc is None:
                raise NotFound(f"no paid order {cmd.order!r}")
            if esc.settled:
                raise IdempotencyConflict(f"order {cmd.order!r} was already settled")
            if esc.member != buyer.code:
                raise InvalidCommand(f"order {cmd.order!r} was paid by {esc.member!r}")
            extra = esc.total - esc.refunded - cmd.price
            if extra < 0:
                raise InvalidCommand(
                    f"order {cmd.order!r} holds {esc.total - esc.refunded}, "
                    f"the token costs {cmd.price}"
                )
            esc.settled = True
            self.dirty_escrows.add(esc.order)
            source = SystemAccount.ESCROW
        else:
            if cmd.price > buyer.sp:
                raise InsufficientBalance(
                    f"member {cmd.buyer!r} holds {buyer.sp} SP, the token costs {cmd.price}"
                )
            self._move(Asset.SP, buyer, SystemAccount.SP_ISSUANCE, cmd.price)
            self._touch(buyer)
        to_revenue = cmd.fee - cmd.pool_share + extra
        for who, amount in ((seller, cmd.proceeds), (issuer, cmd.royalty)):
            if who is None:
                to_revenue += amount
            elif amount > 0:
                if source is SystemAccount.ESCROW:
                    self._move(Asset.CNY, source, SystemAccount.SP_RESERVE, amount)
                self._credit_sp(who, amount)
                self._touch(who)
        self._move(Asset.CNY, source, SystemAccount.REVENUE, to_revenue)
        self._move(Asset.CNY, source, SystemAccount.POOL, cmd.pool_share)
        return {"price": cmd.price, "to_pool": cmd.pool_share}


_DECIMAL_FIELDS: dict[type, tuple[str, ...]] = {
    Purchase: ("amount", "pool_amount", "fund_amount"),
    Sell: ("points",),
    Redeem: ("points",),
    Exchange: ("points",),
    BuyPoints: ("stable",),
    CloseDay: (),
    Refund: ("amount",),
    Join: (),
    Pay: ("cny", "sp", "points"),
    Settle: ("pool_amount", "fund_amount"),
    Withdraw: ("amount", "fee"),
    PayoutResult: (),
    RewardGrant: ("amount",),
    RewardTakeBack: ("amount",),
    TokenSale: ("price", "proceeds", "fee", "pool_share", "royalty"),
}
# Stored atoms are 64-bit: 10^12 CNY at 4 places or EP at 8 places stays far inside that.
_MAX_DIGITS = 12
_POOL = (SystemAccount.POOL, Asset.CNY)
_ISSUANCE = (SystemAccount.ISSUANCE, Asset.EP)
_BURNED = (SystemAccount.BURNED, Asset.EP)
_TREASURY = (SystemAccount.TREASURY, Asset.EP)
_FUND = (SystemAccount.DIVIDEND_FUND, Asset.CNY)
_EP_EXP = Decimal(1).scaleb(-EP_PLACES)
_FEN_EXP = Decimal("0.01")
_CNY_EXP = Decimal(1).scaleb(-CNY_PLACES)
