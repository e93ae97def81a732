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

One module per rule group, so that each group reads in one file while every movement of
value still goes through the one ``_move`` of ``core`` (the state, the price, the balanced
moves, the exit heap).  Each group is a subclass of ``core``'s class: ``purchases`` (R1, R2),
``trading`` (R3-R6), ``dayclose`` (R7, R9; it sells as R3 does), ``orders`` (escrow and
settlement, R4, which reward as a purchase does; refunds, R11) and ``wallet`` (withdrawals,
model rewards, token sales); ``engine``'s :class:`Economy` puts them together and applies a
command.  Import from this package, not from its modules.
"""

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
from tokenmall.domain.economy.core import EconomyState, MemberSource
from tokenmall.domain.economy.engine import Economy

__all__ = [
    "NON_NEGATIVE",
    "Asset",
    "BuyPoints",
    "CloseDay",
    "Command",
    "Economy",
    "EconomyState",
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
