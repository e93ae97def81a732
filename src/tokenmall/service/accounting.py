"""The platform's own money in view: a tenant's balance sheet, with its identities checked.

Every figure comes from what the ledger stores, read in one snapshot: the system accounts
(``accounts``), the sums of the members' wallets (``members``), the open escrows and payout
holds (``escrows``, ``payout_holds``) and the open withdrawal requests (``withdrawals``).  The
balance sheet then checks the identities the ledger maintains (docs/DESIGN.md "Accounts",
docs/RULES.md R8) and shows each with both sides, so an operator sees not only that the books
balance but by how much a broken one is off.

Why each identity holds (``domain/economy/``):

* every movement is a balanced transfer, so each asset sums to zero over all accounts;
* SP enters a wallet only with its CNY moved into ``sp_reserve`` and leaves it only with the
  CNY moved out (a withdrawal moves the net to ``payout_hold`` and the fee to ``revenue`` at the
  moment the SP leaves the wallet), so ``sp_reserve`` = members' SP exactly;
* ``payout_hold`` holds the net of every withdrawal not yet paid or released, which are the
  ``held`` payout holds, which are the withdrawals still ``requested`` or ``approved``;
* ``escrow`` holds every paid order's CNY, SP and redeemed-EP value until it settles, less what
  was refunded before settlement;
* ``circulating = issued - burned`` is, by the EP sum, the members' EP plus the treasury's;
* the pool covers every holder selling every point at today's price (R3, after the fee): the
  figure shown is ``floor2(members' EP x price x (1 - sell_fee))``, at least the sum of the
  holders' own floored payouts.  Each sale pays at most its proportional share of the pool,
  so selling one after another in any order is covered as well (R8).

Nothing here writes or takes the tenant's lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Connection, and_, func, select

from tokenmall.domain.economy import NON_NEGATIVE, Asset, SystemAccount
from tokenmall.errors import NotFound
from tokenmall.money import (
    CNY_PLACES,
    EP_PLACES,
    FEN,
    ZERO,
    from_atoms,
    mul,
    ratio_floor,
    show_price,
)
from tokenmall.service.reads import price_ratio, tenant_params
from tokenmall.store import schema as s
from tokenmall.store.db import is_sqlite

__all__ = ["BalanceSheet", "Identity", "balance_sheet", "snapshot"]

# the withdrawal statuses whose SP is out of the wallet and whose CNY is still held
_OPEN_WITHDRAWALS = ("requested", "approved")


@dataclass(frozen=True, slots=True)
class Identity:
    """One identity of the books: ``left`` must stand in ``relation`` to ``right``."""

    name: str
    statement: str  # the identity in words and symbols, for the operator
    left: Decimal
    relation: str  # "==" or ">=" or "<="
    right: Decimal

    @property
    def holds(self) -> bool:
        if self.relation == "==":
            return self.left == self.right
        if self.relation == ">=":
            return self.left >= self.right
        return self.left <= self.right


@dataclass(frozen=True, slots=True)
class BalanceSheet:
    """A tenant's system accounts, the members' totals and the identities between them."""

    seq: int  # the last ledger transaction the snapshot includes
    price: str  # 4 decimals, display only
    # CNY
    pool: Decimal
    dividend_fund: Decimal
    revenue: Decimal
    sp_reserve: Decimal
    escrow: Decimal
    payout_hold: Decimal
    world: Decimal  # minus what buyers paid in, plus what refunds and payouts paid back
    # EP
    issued: Decimal
    burned: Decimal
    circulating: Decimal
    treasury: Decimal
    members_ep: Decimal
    # SP
    members_sp: Decimal
    sp_issuance: Decimal
    # what the open items add up to
    members: int
    escrowed_orders: int
    escrowed: Decimal
    held_withdrawals: int
    held_net: Decimal
    open_withdrawals: int
    open_withdrawals_net: Decimal
    sale_value: Decimal  # every holder's EP sold at today's price, after the fee (R3)
    total_supply: Decimal
    identities: tuple[Identity, ...]

    @property
    def ok(self) -> bool:
        return all(i.holds for i in self.identities)

    @property
    def broken(self) -> list[str]:
        return [i.name for i in self.identities if not i.holds]


def _atoms_sum(value: object) -> int:
    # SUM over BIGINT is NUMERIC on PostgreSQL and NULL over no rows on both
    return 0 if value is None else int(value)  # type: ignore[call-overload]


def snapshot(conn: Connection) -> Connection:
    """Make the reads that follow one consistent snapshot.

    On PostgreSQL, READ COMMITTED gives each statement its own snapshot, so a transfer
    committed between two of the balance sheet's queries would look like a broken identity;
    REPEATABLE READ gives the whole transaction the first one.  SQLite's deferred read
    transaction in WAL mode is already a snapshot.  Call before the first statement.
    """
    if not is_sqlite(conn):
        conn.execution_options(isolation_level="REPEATABLE READ")
    return conn


def balance_sheet(conn: Connection, tenant_id: int) -> BalanceSheet:
    """The tenant's balance sheet now; call :func:`snapshot` on ``conn`` first."""
    params = tenant_params(conn, tenant_id)
    num, den, bal = price_ratio(conn, tenant_id, params)

    def acct(account: SystemAccount, asset: Asset) -> Decimal:
        return bal.get((account.value, asset.value), ZERO)

    st = s.tenant_state.c
    seq = conn.execute(select(st.seq).where(st.tenant_id == tenant_id)).scalar()
    if seq is None:
        raise NotFound(f"no tenant {tenant_id}")
    m = s.members.c
    mrow = conn.execute(
        select(func.count(), func.sum(m.ep), func.sum(m.sp)).where(m.tenant_id == tenant_id)
    ).one()
    members_ep = from_atoms(_atoms_sum(mrow[1]), EP_PLACES)
    members_sp = from_atoms(_atoms_sum(mrow[2]), CNY_PLACES)
    e = s.escrows.c
    erow = conn.execute(
        # a fully refunded order holds nothing any more: not counted (its row stays unsettled)
        select(func.count(), func.sum(e.cny + e.sp + e.ep_value - e.refunded)).where(
            e.tenant_id == tenant_id,
            e.settled.is_(False),
            e.cny + e.sp + e.ep_value > e.refunded,
        )
    ).one()
    h = s.payout_holds.c
    hrow = conn.execute(
        select(func.count(), func.sum(h.amount - h.fee)).where(
            h.tenant_id == tenant_id, h.status == "held"
        )
    ).one()
    w = s.withdrawals.c
    wrow = conn.execute(
        select(func.count(), func.sum(w.amount_fen - w.fee_fen)).where(
            and_(w.tenant_id == tenant_id, w.status.in_(_OPEN_WITHDRAWALS))
        )
    ).one()

    pool = acct(SystemAccount.POOL, Asset.CNY)
    issued = -acct(SystemAccount.ISSUANCE, Asset.EP)
    burned = acct(SystemAccount.BURNED, Asset.EP)
    treasury = acct(SystemAccount.TREASURY, Asset.EP)
    circulating = issued - burned
    sp_reserve = acct(SystemAccount.SP_RESERVE, Asset.CNY)
    escrow = acct(SystemAccount.ESCROW, Asset.CNY)
    payout_hold = acct(SystemAccount.PAYOUT_HOLD, Asset.CNY)
    sp_issuance = acct(SystemAccount.SP_ISSUANCE, Asset.SP)
    escrowed = from_atoms(_atoms_sum(erow[1]), CNY_PLACES)
    held_net = from_atoms(_atoms_sum(hrow[1]), CNY_PLACES)
    open_net = Decimal(_atoms_sum(wrow[1])).scaleb(-2)
    # one floor over the holders' total: at least the sum of their own floored payouts
    sale_value = (
        ratio_floor(mul(members_ep, num, 1 - params.sell_fee), den, FEN)
        if circulating > 0
        else ZERO
    )

    def total(asset: Asset) -> Decimal:
        return sum((v for (_, a), v in bal.items() if a == asset.value), ZERO)

    lowest = min(
        (bal.get((str(acc), str(asset)), ZERO) for acc, asset in NON_NEGATIVE), default=ZERO
    )
    identities = (
        Identity("cny_balanced", "the CNY accounts sum to zero", total(Asset.CNY), "==", ZERO),
        Identity(
            "ep_balanced",
            "the EP accounts and the members' EP sum to zero",
            total(Asset.EP) + members_ep,
            "==",
            ZERO,
        ),
        Identity(
            "sp_balanced",
            "sp_issuance and the members' SP sum to zero",
            sp_issuance + members_sp,
            "==",
            ZERO,
        ),
        Identity(
            "sp_backed",
            "sp_reserve (CNY) = the members' SP: every SP is backed by one CNY",
            sp_reserve,
            "==",
            members_sp,
        ),
        Identity(
            "payout_hold_matches_holds",
            "payout_hold = the net of the payout holds still held",
            payout_hold,
            "==",
            held_net,
        ),
        Identity(
            "holds_match_withdrawals",
            "the held payout holds = the net of the withdrawals requested or approved",
            held_net,
            "==",
            open_net,
        ),
        Identity(
            "escrow_matches_orders",
            "escrow = CNY + SP + redeemed EP value of the unsettled paid orders, less refunds",
            escrow,
            "==",
            escrowed,
        ),
        Identity(
            "circulating_held",
            "circulating = issued - burned = the members' EP + the treasury's",
            circulating,
            "==",
            members_ep + treasury,
        ),
        Identity(
            "non_negative",
            "no account that holds value (pool, fund, sp_reserve, escrow, payout_hold, "
            "treasury, burned) is below zero: the lowest of them",
            lowest,
            ">=",
            ZERO,
        ),
        Identity(
            "pool_covers_sales",
            "pool >= floor2(members' EP x price x (1 - sell_fee)): every holder could sell "
            "every point (R8)",
            pool,
            ">=",
            sale_value,
        ),
        Identity(
            "supply_cap",
            "EP issued <= total_supply (R2)",
            issued,
            "<=",
            params.total_supply,
        ),
    )
    return BalanceSheet(
        seq=int(seq),
        price=show_price(num, den, params.initial_price),
        pool=pool,
        dividend_fund=acct(SystemAccount.DIVIDEND_FUND, Asset.CNY),
        revenue=acct(SystemAccount.REVENUE, Asset.CNY),
        sp_reserve=sp_reserve,
        escrow=escrow,
        payout_hold=payout_hold,
        world=acct(SystemAccount.WORLD, Asset.CNY),
        issued=issued,
        burned=burned,
        circulating=circulating,
        treasury=treasury,
        members_ep=members_ep,
        members_sp=members_sp,
        sp_issuance=sp_issuance,
        members=int(mrow[0]),
        escrowed_orders=int(erow[0]),
        escrowed=escrowed,
        held_withdrawals=int(hrow[0]),
        held_net=held_net,
        open_withdrawals=int(wrow[0]),
        open_withdrawals_net=open_net,
        sale_value=sale_value,
        total_supply=params.total_supply,
        identities=identities,
    )
