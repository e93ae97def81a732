"""One command's view of a collection: the stored state it touches, as a domain registry.

The NFG rules live in :mod:`tokenmall.domain.nfg` and run on an in-memory
:class:`~tokenmall.domain.nfg.Registry`.  A :class:`Session` rebuilds, inside the unit of
work and under the tenant's lock, only what one command reads (the collection with its
counts, the tokens it names, their owners' operators, verified names, the sender's transfers
today, the listings involved), lets the domain decide, then writes back what changed and
chains the new events onto the tenant's log.  The lock makes every check and its write one
step: two workers can never both pass a check on the same token.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, select, update

from tokenmall.domain.nfg import (
    EventKind,
    Exchange,
    Listing,
    ProvenanceEvent,
    Registry,
    TokenRef,
)
from tokenmall.errors import NotFound
from tokenmall.money import fen_of
from tokenmall.service.nfg import log
from tokenmall.service.nfg.rows import collection_of, listing_of, token_of, token_values
from tokenmall.service.uow import TenantTx
from tokenmall.store import schema as s

__all__ = ["Session", "now"]

_C = s.nfg_collections.c
_T = s.nfg_tokens.c
_L = s.nfg_listings.c
_E = s.nfg_events.c


_INSERT_ROW = (
    "INSERT INTO nfg_tokens (tenant_id, collection_id, serial, owner, approved, acquired_at, "
    "minted_at, uses_left, last_price_fen, item_no, order_ref, revoked, purchase_key) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


# The statements of every command, built once (a buy runs each of them; building a statement
# costs more than SQLite takes to answer it).
_T_C = (_T.tenant_id == bindparam("t")) & (_T.collection_id == bindparam("c"))
_COLLECTION = select(s.nfg_collections).where(
    _C.tenant_id == bindparam("t"), _C.code == bindparam("code")
)
_TOKEN = select(s.nfg_tokens).where(_T_C, _T.serial == bindparam("serial"))
_O = s.nfg_operators.c
_OPERATORS = select(_O.operator).where(
    _O.tenant_id == bindparam("t"),
    _O.collection_id == bindparam("c"),
    _O.owner == bindparam("owner"),
)
_L_C = (_L.tenant_id == bindparam("t")) & (_L.collection_id == bindparam("c"))
_LISTING = select(s.nfg_listings).where(_L_C, _L.id == bindparam("id"))
_OPEN_LISTING = select(s.nfg_listings).where(
    _L_C, _L.serial == bindparam("serial"), _L.state == "open"
)
_LAST_LISTING = select(func.max(_L.id)).where(_L.tenant_id == bindparam("t"))
_CLOSE_LISTING = (
    update(s.nfg_listings)
    .where(_L.tenant_id == bindparam("t"), _L.id == bindparam("lid"))
    .values(state=bindparam("state"), closed_at=bindparam("closed_at"), buyer=bindparam("buyer"))
)
_UPDATE_TOKEN = (
    update(s.nfg_tokens)
    .where(_T_C, _T.serial == bindparam("sn"))
    .values(
        owner=bindparam("owner"),
        approved=bindparam("approved"),
        acquired_at=bindparam("acquired_at"),
        uses_left=bindparam("uses_left"),
        last_price_fen=bindparam("last_price_fen"),
    )
)


def now(at: float | None) -> float:
    return time.time() if at is None else at


class Session:
    """The registry and exchange of one collection, as far as one command needs them."""

    def __init__(self, tx: TenantTx, code: str) -> None:
        self.tx = tx
        self.tenant_id = tx.tenant_id
        row = tx.conn.execute(_COLLECTION, {"t": tx.tenant_id, "code": code}).first()
        if row is None:
            raise NotFound(f"no NFG collection {code!r}")
        self.row = row
        self.collection_id: int = row.id
        self.code = code
        self._key = {"t": self.tenant_id, "c": self.collection_id}
        self.collection = collection_of(row)
        self.registry = Registry()
        self.registry.restore_collection(self.collection, minted=row.minted, burned=row.burned)
        self.registry.restore_seq(log.last_seq(tx.conn, tx.tenant_id))
        self.exchange = Exchange(self.registry)
        self._stored: set[int] = set()  # serials whose row exists (alive or burned)
        self._alive: set[int] = set()  # of those, loaded alive
        self._owners: set[str] = set()
        self._named: set[str] = set()
        self._listings: dict[int, Listing] = {}
        self._flushed = 0

    # -- loading ------------------------------------------------------------------------

    def token(self, serial: int) -> TokenRef:
        """Load the token (its owner's operators and verified name too); a missing or burned
        one stays absent, so the domain raises its ERC-721 error."""
        ref = TokenRef(self.code, serial)
        if serial in self._stored or serial in self._alive:
            return ref
        row = self.tx.conn.execute(_TOKEN, {**self._key, "serial": serial}).first()
        if row is not None:
            self._stored.add(serial)
            if row.burned_at is None:
                self.registry.restore_token(token_of(row, self.code))
                self._alive.add(serial)
                self.operators_of(row.owner)
                self.names(row.owner)
        return ref

    def operators_of(self, owner: str) -> None:
        if owner in self._owners:
            return
        self._owners.add(owner)
        rows = self.tx.conn.execute(_OPERATORS, {**self._key, "owner": owner}).scalars()
        for op in rows:
            self.registry.restore_operator(self.code, owner, op)

    def names(self, *members: str | None) -> None:
        """Load which of ``members`` verified their real names (when the collection asks)."""
        want = {m for m in members if m and m not in self._named}
        if not want or not self.collection.real_name_only:
            return
        self._named |= want
        r = s.nfg_real_names.c
        rows = self.tx.conn.execute(
            select(r.member).where(r.tenant_id == self.tenant_id, r.member.in_(sorted(want)))
        ).scalars()
        for m in rows:
            self.registry.verify_real_name(m)

    def sent_today(self, member: str, at: float) -> None:
        """Load how many tokens ``member`` sent today (for a daily transfer limit)."""
        if self.collection.daily_transfer_limit is None:
            return
        start = self.registry.day_start(at)
        n = self.tx.conn.execute(
            select(func.count()).where(
                _E.tenant_id == self.tenant_id,
                _E.collection_id == self.collection_id,
                _E.from_member == member,
                _E.kind.in_((EventKind.TRANSFER.value, EventKind.SALE.value)),
                _E.at >= start,
                _E.at < start + 86_400,
            )
        ).scalar_one()
        self.registry.restore_sent(self.code, member, at, int(n))

    def listing(self, listing_id: int) -> Listing:
        """Load a listing of this collection (and the token it is for)."""
        if listing_id in self._listings:
            return self._listings[listing_id]
        row = self.tx.conn.execute(_LISTING, {**self._key, "id": listing_id}).first()
        if row is None:
            raise NotFound(f"no listing {listing_id} in {self.code}")
        return self._restore_listing(row)

    def open_listing(self, serial: int) -> Listing | None:
        row = self.tx.conn.execute(_OPEN_LISTING, {**self._key, "serial": serial}).first()
        return None if row is None else self._restore_listing(row)

    def next_listing_id(self) -> None:
        last = self.tx.conn.execute(_LAST_LISTING, {"t": self.tenant_id}).scalar()
        self.exchange.restore_last_id(int(last or 0))

    def _restore_listing(self, row: Any) -> Listing:
        listing = listing_of(row, self.code)
        self.exchange.restore(listing)
        self._listings[listing.id] = listing
        self.token(listing.token.serial)
        return listing

    # -- writing back -------------------------------------------------------------------

    def save_listing(self, listing: Listing, *, buyer: str | None = None) -> None:
        conn = self.tx.conn
        if listing.id in self._listings:
            conn.execute(
                _CLOSE_LISTING,
                {
                    "t": self.tenant_id,
                    "lid": listing.id,
                    "state": listing.state.value,
                    "closed_at": listing.closed_at,
                    "buyer": buyer,
                },
            )
        else:
            conn.execute(
                insert(s.nfg_listings).values(
                    tenant_id=self.tenant_id,
                    id=listing.id,
                    collection_id=self.collection_id,
                    serial=listing.token.serial,
                    seller=listing.seller,
                    lister=listing.lister,
                    price_fen=fen_of(listing.price),
                    uses_left=listing.uses_left,
                    listed_at=listing.listed_at,
                    state=listing.state.value,
                    closed_at=listing.closed_at,
                )
            )
        self._listings[listing.id] = listing

    def flush(self, *, order_ref: str | None = None, purchase_key: str | None = None) -> None:
        """Write the tokens the domain changed, the collection's counts and the new events."""
        conn = self.tx.conn
        reg = self.registry
        events = reg.events[self._flushed :]
        if not events:
            return
        self._flushed += len(events)
        last: dict[int, ProvenanceEvent] = {e.token.serial: e for e in events}
        key = and_(_T.tenant_id == self.tenant_id, _T.collection_id == self.collection_id)
        new_rows: list[tuple[Any, ...]] = []
        for serial in sorted(last):
            ref = TokenRef(self.code, serial)
            if reg.exists(ref):
                tok = reg.token(ref)
                if serial in self._stored:
                    conn.execute(_UPDATE_TOKEN, {**self._key, "sn": serial, **token_values(tok)})
                else:  # minted here: inserted in one statement below (an airdrop's hundreds)
                    new_rows.append(
                        (
                            self.tenant_id,
                            self.collection_id,
                            serial,
                            tok.owner,
                            tok.approved,
                            tok.acquired_at,
                            tok.minted_at,
                            tok.uses_left,
                            fen_of(tok.last_price),
                            tok.item_no,
                            order_ref,
                            False,
                            purchase_key,
                        )
                    )
                    self._stored.add(serial)
                self._alive.add(serial)
            elif last[serial].kind is EventKind.BURN:
                conn.execute(
                    update(s.nfg_tokens)
                    .where(key, _T.serial == serial)
                    .values(burned_at=last[serial].at, approved=None)
                )
                self._alive.discard(serial)
        log.many(conn, _INSERT_ROW, new_rows)
        conn.execute(
            update(s.nfg_collections)
            .where(_C.tenant_id == self.tenant_id, _C.id == self.collection_id)
            .values(
                minted=reg.minted(self.code),
                burned=reg.minted(self.code) - reg.total_supply(self.code),
            )
        )
        log.append(conn, self.tenant_id, self.collection_id, events)
