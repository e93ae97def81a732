# pragma version ~=0.4.1
"""
@title MerkleAnchor
@notice Published Merkle roots of tokenmall's event batches, and the RFC 9162 (2.1.3.2)
        inclusion check for RFC 6962 trees: leaves SHA-256(0x00 || entry), interior nodes
        SHA-256(0x01 || left || right).  Only the deployer (the platform) publishes.
"""

event RootPublished:
    root: indexed(bytes32)
    treeSize: uint256
    batch: uint256

owner: public(address)
batches: public(uint256)
# root => tree size it was published for (0: never published)
treeSizeOf: public(HashMap[bytes32, uint256])


@deploy
def __init__():
    self.owner = msg.sender


@external
def publish(_root: bytes32, _treeSize: uint256):
    assert msg.sender == self.owner, "only the platform publishes roots"
    assert _treeSize > 0, "an empty batch has nothing to anchor"
    assert self.treeSizeOf[_root] == 0, "root already published"
    self.treeSizeOf[_root] = _treeSize
    self.batches += 1
    log RootPublished(root=_root, treeSize=_treeSize, batch=self.batches)


@internal
@pure
def _node(_left: bytes32, _right: bytes32) -> bytes32:
    return sha256(concat(b"\x01", _left, _right))


@external
@pure
def verify(
    _leafHash: bytes32,
    _index: uint256,
    _treeSize: uint256,
    _proof: DynArray[bytes32, 64],
    _root: bytes32,
) -> bool:
    return self._verify(_leafHash, _index, _treeSize, _proof, _root)


@internal
@pure
def _verify(
    _leafHash: bytes32,
    _index: uint256,
    _treeSize: uint256,
    _proof: DynArray[bytes32, 64],
    _root: bytes32,
) -> bool:
    if _index >= _treeSize:
        return False
    fn: uint256 = _index
    sn: uint256 = _treeSize - 1
    r: bytes32 = _leafHash
    for p: bytes32 in _proof:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            r = self._node(p, r)
            for _: uint256 in range(256):
                if fn % 2 == 1 or fn == 0:
                    break
                fn = fn >> 1
                sn = sn >> 1
        else:
            r = self._node(r, p)
        fn = fn >> 1
        sn = sn >> 1
    return sn == 0 and r == _root


@external
@view
def verifyPublished(
    _leafHash: bytes32, _index: uint256, _proof: DynArray[bytes32, 64], _root: bytes32
) -> bool:
    """Inclusion in a published root, at the tree size it was published for."""
    size: uint256 = self.treeSizeOf[_root]
    if size == 0:
        return False
    return self._verify(_leafHash, _index, size, _proof, _root)
