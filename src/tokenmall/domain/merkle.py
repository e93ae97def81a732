"""RFC 6962 Merkle tree hashes, inclusion proofs and their verification (RFC 9162 2.1.3.2).

The leaves are *leaf hashes* - SHA-256(0x00 || entry), exactly what the ledger stores per
event-log row and what :func:`leaf_hash` computes - so a batch of stored rows is anchored
without re-reading their entries.  Interior nodes are SHA-256(0x01 || left || right); the two
prefixes keep a leaf from ever being passed off as an interior node (second-preimage attack).

The tree over n leaves splits at the largest power of two below n (RFC 6962 2.1).  Building it
level by level, pairing neighbours and carrying an odd last node up unchanged, gives the same
tree: the left part of every split is complete, so only the rightmost node of a level can be
unpaired.  That form is iterative (no recursion depth limit) and O(n).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "verify_inclusion",
]

HASH_SIZE = 32
# MTH({}) = SHA-256 of the empty string (RFC 6962 2.1)
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    """SHA-256(0x00 || entry): the hash of one leaf entry."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _check_hashes(leaves: Sequence[bytes]) -> None:
    for i, h in enumerate(leaves):
        if len(h) != HASH_SIZE:
            raise ValueError(f"leaf {i} is {len(h)} bytes, not a {HASH_SIZE}-byte hash")


def _up(level: Sequence[bytes]) -> list[bytes]:
    """The next level: neighbours paired, an odd last node carried up as it is."""
    nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        nxt.append(level[-1])
    return nxt


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH over the leaf hashes (RFC 6962 2.1); the empty tree's root is SHA-256("")."""
    _check_hashes(leaves)
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    while len(level) > 1:
        level = _up(level)
    return level[0]


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, leaves) of RFC 6962 2.1.1: the sibling hashes from the leaf up to the root."""
    _check_hashes(leaves)
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf index {index} is outside a tree of {len(leaves)} leaves")
    proof: list[bytes] = []
    level = list(leaves)
    i = index
    while len(level) > 1:
        sibling = i ^ 1
        # an unpaired last node has no sibling at this level: it is carried up unchanged
        if sibling < len(level):
            proof.append(level[sibling])
        level = _up(level)
        i >>= 1
    return proof


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """True when ``proof`` shows the leaf at ``index`` is in the tree of ``tree_size`` leaves.

    The algorithm of RFC 9162 2.1.3.2, step by step; any malformed input is simply False.
    """
    if not 0 <= index < tree_size:
        return False
    if len(leaf_hash) != HASH_SIZE or len(root) != HASH_SIZE:
        return False
    fn, sn, r = index, tree_size - 1, leaf_hash
    for p in proof:
        if len(p) != HASH_SIZE or sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # the right edge of the tree: climb past levels where this node was unpaired
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root
