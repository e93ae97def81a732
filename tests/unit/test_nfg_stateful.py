"""Random sequences of NFG operations keep the ERC-721 and money invariants.

Mints, gifts, approvals, operators, listings, buys, cancels, redemptions, burns and the
clock, on two collections with holding periods, daily limits and a right with uses.  Every
refused operation must leave the registry and the exchange exactly as they were.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from tokenmall.domain.economy import Asset
from tokenmall.domain.nfg import (
    Collection,
    Exchange,
    Kind,
    ListingState,
    Mode,
    NFGError,
    Registry,
    Settlement,
    TokenRef,
)

MEMBERS = ["ann", "bob", "cat", "dan"]
T0 = 1_767_225_600.0
CODES = ["CARD", "SPA"]

members = st.sampled_from(MEMBERS)
codes = st.sampled_from(CODES)
prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(5000), places=2)


class NFGMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.reg = Registry()
        self.reg.add_collection(
            Collection(
                code="CARD",
                name="Black Card",
                max_supply=6,
                price=Decimal("999.00"),
                transfer_policy=Mode.OPEN,
                fee_bps=250,
                royalty_bps=500,
                fee_to_pool_ratio=Decimal("0.4"),
                min_holding_seconds=3600,
                daily_transfer_limit=3,
                issuer="merchant:1",
            )
        )
        self.reg.add_collection(
            Collection(
                code="SPA",
                name="Spa visits",
                max_supply=4,
                price=Decimal("300.00"),
                kind=Kind.RIGHT,
                uses=2,
                transfer_policy=Mode.OPEN,
                fee_bps=100,
                royalty_bps=1000,
                appreciation_step=Decimal("0.05"),
            )
        )
        self.ex = Exchange(self.reg)
        self.now = T0
        self.owners: dict[TokenRef, str] = {}  # the model: who owns what
        self.balances: Counter[tuple[Asset, str]] = Counter()

    # -- helpers ---------------------------------------------------------------------------

    def _pick(self, code: str, i: int) -> TokenRef:
        """Mostly an existing token; sometimes any serial (never minted, or burned)."""
        existing = sorted(r for r in self.owners if r.code == code)
        if existing and i < 8:
            return existing[i % len(existing)]
        return TokenRef(code, 1 + i % self.reg.collection(code).max_supply)

    def _state(self) -> tuple[object, ...]:
        return (
            self.reg.events,
            tuple(self.reg.all_tokens()),
            tuple(self.ex.open_listings()),
            {m: self.reg.tokens_of(m) for m in MEMBERS},
        )

    def _try(self, op: object, *args: object, **kw: object) -> object:
        before = self._state()
        try:
            out = op(*args, **kw)  # type: ignore[operator]
        except NFGError as err:
            event(f"refused: {err.code}")
            assert self._state() == before, "a refused operation changed something"
            return None
        event(f"done: {getattr(op, '__name__', op)}")
        return out

    def _apply(self, s: Settlement) -> None:
        paid = Counter[Asset]()
        for p in s.payments:
            assert p.amount > 0
            self.balances[(p.asset, p.payer)] -= p.amount
            self.balances[(p.asset, p.payee)] += p.amount
            paid[p.asset] += p.amount
        for move in s.token_moves:
            assert self.reg.owner_of(move.token) == move.to
            assert self.reg.get_approved(move.token) is None  # cleared on transfer
            self.owners[move.token] = move.to

    # -- rules -----------------------------------------------------------------------------

    @rule(dt=st.sampled_from([0, 60, 3600, 86_400]))
    def tick(self, dt: int) -> None:
        self.now += dt

    @rule(code=codes, to=members)
    def mint(self, code: str, to: str) -> None:
        e = self._try(self.reg.mint, code, to, at=self.now)
        if e is not None:
            assert e.token not in self.owners
            self.owners[e.token] = to

    @rule(
        code=codes,
        i=st.integers(0, 9),
        caller=members,
        to=st.sampled_from([*MEMBERS, ""]),
        wrong_from=st.booleans(),
        own=st.booleans(),
    )
    def transfer(
        self, code: str, i: int, caller: str, to: str, wrong_from: bool, own: bool
    ) -> None:
        ref = self._pick(code, i)
        if own and ref in self.owners:
            caller = self.owners[ref]
        frm = caller if wrong_from else self.owners.get(ref, caller)
        if self._try(self.reg.transfer_from, caller, frm, to, ref, at=self.now) is not None:
            assert frm == self.owners[ref]
            self.owners[ref] = to
            assert self.reg.get_approved(ref) is None

    @rule(code=codes, i=st.integers(0, 9), caller=members, to=st.sampled_from([*MEMBERS, None]))
    def approve(self, code: str, i: int, caller: str, to: str | None) -> None:
        self._try(self.reg.approve, caller, to, self._pick(code, i))

    @rule(code=codes, owner=members, op=members, on=st.booleans())
    def operator(self, code: str, owner: str, op: str, on: bool) -> None:
        self.reg.set_approval_for_all(owner, code, op, on)

    @rule(code=codes, i=st.integers(0, 9), caller=members, price=prices, own=st.booleans())
    def list_token(self, code: str, i: int, caller: str, price: Decimal, own: bool) -> None:
        ref = self._pick(code, i)
        if own and ref in self.owners:
            caller = self.owners[ref]
        fixed = self.reg.collection(code).appreciation_step is not None
        self._try(self.ex.list_token, caller, ref, None if fixed else price, at=self.now)

    @rule(n=st.integers(0, 30), buyer=members, asset=st.sampled_from([Asset.CNY, Asset.SP]))
    def buy(self, n: int, buyer: str, asset: Asset) -> None:
        listings = self.ex.open_listings()
        if not listings:
            return
        listing = listings[n % len(listings)]
        s = self._try(self.ex.buy, buyer, listing.id, asset, at=self.now)
        if isinstance(s, Settlement):
            assert sum(p.amount for p in s.payments) == s.price == listing.price
            assert s.proceeds == s.price - s.fee - s.royalty
            assert self.ex.listing(listing.id).state is ListingState.SOLD
            self._apply(s)

    @rule(n=st.integers(0, 30), caller=members)
    def cancel(self, n: int, caller: str) -> None:
        listings = self.ex.open_listings()
        if listings:
            self._try(self.ex.cancel, caller, listings[n % len(listings)].id, at=self.now)

    @rule(i=st.integers(0, 9), caller=members, own=st.booleans())
    def redeem(self, i: int, caller: str, own: bool) -> None:
        ref = self._pick("SPA", i)
        if own and ref in self.owners:
            caller = self.owners[ref]
        before = self.reg.token(ref).uses_left if self.reg.exists(ref) else None
        if self._try(self.reg.redeem, caller, ref, at=self.now) is not None:
            assert before is not None
            assert self.reg.token(ref).uses_left == before - 1
            assert self.reg.owner_of(ref) == self.owners[ref]

    @rule(code=codes, i=st.integers(0, 9), caller=members)
    def burn(self, code: str, i: int, caller: str) -> None:
        ref = self._pick(code, i)
        if self._try(self.reg.burn, caller, ref, at=self.now) is not None:
            del self.owners[ref]

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def one_owner_per_token_and_balances_match(self) -> None:
        seen: set[TokenRef] = set()
        for m in MEMBERS:
            mine = self.reg.tokens_of(m)
            assert not seen & set(mine), "a token with two owners"
            seen |= set(mine)
            for code in CODES:
                assert self.reg.balance_of(code, m) == sum(1 for r in mine if r.code == code)
            assert all(self.reg.owner_of(r) == m for r in mine)
        assert seen == set(self.owners)
        assert {t.ref: t.owner for t in self.reg.all_tokens()} == self.owners

    @invariant()
    def supply_is_never_exceeded(self) -> None:
        for code in CODES:
            c = self.reg.collection(code)
            assert self.reg.minted(code) <= c.max_supply
            assert self.reg.total_supply(code) == sum(1 for r in self.owners if r.code == code)

    @invariant()
    def money_moves_sum_to_zero(self) -> None:
        for asset in Asset:
            assert sum(v for (a, _), v in self.balances.items() if a is asset) == 0

    @invariant()
    def provenance_is_numbered_and_uses_never_negative(self) -> None:
        assert [e.seq for e in self.reg.events] == list(range(1, len(self.reg.events) + 1))
        assert all(t.uses_left >= 0 for t in self.reg.all_tokens())


NFGMachine.TestCase.settings = settings(max_examples=120, stateful_step_count=60, deadline=None)
TestNFGStateful = NFGMachine.TestCase
