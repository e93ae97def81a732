"""Verifiable draws of group buys in the running service (both stores).

A third party holding only the public record (JSON, no credentials) recomputes the winners
with its own few lines of hashlib; one byte of the seed changed changes the ranking and no
longer matches the commitment; the commitment is published when the group (or campaign)
opens, before anyone joins, and the seed revealed at the draw is the one it committed to.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

import pytest
from groupbuy_helpers import Mall, mall, member_code
from sqlalchemy import Engine

from tokenmall.domain import draw

D = Decimal


def third_party(record: dict[str, object]) -> list[str]:
    """What anyone can do with the record alone (no tokenmall code)."""
    seed = bytes.fromhex(str(record["seed"]))
    assert hashlib.sha256(seed).hexdigest() == record["commitment"]
    candidates = [str(c) for c in record["candidates"]]  # type: ignore[attr-defined]

    def ticket(c: str) -> int:
        return int.from_bytes(hashlib.sha256(seed + b":" + c.encode()).digest(), "big")

    return sorted(candidates, key=ticket)[: int(record["k"])]  # type: ignore[call-overload]


def _merchant_group(m: Mall, size: int = 10, winners: int = 3) -> str:
    m.groups.create_offer(
        m.tid,
        actor="op",
        code="mer",
        sku_id=m.sku,
        mode="merchant",
        price=D(70),
        size=size,
        winners=winners,
        subsidy=D(1),
    )
    g = m.open_paid("mer", member_code(0))
    return g.public_id


def test_the_commitment_is_public_before_the_first_join_and_the_seed_only_after_the_draw(
    db_engine: Engine,
) -> None:
    m = mall(db_engine)
    public_id = _merchant_group(m)
    before = m.groups.public_group(public_id)
    assert before["state"] == "open"
    assert len(str(before["commitment"])) == 64
    assert before["seed"] is None
    assert before["winners"] == []
    for i in range(1, 10):
        m.join_paid(public_id, member_code(i))
    after = json.loads(json.dumps(m.groups.public_group(public_id)))  # as sent over the wire
    assert after["commitment"] == before["commitment"]
    assert hashlib.sha256(bytes.fromhex(after["seed"])).hexdigest() == before["commitment"]
    assert after["candidates"] == [member_code(i) for i in range(10)]  # join order
    assert third_party(after) == after["winners"]
    assert draw.verify(after) == after["winners"]
    assert sorted(after["winners"]) == sorted(m.groups.get_group(m.tid, public_id).winners)


def test_one_byte_of_the_seed_changed_changes_the_draw_and_breaks_the_commitment(
    db_engine: Engine,
) -> None:
    m = mall(db_engine)
    public_id = _merchant_group(m)
    for i in range(1, 10):
        m.join_paid(public_id, member_code(i))
    record = m.groups.public_group(public_id)
    seed = bytearray(bytes.fromhex(record["seed"]))
    seed[0] ^= 0x01
    forged = {**record, "seed": seed.hex()}
    with pytest.raises(draw.DrawMismatch):
        draw.verify(forged)
    full = {**record, "k": len(record["candidates"])}
    ranking = draw.winners(bytes.fromhex(record["seed"]), record["candidates"], full["k"])
    changed = draw.winners(bytes(seed), record["candidates"], full["k"])
    assert ranking != changed  # all ten ranked: equal by chance once in 10! draws
    # and no one can name other winners: the published ones are the only ones that verify
    other = {**record, "winners": list(reversed(record["winners"]))}
    with pytest.raises(draw.DrawMismatch):
        draw.verify(other)


def test_a_lottery_campaign_commits_before_any_group_opens(db_engine: Engine) -> None:
    m = mall(db_engine)
    camp = m.groups.create_campaign(m.tid, code="c1", winners=1, actor="op")
    m.groups.create_offer(
        m.tid,
        actor="op",
        code="lot",
        sku_id=m.sku,
        mode="lottery",
        price=D(70),
        size=2,
        campaign="c1",
        compensation=D(3),
    )
    ids = []
    for first in (0, 2, 4):
        g = m.open_paid("lot", member_code(first))
        assert m.groups.public_group(g.public_id)["commitment"] == camp.commitment
        m.join_paid(g.public_id, member_code(first + 1))
        ids.append(g.public_id)
    record = json.loads(json.dumps(m.groups.draw_campaign(m.tid, "c1")))
    assert record["commitment"] == camp.commitment
    assert record["candidates"] == ids
    assert third_party(record) == record["winners"]
    again = m.groups.public_campaign_draw(camp.public_id, 1)
    assert again == record
    for public_id in ids:  # every group shows the draw it took part in
        assert m.groups.public_group(public_id)["seed"] == record["seed"]
