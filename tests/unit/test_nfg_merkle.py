"""domain.merkle against the certificate-transparency test vectors and a naive RFC 6962 tree.

The vectors are the 8-leaf tree of the certificate-transparency reference tests (roots of
its first 1..8 leaves and audit paths), published with RFC 6962's reference code.  The
naive implementation below is the RFC's recursive definition, word for word, so the
iterative one in the package is checked against the text as well as the vectors.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenmall.domain.merkle import (
    EMPTY_ROOT,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_inclusion,
)

CT_ENTRIES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf index, tree size, audit path)
CT_PATHS = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CT_LEAVES = [leaf_hash(e) for e in CT_ENTRIES]


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def naive_mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 2.1 MTH over leaf hashes, recursively."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(naive_mth(leaves[:k]), naive_mth(leaves[k:]))


def naive_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 2.1.1 PATH(m, D[n]), recursively."""
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if m < k:
        return [*naive_path(m, leaves[:k]), naive_mth(leaves[k:])]
    return [*naive_path(m - k, leaves[k:]), naive_mth(leaves[:k])]


def test_roots_match_the_reference_vectors() -> None:
    assert root([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    for n in range(1, 9):
        assert root(CT_LEAVES[:n]).hex() == CT_ROOTS[n - 1], n


@pytest.mark.parametrize(("index", "size", "path"), CT_PATHS)
def test_paths_match_the_reference_vectors(index: int, size: int, path: list[str]) -> None:
    proof = inclusion_proof(CT_LEAVES[:size], index)
    assert [p.hex() for p in proof] == path
    expected_root = bytes.fromhex(CT_ROOTS[size - 1])
    assert verify_inclusion(CT_LEAVES[index], index, size, proof, expected_root)


def test_every_leaf_of_the_vector_trees_verifies() -> None:
    for n in range(1, 9):
        r = bytes.fromhex(CT_ROOTS[n - 1])
        for i in range(n):
            assert verify_inclusion(CT_LEAVES[i], i, n, inclusion_proof(CT_LEAVES[:n], i), r)


def test_bad_inputs() -> None:
    with pytest.raises(IndexError):
        inclusion_proof(CT_LEAVES[:3], 3)
    with pytest.raises(IndexError):
        inclusion_proof(CT_LEAVES[:3], -1)
    with pytest.raises(ValueError, match="not a 32-byte hash"):
        root([b"short"])
    r = root(CT_LEAVES)
    proof = inclusion_proof(CT_LEAVES, 2)
    assert not verify_inclusion(CT_LEAVES[2], 8, 8, proof, r)  # index outside the tree
    assert not verify_inclusion(CT_LEAVES[2], -1, 8, proof, r)
    assert not verify_inclusion(CT_LEAVES[2], 2, 8, proof[:-1], r)  # truncated
    assert not verify_inclusion(CT_LEAVES[2], 2, 8, [*proof, proof[0]], r)  # extended
    # a wrong size whose tree has another shape; the size itself is authenticated by the
    # published root (a 7-leaf tree has the same path shape for leaf 2 as the 8-leaf one)
    assert not verify_inclusion(CT_LEAVES[2], 2, 4, proof, r)
    assert not verify_inclusion(CT_LEAVES[2], 2, 3, proof, r)
    assert not verify_inclusion(CT_LEAVES[2], 3, 8, proof, r)  # wrong index
    assert not verify_inclusion(CT_LEAVES[2][:31], 2, 8, proof, r)
    assert not verify_inclusion(CT_LEAVES[2], 2, 8, [proof[0][:31], *proof[1:]], r)
    # a leaf hash is not accepted as an interior node: the entry's hash is not its leaf hash
    assert not verify_inclusion(CT_ENTRIES[2], 2, 8, proof, r)


leaf_lists = st.lists(st.binary(max_size=40).map(leaf_hash), min_size=1, max_size=70)


@settings(max_examples=150, deadline=None)
@given(leaves=leaf_lists)
def test_every_proof_of_every_leaf_verifies_and_matches_the_rfc_text(leaves: list[bytes]) -> None:
    r = root(leaves)
    assert r == naive_mth(leaves)
    for i, leaf in enumerate(leaves):
        proof = inclusion_proof(leaves, i)
        assert proof == naive_path(i, leaves)
        assert verify_inclusion(leaf, i, len(leaves), proof, r)


@settings(max_examples=150, deadline=None)
@given(leaves=leaf_lists, data=st.data())
def test_flipping_any_byte_fails(leaves: list[bytes], data: st.DataObject) -> None:
    n = len(leaves)
    i = data.draw(st.integers(0, n - 1), label="index")
    r = root(leaves)
    proof = inclusion_proof(leaves, i)
    bit = data.draw(st.integers(0, 7), label="bit")
    byte = data.draw(st.integers(0, 31), label="byte")

    def flip(h: bytes) -> bytes:
        return h[:byte] + bytes([h[byte] ^ (1 << bit)]) + h[byte + 1 :]

    assert not verify_inclusion(flip(leaves[i]), i, n, proof, r)
    assert not verify_inclusion(leaves[i], i, n, proof, flip(r))
    for j in range(len(proof)):
        forged = [*proof[:j], flip(proof[j]), *proof[j + 1 :]]
        assert not verify_inclusion(leaves[i], i, n, forged, r)
    for other in (i - 1, i + 1):
        if 0 <= other < n and leaves[other] != leaves[i]:
            assert not verify_inclusion(leaves[i], other, n, proof, r)
