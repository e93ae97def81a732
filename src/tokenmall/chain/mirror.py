"""Mirror NFG provenance onto a real ERC-721 contract on an in-process EVM, and anchor roots.

Needs the optional extra ``chain`` (vyper, titanoboa); ``boa`` is imported only when a mirror
or an anchor is built, so the rest of tokenmall runs without it.  Nothing is downloaded: the
contracts are compiled by the installed vyper (``no_vvm``, so a version mismatch is an error,
not a compiler download) and run on titanoboa's py-evm, in this process.

Members become EVM addresses deterministically (:func:`member_address`).  Replaying follows
ERC-721 to the letter: the platform (the deployer) mints; a gift or a sale is a
``transferFrom`` sent *by the owner's address*, a burn a ``burn`` sent by the owner, so the
contract checks authorisation itself.  Redemptions change no owner and are not replayed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenmall.domain.nfg.collection import Collection
from tokenmall.domain.nfg.events import EventKind, ProvenanceEvent, TokenRef

__all__ = [
    "CONTRACTS",
    "ChainMirror",
    "Difference",
    "MerkleAnchor",
    "MirrorReport",
    "member_address",
]

CONTRACTS = Path(__file__).parent / "contracts"
_MAX_PROOF = 64  # DynArray[bytes32, 64] in MerkleAnchor.vy: trees of up to 2**64 leaves


def _boa() -> Any:
    try:
        import boa  # noqa: PLC0415 - the optional extra, imported only when used
    except ImportError as err:  # pragma: no cover - depends on the installation
        raise RuntimeError(
            "the chain mirror needs the optional extra: pip install 'tokenmall[chain]'"
        ) from err
    return boa


def _deployer(name: str) -> Any:
    """A contract factory compiled by the installed vyper (never a downloaded one)."""
    boa = _boa()
    source = (CONTRACTS / f"{name}.vy").read_text()
    return boa.loads_partial(source, name=name, no_vvm=True)


def member_address(member: str) -> str:
    """The member's EVM address: the last 20 bytes of SHA-256("tokenmall:member:" + id)."""
    digest = hashlib.sha256(f"tokenmall:member:{member}".encode()).digest()
    return "0x" + digest[-20:].hex()


@dataclass(frozen=True, slots=True)
class Difference:
    """A token whose owner on chain is not the expected one (None: no owner / not minted)."""

    token: TokenRef
    expected: str | None  # the member
    expected_address: str | None
    on_chain: str | None  # the address ownerOf returned


@dataclass(slots=True)
class MirrorReport:
    checked: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences


class ChainMirror:
    """One collection mirrored onto a freshly deployed TokenmallNFG contract."""

    def __init__(self, collection: Collection, *, base_uri: str = "") -> None:
        boa = _boa()
        self._boa = boa
        self.collection = collection
        self.platform = boa.env.eoa
        self.contract = _deployer("TokenmallNFG").deploy(
            collection.name[:64], collection.code[:16], collection.max_supply, base_uri[:128]
        )
        self.replayed = 0

    def replay(self, events: Iterable[ProvenanceEvent]) -> int:
        """Apply this collection's mints, transfers, sales and burns, in order; returns how many.

        A revert (the contract refusing an event the registry accepted) propagates as
        ``boa.BoaError``: the registry and the contract disagree on the rules themselves.
        """
        env = self._boa.env
        n = 0
        for e in events:
            if e.token.code != self.collection.code or e.kind is EventKind.REDEEM:
                continue
            serial = e.token.serial
            if e.kind is EventKind.MINT:
                with env.prank(self.platform):
                    self.contract.mint(_address(e.to, e), serial)
            elif e.kind in (EventKind.TRANSFER, EventKind.SALE):
                sender = _address(e.from_, e)
                with env.prank(sender):
                    self.contract.transferFrom(sender, _address(e.to, e), serial)
            else:  # burn
                with env.prank(_address(e.from_, e)):
                    self.contract.burn(serial)
            n += 1
        self.replayed += n
        return n

    def owner_on_chain(self, serial: int) -> str | None:
        """ownerOf, or None for a token that does not exist.

        Asks ``exists`` first rather than catching ownerOf's revert: titanoboa renders the
        whole contract's storage into every revert's message, which at a few hundred tokens
        costs a third of a second per call.
        """
        if not self.contract.exists(serial):
            return None
        return str(self.contract.ownerOf(serial)).lower()

    def compare(self, expected: Mapping[TokenRef, str | None]) -> MirrorReport:
        """Check every given token's ownerOf (None expected: not minted, or burned)."""
        report = MirrorReport()
        for ref, member in sorted(expected.items()):
            if ref.code != self.collection.code:
                continue
            want = None if member is None else member_address(member)
            got = self.owner_on_chain(ref.serial)
            report.checked += 1
            if got != want:
                report.differences.append(Difference(ref, member, want, got))
        return report

    def balance_of(self, member: str) -> int:
        return int(self.contract.balanceOf(member_address(member)))


class MerkleAnchor:
    """The MerkleAnchor contract: published roots and on-chain inclusion checks."""

    def __init__(self) -> None:
        boa = _boa()
        self._boa = boa
        self.platform = boa.env.eoa
        self.contract = _deployer("MerkleAnchor").deploy()

    def publish(self, root: bytes, tree_size: int) -> None:
        with self._boa.env.prank(self.platform):
            self.contract.publish(root, tree_size)

    def tree_size_of(self, root: bytes) -> int:
        return int(self.contract.treeSizeOf(root))

    def verify(
        self, leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
    ) -> bool:
        """The RFC 9162 inclusion check, computed by the contract."""
        if not _words(leaf_hash, root, *proof) or len(proof) > _MAX_PROOF:
            return False
        return bool(self.contract.verify(leaf_hash, index, tree_size, list(proof), root))

    def verify_published(
        self, leaf_hash: bytes, index: int, proof: Sequence[bytes], root: bytes
    ) -> bool:
        """Inclusion in a root the platform published, at its published tree size."""
        if not _words(leaf_hash, root, *proof) or len(proof) > _MAX_PROOF:
            return False
        return bool(self.contract.verifyPublished(leaf_hash, index, list(proof), root))


def _address(member: str | None, event: ProvenanceEvent) -> str:
    if not member:
        raise ValueError(f"event {event.seq} ({event.kind}) lacks a member to replay")
    return member_address(member)


def _words(*hashes: bytes) -> bool:
    """Every value fits a bytes32 exactly (the ABI would pad a short one, silently)."""
    return all(len(h) == 32 for h in hashes)
