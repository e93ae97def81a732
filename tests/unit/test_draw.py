"""The verifiable draw: tickets, winners, and a third party's check of a published record."""

from __future__ import annotations

import hashlib
import json

import pytest

from tokenmall.domain import draw
from tokenmall.errors import InvalidCommand

SEED = bytes(range(32))
CANDIDATES = [f"m{i}" for i in range(10)]


def test_commitment_is_sha256_hex_of_the_seed() -> None:
    assert draw.commitment(SEED) == hashlib.sha256(SEED).hexdigest()


def test_ticket_is_sha256_of_seed_colon_candidate_big_endian() -> None:
    expected = int.from_bytes(hashlib.sha256(SEED + b":" + "张三".encode()).digest(), "big")
    assert draw.ticket(SEED, "张三") == expected


def test_winners_are_the_k_smallest_tickets_in_ascending_order() -> None:
    ranked = sorted(CANDIDATES, key=lambda c: draw.ticket(SEED, c))
    assert draw.winners(SEED, CANDIDATES, 3) == ranked[:3]
    tickets = [draw.ticket(SEED, c) for c in draw.winners(SEED, CANDIDATES, 3)]
    assert tickets == sorted(tickets)


def test_winners_do_not_depend_on_the_order_of_candidates() -> None:
    assert draw.winners(SEED, CANDIDATES[::-1], 4) == draw.winners(SEED, CANDIDATES, 4)


def test_k_larger_than_the_list_gives_everyone_and_zero_gives_no_one() -> None:
    assert sorted(draw.winners(SEED, CANDIDATES, 99)) == sorted(CANDIDATES)
    assert draw.winners(SEED, CANDIDATES, 0) == []
    assert draw.winners(SEED, [], 3) == []


def test_duplicate_candidates_and_negative_k_are_refused() -> None:
    with pytest.raises(InvalidCommand, match="duplicate draw candidate: 'm1'"):
        draw.winners(SEED, ["m1", "m2", "m1"], 1)
    with pytest.raises(InvalidCommand, match="negative"):
        draw.winners(SEED, CANDIDATES, -1)


def test_new_seed_is_32_random_bytes() -> None:
    a, b = draw.new_seed(), draw.new_seed()
    assert len(a) == 32
    assert a != b


def test_a_third_party_with_only_the_public_record_gets_the_same_winners() -> None:
    record = draw.public_record(SEED, CANDIDATES, 3)
    published = json.loads(json.dumps(record))  # all it has is the JSON

    # recomputed from the text of the rules alone, without tokenmall
    seed = bytes.fromhex(published["seed"])
    assert hashlib.sha256(seed).hexdigest() == published["commitment"]

    def tkt(c: str) -> int:
        return int.from_bytes(hashlib.sha256(seed + b":" + c.encode()).digest(), "big")

    mine = sorted(published["candidates"], key=tkt)[: published["k"]]
    assert mine == published["winners"]
    assert draw.verify(published) == mine


def test_one_changed_byte_of_the_seed_changes_the_winners() -> None:
    other = bytes([SEED[0] ^ 1]) + SEED[1:]
    assert draw.winners(other, CANDIDATES, 3) != draw.winners(SEED, CANDIDATES, 3)
    assert draw.commitment(other) != draw.commitment(SEED)


def test_verify_catches_a_wrong_commitment() -> None:
    record = draw.public_record(SEED, CANDIDATES, 3)
    record["commitment"] = draw.commitment(b"another seed")
    with pytest.raises(draw.DrawMismatch, match="does not match the published commitment"):
        draw.verify(record)


def test_verify_catches_wrong_winners_or_wrong_order() -> None:
    record = draw.public_record(SEED, CANDIDATES, 3)
    loser = next(c for c in CANDIDATES if c not in record["winners"])
    with pytest.raises(draw.DrawMismatch, match="are not the draw's winners"):
        draw.verify({**record, "winners": [*record["winners"][:2], loser]})
    with pytest.raises(draw.DrawMismatch, match="are not the draw's winners"):
        draw.verify({**record, "winners": record["winners"][::-1]})


def test_verify_refuses_a_malformed_record() -> None:
    record = draw.public_record(SEED, CANDIDATES, 3)
    with pytest.raises(draw.DrawMismatch, match="no 'seed'"):
        draw.verify({k: v for k, v in record.items() if k != "seed"})
    with pytest.raises(draw.DrawMismatch, match="not hexadecimal"):
        draw.verify({**record, "seed": "zz"})
    with pytest.raises(draw.DrawMismatch, match="not a valid draw"):
        draw.verify({**record, "candidates": ["a", "a"]})
