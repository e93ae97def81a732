"""Replay a collection's stored history onto the ERC-721 contract on the in-process EVM and
check every token's ``ownerOf`` against the database (``tokenmall nfg mirror``).

Two independent records must agree: the token rows (who owns what now) and the hash-chained
events (everything that happened).  The contract is fed only the events and enforces
ERC-721 itself, so a token row changed behind the service's back shows up as a difference,
an event changed behind its back breaks the chain (:func:`log.verify_chain`) or makes the
contract refuse the replay.  Needs the ``chain`` extra.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, select

from tokenmall.chain import ChainMirror, Difference, MerkleAnchor
from tokenmall.domain.economy import Asset
from tokenmall.domain.nfg import EventKind, ProvenanceEvent, TokenRef
from tokenmall.money import cny_of_fen
from tokenmall.service.nfg import log
from tokenmall.service.nfg.collections import get_collection
from tokenmall.store import schema as s

__all__ = ["MirrorResult", "anchor_on_chain", "collection_history", "mirror_collection"]

_E = s.nfg_events.c
_T = s.nfg_tokens.c
_C = s.nfg_collections.c


@dataclass(slots=True)
class MirrorResult:
    code: str
    replayed: int = 0
    checked: int = 0
    differences: list[Difference] = field(default_factory=list)
    chain_break: int | None = None  # the first token event whose hashes do not hold
    refused: str | None = None  # the contract refused an event of the history

    @property
    def ok(self) -> bool:
        return not self.differences and self.chain_break is None and self.refused is None


def collection_history(
    conn: Connection, tenant_id: int, code: str
) -> tuple[list[ProvenanceEvent], dict[TokenRef, str | None]]:
    """The collection's events in order, and each token's owner by the token rows (None:
    burned)."""
    info = get_collection(conn, tenant_id, code)
    cid = conn.execute(select(_C.id).where(_C.tenant_id == tenant_id, _C.code == code)).scalar_one()
    rows = conn.execute(
        select(s.nfg_events)
        .where(_E.tenant_id == tenant_id, _E.collection_id == cid)
        .order_by(_E.seq)
    )
    events = [
        ProvenanceEvent(
            seq=int(r.seq),
            kind=EventKind(r.kind),
            token=TokenRef(info.collection.code, r.serial),
            from_=r.from_member,
            to=r.to_member,
            at=r.at,
            price=None if r.price_fen is None else cny_of_fen(r.price_fen),
            asset=None if r.asset is None else Asset(r.asset),
            uses_left=r.uses_left,
        )
        for r in rows
    ]
    owners = {
        TokenRef(code, r.serial): (None if r.burned_at is not None else r.owner)
        for r in conn.execute(
            select(_T.serial, _T.owner, _T.burned_at).where(
                _T.tenant_id == tenant_id, _T.collection_id == cid
            )
        )
    }
    return events, owners


def mirror_collection(conn: Connection, tenant_id: int, code: str) -> MirrorResult:
    info = get_collection(conn, tenant_id, code)
    events, owners = collection_history(conn, tenant_id, code)
    out = MirrorResult(code, chain_break=log.verify_chain(conn, tenant_id))
    chain = ChainMirror(info.collection)
    try:
        out.replayed = chain.replay(events)
    except Exception as err:  # noqa: BLE001 - boa's revert types are the extra's own
        out.refused = " ".join(str(err).split())[:300]
        return out
    report = chain.compare(owners)
    out.checked = report.checked
    out.differences = report.differences
    return out


def anchor_on_chain(conn: Connection, tenant_id: int, seq: int) -> tuple[bool, bool]:
    """Publish the root of the anchor covering ``seq`` on the MerkleAnchor contract, then
    verify the event's proof there: (the true proof verifies, a forged one does not)."""
    doc = log.proof(conn, tenant_id, seq)
    anchor = MerkleAnchor()
    root = bytes.fromhex(doc["root"])
    anchor.publish(root, doc["tree_size"])
    leaf = bytes.fromhex(doc["leaf_hash"])
    path = [bytes.fromhex(h) for h in doc["proof"]]
    good = anchor.verify_published(leaf, doc["index"], path, root)
    forged_leaf = bytes([leaf[0] ^ 1]) + leaf[1:]
    forged = anchor.verify_published(forged_leaf, doc["index"], path, root)
    return good, forged
