"""Properties over random streams: marketing rewards and group-buy places.

* with every model enabled, over random settle / refund / day-close / task streams, no reward
  key is ever returned twice, every amount is whole fen, and once every order is refunded in
  full every model's net reward per member is zero;
* over random group operations (opens, joins, cancels, closes, campaign draws), every place is
  held once and ends confirmed or refunded exactly once, never both; a refused operation
  changes nothing.
"""

from __future__ import annotations

import copy
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tokenmall.domain.groupbuy import (
    Campaign,
    Confirm,
    Group,
    GroupTerms,
    Hold,
    Mode,
    Refund,
    campaign_draw,
    cancel,
    close,
    join,
    open_group,
)
from tokenmall.domain.marketing import (
    DayClosed,
    ModelSet,
    OrderRefunded,
    OrderSettled,
    Reward,
    TaskDone,
)
from tokenmall.errors import InvalidCommand

D = Decimal
T0 = datetime(2024, 5, 1, tzinfo=UTC)
MEMBERS = [f"m{i}" for i in range(8)]

ALL_MODELS = {
    "distribution": {"ratios": ["0.10", "0.05"], "freeze_days": 3},
    "refer3": {"products": ["P", "PACK"]},
    "chain21": {"entry_products": ["PACK"], "help_tasks": 2},
    "queue_free": {"rate_back": "0.3", "money_max": "150", "min_amount": "1"},
    "rebate": {"release_rate": "0.2"},
}


class Links:
    def __init__(self, referrer: dict[str, str | None]) -> None:
        self.referrer = referrer

    def referrer_of(self, member: str) -> str | None:
        return self.referrer.get(member)


links_st = st.lists(st.integers(-1, 7), min_size=8, max_size=8).map(
    lambda xs: {f"m{i}": (f"m{j}" if 0 <= j < i else None) for i, j in enumerate(xs)}
)
op_st = st.one_of(
    st.tuples(
        st.just("settle"),
        st.sampled_from(MEMBERS),
        st.integers(1, 30_000).map(lambda c: D(c).scaleb(-2)),
        st.sampled_from(["P", "PACK", "Q"]),
    ),
    st.tuples(st.just("refund"), st.integers(0, 50), st.integers(1, 100)),
    st.tuples(st.just("close")),
    st.tuples(st.just("task"), st.sampled_from(MEMBERS)),
)


@settings(max_examples=150, deadline=None)
@given(links=links_st, ops=st.lists(op_st, max_size=60))
def test_no_reward_key_twice_and_full_refunds_bring_every_net_to_zero(
    links: dict[str, str | None], ops: list[tuple[Any, ...]]
) -> None:
    ms = ModelSet.from_config(ALL_MODELS, compliance_override="property test")
    states = ms.new_states()
    ctx = Links(links)
    orders: dict[str, D] = {}
    refunded: dict[str, D] = {}
    rewards: list[Reward] = []
    day = date(2024, 5, 1)
    seq = 0

    def go(event: Any) -> None:
        rewards.extend(ms.handle(states, event, ctx))

    def refund_to(order: str, total: D) -> None:
        nonlocal seq
        seq += 1
        refunded[order] = total
        go(OrderRefunded(order, f"r{seq}", total, orders[order]))

    for op in ops:
        if op[0] == "settle":
            order = f"o{len(orders)}"
            orders[order] = op[2]
            go(OrderSettled(order, op[1], op[2], op[3], T0 + timedelta(days=len(orders))))
        elif op[0] == "refund" and orders:
            order = list(orders)[op[1] % len(orders)]
            left = orders[order] - refunded.get(order, D(0))
            part = (left * op[2] / 100).quantize(D("0.01"))
            if part > 0:
                refund_to(order, refunded.get(order, D(0)) + part)
        elif op[0] == "close":
            go(DayClosed(day))
            day += timedelta(days=1)
        elif op[0] == "task":
            go(TaskDone(op[1], "share", day))

    for order, amount in orders.items():
        if refunded.get(order, D(0)) < amount:
            refund_to(order, amount)
    go(DayClosed(day))  # nothing is released once everything is refunded
    for m in MEMBERS:
        for _ in range(2):
            go(TaskDone(m, "share", day))

    keys = Counter(r.key for r in rewards)
    assert [k for k, n in keys.items() if n > 1] == []
    assert all(r.amount == r.amount.quantize(D("0.01")) and r.amount != 0 for r in rewards)
    net: dict[tuple[str, str], D] = defaultdict(D)
    for r in rewards:
        net[(r.model, r.beneficiary)] += r.amount
    assert {k: v for k, v in net.items() if v} == {}


# --- group buys ------------------------------------------------------------------------------

SEEDS = [bytes([i]) * 32 for i in range(1, 200)]

group_op_st = st.one_of(
    st.tuples(st.just("open"), st.sampled_from(list(Mode)), st.integers(2, 3), st.integers(1, 3)),
    st.tuples(st.just("join"), st.integers(0, 3), st.sampled_from(MEMBERS)),
    st.tuples(st.just("join"), st.integers(0, 3), st.sampled_from(MEMBERS)),
    st.tuples(st.just("cancel"), st.integers(0, 9), st.sampled_from(MEMBERS)),
    st.tuples(st.just("close"), st.integers(0, 9)),
    st.tuples(st.just("draw"), st.integers(0, 3)),
    st.tuples(st.just("tick"), st.integers(1, 40)),
)


@settings(max_examples=200, deadline=None)
@given(ops=st.lists(group_op_st, max_size=50))
def test_every_place_ends_confirmed_or_refunded_exactly_once(ops: list[tuple[Any, ...]]) -> None:
    campaign = Campaign.create("c1", SEEDS[0])
    seeds = iter(SEEDS[1:])
    groups: list[Group] = []
    moves: list[Any] = []
    now = T0
    refs = iter(range(10_000))

    def attempt(fn: Any, *args: Any, **kw: Any) -> None:
        before = copy.deepcopy((groups, campaign))
        try:
            moves.extend(fn(*args, **kw))
        except InvalidCommand:
            assert copy.deepcopy((groups, campaign)) == before  # a refusal changes nothing

    for op in ops:
        kind = op[0]
        if kind == "open":
            mode, size, w = op[1], op[2], min(op[3], op[2])
            terms = GroupTerms(
                mode,
                "P",
                D("70"),
                size,
                winners=w,
                campaign="c1" if mode is Mode.LOTTERY else None,
                compensation=D("10") if mode is Mode.LOTTERY else D(0),
                subsidy=D("5") if mode is Mode.MERCHANT else D(0),
                commission=D("8") if mode is Mode.MERCHANT else D(0),
            )
            drawn = mode in (Mode.MERCHANT, Mode.ACTIVITY)
            leader = MEMBERS[len(groups) % len(MEMBERS)]
            g, out = open_group(
                f"g{len(groups)}",
                terms,
                leader,
                f"p{next(refs)}",
                now,
                seed=next(seeds) if drawn else None,
                deadline=now + timedelta(minutes=60),
            )
            groups.append(g)
            moves.extend(out)
        elif kind in ("join", "cancel", "close") and groups:
            g = groups[op[1] % len(groups)]
            if kind == "join":
                attempt(join, g, op[2], f"p{next(refs)}", now, campaign=campaign)
            elif kind == "cancel":
                attempt(cancel, g, op[2], now)
            else:
                attempt(close, g, now)
        elif kind == "draw":
            attempt(
                campaign_draw,
                campaign,
                [g for g in groups if g.terms.campaign == "c1"],
                op[1],
                now,
                next(seeds),
            )
        elif kind == "tick":
            now += timedelta(minutes=op[1])

    # the end of time: every open group expires, the campaign draws what filled
    now += timedelta(days=2)
    for g in groups:
        moves.extend(close(g, now))
    moves.extend(
        campaign_draw(
            campaign, [g for g in groups if g.terms.campaign == "c1"], 1, now, next(seeds)
        )
    )

    held = Counter(m.ref for m in moves if isinstance(m, Hold))
    confirmed = Counter(m.ref for m in moves if isinstance(m, Confirm))
    refunded = Counter(m.ref for m in moves if isinstance(m, Refund))
    places = [p.ref for g in groups for p in g.places]
    assert set(held) == set(places)
    assert all(n == 1 for n in held.values())
    for ref in places:
        assert confirmed[ref] + refunded[ref] == 1, ref
    assert Counter(m.key for m in moves).most_common(1)[0][1] <= 1 if moves else True
    assert all(g.state.value in ("succeeded", "failed", "lost") for g in groups)
