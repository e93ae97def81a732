"""The chain side of NFG: an ERC-721 mirror and a Merkle anchor on an in-process EVM.

Optional (``pip install 'tokenmall[chain]'``): importing this package needs nothing extra;
building a :class:`~tokenmall.chain.mirror.ChainMirror` or
:class:`~tokenmall.chain.mirror.MerkleAnchor` imports titanoboa.
"""

from tokenmall.chain.mirror import (
    CONTRACTS,
    ChainMirror,
    Difference,
    MerkleAnchor,
    MirrorReport,
    member_address,
)

__all__ = [
    "CONTRACTS",
    "ChainMirror",
    "Difference",
    "MerkleAnchor",
    "MirrorReport",
    "member_address",
]
