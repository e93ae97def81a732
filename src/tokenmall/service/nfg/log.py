"""The token events' hash chain, its Merkle anchors and inclusion proofs.

Every mint, transfer, sale, redemption and burn is one ``nfg_events`` row, written in the
transaction that made it true.  Its entry is the event's canonical JSON
(:meth:`ProvenanceEvent.canonical`), its leaf SHA-256(0x00 || entry) and its chain hash
SHA-256(previous chain || leaf) - the ledger's event-log scheme, per tenant - so changing any
committed row breaks every later hash (:func:`verify_chain`).

An anchor publishes the RFC 6962 root of the events since the previous anchor, on request or
on the scheduler's round (:func:`anchor_due`, every ``nfg_anchor_interval`` seconds).  A
proof of one event is a self-contained JSON document (entry, leaf, index, tree size, audit
path, root) that :func:`check_proof` verifies with nothing but SHA-256: the platform's word
is not needed, only the published root.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select

from tokenmall.domain import merkle
from tokenmall.domain.nfg import ProvenanceEvent
from tokenmall.errors import InvalidParameter, NotFound
from tokenmall.money import fen_of
from tokenmall.service.ledger import GENESIS
from tokenmall.service.uow import Store, TenantTx
from tokenmall.store import schema as s

__all__ = [
    "Anchor",
    "anchor",
    "anchor_due",
    "append",
    "check_proof",
    "list_anchors",
    "many",
    "proof",
    "verify_chain",
]

_E = s.nfg_events.c
_A = s.nfg_anchors.c


@dataclass(frozen=True, slots=True)
class Anchor:
    id: int
    first_seq: int
    last_seq: int
    root: str
    created_at: float

    @property
    def tree_size(self) -> int:
        return self.last_seq - self.first_seq + 1


_LAST_SEQ = select(func.max(_E.seq)).where(_E.tenant_id == bindparam("t"))
_HEAD = (
    select(_E.seq, _E.chain_hash)
    .where(_E.tenant_id == bindparam("t"))
    .order_by(_E.seq.desc())
    .limit(1)
)


def last_seq(conn: Connection, tenant_id: int) -> int:
    return int(conn.execute(_LAST_SEQ, {"t": tenant_id}).scalar() or 0)


def append(
    conn: Connection, tenant_id: int, collection_id: int, events: Sequence[ProvenanceEvent]
) -> None:
    """Chain ``events`` (numbered from the tenant's last seq + 1) onto the tenant's log.

    The caller holds the tenant's lock, so nobody appends between its read of the head and
    its insert; the primary key (tenant, seq) would refuse a second writer anyway.
    """
    if not events:
        return
    head_row = conn.execute(_HEAD, {"t": tenant_id}).first()
    seq, head = (0, GENESIS) if head_row is None else (int(head_row.seq), head_row.chain_hash)
    rows = []
    for e in events:
        seq += 1
        if e.seq != seq:
            raise InvalidParameter(f"token event {e.seq} out of order (the log is at {seq})")
        entry = e.canonical()
        leaf = merkle.leaf_hash(entry)
        head = hashlib.sha256(bytes.fromhex(head) + leaf).hexdigest()
        rows.append(
            (
                tenant_id,
                seq,
                collection_id,
                e.token.serial,
                e.kind.value,
                e.from_,
                e.to,
                e.at,
                None if e.price is None else fen_of(e.price),
                None if e.asset is None else e.asset.value,
                e.uses_left,
                entry.decode(),
                leaf.hex(),
                head,
            )
        )
    many(conn, _INSERT, rows)


_INSERT = (
    "INSERT INTO nfg_events (tenant_id, seq, collection_id, serial, kind, from_member, "
    "to_member, at, price_fen, asset, uses_left, entry, leaf_hash, chain_hash) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def many(conn: Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """executemany on the driver (``?`` placeholders): an airdrop writes thousands of rows,
    and SQLAlchemy's per-row parameter processing would cost more than the inserts."""
    if rows:
        if conn.dialect.name != "sqlite":
            sql = sql.replace("?", "%s")
        conn.exec_driver_sql(sql, list(rows))


def verify_chain(conn: Connection, tenant_id: int) -> int | None:
    """Recompute every leaf and chain hash from the stored entries; the first seq whose row
    does not match (a changed entry or hash), or None when the whole chain holds."""
    head = GENESIS
    expected = 1
    rows = conn.execute(
        select(_E.seq, _E.entry, _E.leaf_hash, _E.chain_hash)
        .where(_E.tenant_id == tenant_id)
        .order_by(_E.seq)
    )
    for row in rows:
        leaf = merkle.leaf_hash(row.entry.encode()).hex()
        head = hashlib.sha256(bytes.fromhex(head) + bytes.fromhex(leaf)).hexdigest()
        doc = json.loads(row.entry)
        if row.seq != expected or doc.get("seq") != row.seq:
            return int(row.seq)
        if leaf != row.leaf_hash or head != row.chain_hash:
            return int(row.seq)
        expected += 1
    return None


def _anchor_of(row: Any) -> Anchor:
    return Anchor(
        int(row.id), int(row.first_seq), int(row.last_seq), str(row.root), float(row.created_at)
    )


def _leaves(conn: Connection, tenant_id: int, first: int, last: int) -> list[bytes]:
    rows = conn.execute(
        select(_E.leaf_hash)
        .where(_E.tenant_id == tenant_id, _E.seq >= first, _E.seq <= last)
        .order_by(_E.seq)
    ).scalars()
    return [bytes.fromhex(h) for h in rows]


def anchor(tx: TenantTx, *, at: float | None = None) -> Anchor:
    """Publish the root of every token event since the last anchor (one batch)."""
    conn = tx.conn
    prev = conn.execute(
        select(_A.id, _A.last_seq)
        .where(_A.tenant_id == tx.tenant_id)
        .order_by(_A.id.desc())
        .limit(1)
    ).first()
    first = 1 if prev is None else int(prev.last_seq) + 1
    last = last_seq(conn, tx.tenant_id)
    if last < first:
        raise InvalidParameter("no token event since the last anchor: nothing to publish")
    root = merkle.root(_leaves(conn, tx.tenant_id, first, last)).hex()
    out = Anchor(1 if prev is None else int(prev.id) + 1, first, last, root, at or time.time())
    conn.execute(
        insert(s.nfg_anchors).values(
            tenant_id=tx.tenant_id,
            id=out.id,
            first_seq=out.first_seq,
            last_seq=out.last_seq,
            root=out.root,
            created_at=out.created_at,
        )
    )
    return out


_LAST_ANCHOR = (
    select(_A.last_seq, _A.created_at)
    .where(_A.tenant_id == bindparam("t"))
    .order_by(_A.id.desc())
    .limit(1)
)


def _due(conn: Connection, tenant_id: int, now: float, every: float) -> bool:
    """New events since the last anchor, and ``every`` seconds passed since it (the first
    anchor of a tenant is due as soon as it has an event)."""
    prev = conn.execute(_LAST_ANCHOR, {"t": tenant_id}).first()
    covered = 0 if prev is None else int(prev.last_seq)
    if last_seq(conn, tenant_id) <= covered:
        return False
    return prev is None or now >= float(prev.created_at) + every


def anchor_due(store: Store, now: float, *, every: float, tenant_id: int | None = None) -> int:
    """The scheduler's job: anchor each tenant whose new events are due (:func:`_due`);
    how many anchors it published.  ``every`` <= 0: never.

    Safe from several schedulers at once: the check is repeated under the tenant's lock, where
    a second worker finds the first one's anchor (no new events, or not due for ``every``
    seconds), and :func:`anchor` starts each batch after the previous one's last event, so
    batches never repeat or overlap (the key (tenant, id) would refuse a duplicate anyway).
    """
    if every <= 0:
        return 0
    with store.read() as conn:
        q = select(s.tenants.c.id).order_by(s.tenants.c.id)
        if tenant_id is not None:
            q = q.where(s.tenants.c.id == tenant_id)
        due = [int(t) for t in conn.execute(q).scalars() if _due(conn, int(t), now, every)]
    done = 0
    for tid in due:
        with store.tenant_tx(tid) as tx:
            if _due(tx.conn, tid, now, every):
                anchor(tx, at=now)
                done += 1
    return done


def list_anchors(conn: Connection, tenant_id: int) -> list[Anchor]:
    rows = conn.execute(
        select(s.nfg_anchors).where(_A.tenant_id == tenant_id).order_by(_A.id)
    ).all()
    return [_anchor_of(r) for r in rows]


def proof(conn: Connection, tenant_id: int, seq: int) -> dict[str, Any]:
    """The inclusion proof of token event ``seq`` in the anchor that covers it."""
    row = conn.execute(
        select(_E.entry, _E.leaf_hash).where(_E.tenant_id == tenant_id, _E.seq == seq)
    ).first()
    if row is None:
        raise NotFound(f"no token event {seq}")
    a = conn.execute(
        select(s.nfg_anchors).where(
            _A.tenant_id == tenant_id, _A.first_seq <= seq, _A.last_seq >= seq
        )
    ).first()
    if a is None:
        raise NotFound(f"token event {seq} is not anchored yet: publish an anchor first")
    got = _anchor_of(a)
    leaves = _leaves(conn, tenant_id, got.first_seq, got.last_seq)
    path = merkle.inclusion_proof(leaves, seq - got.first_seq)
    return {
        "seq": seq,
        "entry": row.entry,
        "leaf_hash": row.leaf_hash,
        "anchor": got.id,
        "index": seq - got.first_seq,
        "tree_size": got.tree_size,
        "proof": [h.hex() for h in path],
        "root": got.root,
    }


def check_proof(doc: Mapping[str, Any]) -> bool:
    """Offline: the entry hashes to the leaf, and the path leads from it to the root.

    Raises InvalidParameter for a document that is not a proof at all (missing fields, bad
    hex); a well-formed proof that does not verify is simply False.
    """
    try:
        entry = str(doc["entry"]).encode()
        leaf = bytes.fromhex(str(doc["leaf_hash"]))
        root = bytes.fromhex(str(doc["root"]))
        path = [bytes.fromhex(str(h)) for h in doc["proof"]]
        index, size = doc["index"], doc["tree_size"]
    except (KeyError, TypeError, ValueError) as err:
        raise InvalidParameter(f"not an NFG inclusion proof: {err}") from None
    if not isinstance(index, int) or not isinstance(size, int) or isinstance(index, bool):
        raise InvalidParameter("index and tree_size must be integers")
    if merkle.leaf_hash(entry) != leaf:
        return False
    return merkle.verify_inclusion(leaf, index, size, path, root)
