"""Errors of the mall services, extending the tree of :mod:`tokenmall.errors`.

TokenmallError
├── InvalidCommand
│   └── InvalidCursor       a pagination cursor that this service did not hand out
├── Forbidden               the caller may not do this to a record it may see (HTTP 403)
└── Conflict                a valid request that the current state does not allow (HTTP 409)
    ├── AlreadyExists       a code or key that must be unique is taken
    ├── OffShelf            an order of a product taken off the shelf
    └── OutOfStock          a stock change would take a SKU below zero
"""

from __future__ import annotations

from tokenmall.errors import InvalidCommand, TokenmallError

__all__ = ["AlreadyExists", "Conflict", "Forbidden", "InvalidCursor", "OffShelf", "OutOfStock"]


class InvalidCursor(InvalidCommand):
    code = "invalid_cursor"


class Forbidden(TokenmallError):
    code = "forbidden"


class Conflict(TokenmallError):
    code = "conflict"


class AlreadyExists(Conflict):
    code = "already_exists"


class OutOfStock(Conflict):
    code = "out_of_stock"


class OffShelf(Conflict):
    """The product is off the shelf: its SKUs cannot be ordered until it is put back."""

    code = "off_shelf"
