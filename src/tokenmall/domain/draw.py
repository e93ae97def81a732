"""The verifiable draw of group buys (the rules, docs/RULES.md section 4), as pure functions.

Why this shape: the operator commits to a secret seed before anyone joins (publishing only its
sha256), and reveals it at the draw.  Every candidate's ticket is a hash of the seed and the
candidate, so anyone holding the public record (commitment, seed, candidates, k, winners) can
recompute the winners without trusting the engine; the operator cannot choose the seed after
seeing the candidates, and there is no override.

Only :func:`new_seed` touches a source of randomness; everything else is deterministic.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from tokenmall.errors import InvalidCommand, TokenmallError

__all__ = [
    "SEED_BYTES",
    "DrawMismatch",
    "commitment",
    "new_seed",
    "public_record",
    "ticket",
    "verify",
    "winners",
]

SEED_BYTES = 32


class DrawMismatch(TokenmallError):
    """A published draw record does not verify: the commitment or the winners are wrong."""

    code = "draw_mismatch"


def new_seed() -> bytes:
    """32 fresh bytes from the operating system's CSPRNG, to be kept secret until the draw."""
    return secrets.token_bytes(SEED_BYTES)


def commitment(seed: bytes) -> str:
    """What is published before the draw: sha256(seed) in lowercase hex."""
    return hashlib.sha256(seed).hexdigest()


def ticket(seed: bytes, candidate: str) -> int:
    """A candidate's ticket: sha256(seed + b":" + candidate) read as a big-endian integer."""
    digest = hashlib.sha256(seed + b":" + candidate.encode("utf-8")).digest()
    return int.from_bytes(digest, "big")


def winners(seed: bytes, candidates: Sequence[str], k: int) -> list[str]:
    """The ``k`` candidates with the smallest tickets, in ascending ticket order.

    ``k`` larger than the list gives every candidate.  A duplicate candidate is refused: it
    would have the same ticket twice and could win two places.
    """
    if k < 0:
        raise InvalidCommand(f"the number of winners must not be negative, got {k}")
    seen: set[str] = set()
    for c in candidates:
        if c in seen:
            raise InvalidCommand(f"duplicate draw candidate: {c!r}")
        seen.add(c)
    ranked = sorted(candidates, key=lambda c: ticket(seed, c))
    return ranked[:k]


def public_record(seed: bytes, candidates: Sequence[str], k: int) -> dict[str, Any]:
    """The JSON-ready record anyone can check with :func:`verify` (seed revealed as hex)."""
    return {
        "commitment": commitment(seed),
        "seed": seed.hex(),
        "candidates": list(candidates),
        "k": k,
        "winners": winners(seed, candidates, k),
    }


def verify(record: Mapping[str, Any]) -> list[str]:
    """Recompute a published draw; return its winners or raise :class:`DrawMismatch`.

    ``record`` is JSON-like: ``commitment`` (hex), ``seed`` (hex), ``candidates`` (strings),
    ``k`` (int) and ``winners`` (strings, in ascending ticket order).
    """
    for key in ("commitment", "seed", "candidates", "k", "winners"):
        if key not in record:
            raise DrawMismatch(f"draw record has no {key!r}")
    try:
        seed = bytes.fromhex(str(record["seed"]))
    except ValueError:
        raise DrawMismatch("draw record's seed is not hexadecimal") from None
    k = record["k"]
    if not isinstance(k, int) or isinstance(k, bool):
        raise DrawMismatch(f"draw record's k must be an integer, got {k!r}")
    candidates = [str(c) for c in record["candidates"]]
    if commitment(seed) != str(record["commitment"]).lower():
        raise DrawMismatch(
            "the revealed seed does not match the published commitment: "
            f"sha256(seed) = {commitment(seed)}, published {record['commitment']}"
        )
    try:
        expected = winners(seed, candidates, k)
    except InvalidCommand as exc:
        raise DrawMismatch(f"draw record is not a valid draw: {exc}") from None
    published = [str(w) for w in record["winners"]]
    if published != expected:
        raise DrawMismatch(
            f"the published winners {published} are not the draw's winners {expected}"
        )
    return expected
