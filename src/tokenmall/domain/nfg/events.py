"""Provenance: every mint, transfer, sale, redemption and burn as an append-only event.

Each event serialises to canonical bytes (JSON, keys sorted, no spaces, ASCII, amounts as
decimal strings, the timestamp as Python's shortest round-trip ``repr``), so the same history
always gives the same Merkle leaves, on any machine, in any later version.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

from tokenmall.domain import merkle
from tokenmall.domain.economy import Asset

__all__ = ["EventKind", "ProvenanceEvent", "TokenRef", "events_root"]


class TokenRef(NamedTuple):
    """A token: its collection's code and its serial number (1..max_supply)."""

    code: str
    serial: int

    def __str__(self) -> str:
        return f"{self.code}#{self.serial}"


class EventKind(StrEnum):
    MINT = "mint"
    TRANSFER = "transfer"  # a gift, or any free change of owner
    SALE = "sale"  # a change of owner settled on the exchange
    REDEEM = "redeem"  # one use of a right (the token stays)
    BURN = "burn"


@dataclass(frozen=True, slots=True)
class ProvenanceEvent:
    """One change to one token; ``seq`` numbers the registry's events from 1."""

    seq: int
    kind: EventKind
    token: TokenRef
    from_: str | None  # None for a mint
    to: str | None  # None for a burn; the owner for a redemption
    at: float
    price: Decimal | None = None  # mints that were paid for, and sales
    asset: Asset | None = None
    uses_left: int | None = None  # rights: uses left after the event

    def canonical(self) -> bytes:
        """The event's canonical bytes: the entry of its Merkle leaf."""
        doc = {
            "asset": None if self.asset is None else self.asset.value,
            "at": repr(float(self.at)),
            "code": self.token.code,
            "from": self.from_,
            "kind": self.kind.value,
            "price": None if self.price is None else str(self.price),
            "seq": self.seq,
            "serial": self.token.serial,
            "to": self.to,
            "uses_left": self.uses_left,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()

    @property
    def leaf(self) -> bytes:
        """SHA-256(0x00 || canonical bytes), as the ledger hashes its event-log rows."""
        return merkle.leaf_hash(self.canonical())


def events_root(events: Sequence[ProvenanceEvent]) -> bytes:
    """The Merkle root of a batch of events, in their order."""
    return merkle.root([e.leaf for e in events])
