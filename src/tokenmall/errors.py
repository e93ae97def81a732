"""Every error tokenmall raises on purpose.

TokenmallError
├── InvalidCommand          bad input: nothing changed (4xx, CLI exit 2, scenario index)
│   ├── UnknownMember
│   ├── InsufficientBalance
│   ├── SupplyExhausted
│   └── InvalidParameter
├── IdempotencyConflict     a key was replayed with different content (TigerBeetle's
│                           ``exists_with_different_*``)
├── NotFound                a tenant, order or record that does not exist (or is another tenant's)
└── InvariantViolation      a bug: the engine refused to commit a state that breaks a rule
"""

from __future__ import annotations

__all__ = [
    "IdempotencyConflict",
    "InsufficientBalance",
    "InvalidCommand",
    "InvalidParameter",
    "InvariantViolation",
    "NotFound",
    "SupplyExhausted",
    "TokenmallError",
    "UnknownMember",
]


class TokenmallError(Exception):
    """Base of every deliberate tokenmall error; ``code`` is stable for machines."""

    code = "error"


class InvalidCommand(TokenmallError):
    code = "invalid_command"


class UnknownMember(InvalidCommand):
    code = "unknown_member"


class InsufficientBalance(InvalidCommand):
    code = "insufficient_balance"


class SupplyExhausted(InvalidCommand):
    code = "supply_exhausted"


class InvalidParameter(InvalidCommand):
    code = "invalid_parameter"


class IdempotencyConflict(TokenmallError):
    code = "idempotency_conflict"


class NotFound(TokenmallError):
    code = "not_found"


class InvariantViolation(TokenmallError):
    code = "invariant_violation"
