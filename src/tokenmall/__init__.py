"""tokenmall: an exact, auditable engine for incentive commerce.

The public surface is what this module exports; everything else is internal and may change.
The store and service names load lazily, so importing the pure domain never imports a
database driver.
"""

from typing import TYPE_CHECKING, Any

from tokenmall.domain.economy import (
    BuyPoints,
    CloseDay,
    Command,
    Economy,
    Exchange,
    Join,
    Pay,
    PayoutResult,
    Purchase,
    Redeem,
    Refund,
    Sell,
    Settle,
    Withdraw,
)
from tokenmall.domain.params import TenantParams
from tokenmall.errors import (
    IdempotencyConflict,
    InsufficientBalance,
    InvalidCommand,
    InvalidParameter,
    InvariantViolation,
    NotFound,
    SupplyExhausted,
    TokenmallError,
    UnknownMember,
)

if TYPE_CHECKING:
    from tokenmall.service.ledger import Ledger, Outcome
    from tokenmall.store.db import create_db_engine, migrate

_LAZY = {
    "Ledger": "tokenmall.service.ledger",
    "Outcome": "tokenmall.service.ledger",
    "create_db_engine": "tokenmall.store.db",
    "migrate": "tokenmall.store.db",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tokenmall' has no attribute {name!r}")
    import importlib  # noqa: PLC0415 - the point is to import on first use

    return getattr(importlib.import_module(module), name)


__all__ = [
    "BuyPoints",
    "CloseDay",
    "Command",
    "Economy",
    "Exchange",
    "IdempotencyConflict",
    "InsufficientBalance",
    "InvalidCommand",
    "InvalidParameter",
    "InvariantViolation",
    "Join",
    "Ledger",
    "NotFound",
    "Outcome",
    "Pay",
    "PayoutResult",
    "Purchase",
    "Redeem",
    "Refund",
    "Sell",
    "Settle",
    "SupplyExhausted",
    "TenantParams",
    "TokenmallError",
    "UnknownMember",
    "Withdraw",
    "create_db_engine",
    "migrate",
]
