"""The ledger service on real databases (SQLite file and PostgreSQL)."""

from __future__ import annotations

import random
import sqlite3
import time
from collections import defaultdict
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select, text

from tokenmall.domain.economy import (
    BuyPoints,
    CloseDay,
    Command,
    Economy,
    Exchange,
    Join,
    Pay,
    PayoutResult,
    Purchase,
    Redeem,
    Refund,
    RewardGrant,
    RewardTakeBack,
    Sell,
    Settle,
    Withdraw,
)
from tokenmall.domain.params import TenantParams
from tokenmall.money import CNY_PLACES, EP_PLACES, atoms, show_price
from tokenmall.service.codec import dec
from tokenmall.service.ledger import Ledger
from tokenmall.store import schema as s

D = Decimal


def _sums(ledger: Ledger, tid: int) -> dict[str, Decimal]:
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for (_acct, asset), v in ledger.balances(tid).items():
        sums[asset] += v
    return dict(sums)


def test_seed_example_through_the_store(ledger: Ledger, tenant_code: str) -> None:
    tid = ledger.create_tenant(tenant_code)
    out = ledger.submit(
        tid, [(f"k{i}", Purchase(f"o{i}", name, D(100))) for i, name in enumerate("ABCD")]
    )
    assert [o.result["price"] for o in out if o.result] == ["1.4286", "1.6807", "1.8674", "2.0188"]
    assert [o.result["figures"]["points"] for o in out if o.result] == [
        "21",
        "14.7",
        "12.495",
        "11.2455",
    ]
    assert out[-1].result is not None
    assert out[-1].result["circulating"] == "59.4405"
    assert out[-1].result["pool"] == "120"


def test_replay_returns_first_result_and_conflict_changes_nothing(
    ledger: Ledger, tenant_code: str
) -> None:
    tid = ledger.create_tenant(tenant_code)
    first = ledger.submit(tid, [("buy-1", Purchase("o1", "A", D(100)))])[0]
    assert first.status == "applied"
    again = ledger.submit(tid, [("buy-1", Purchase("o1", "A", D(100)))])[0]
    assert again.status == "replayed"
    assert again.seq == first.seq
    assert again.result == first.result
    before = ledger.balances(tid)
    clash = ledger.submit(tid, [("buy-1", Purchase("o1", "A", D(200)))])[0]
    assert clash.status == "rejected"
    assert clash.error_code == "idempotency_conflict"
    assert ledger.balances(tid) == before
    with ledger.engine.connect() as conn:
        n = conn.execute(
            select(func.count()).select_from(s.ledger_tx).where(s.ledger_tx.c.tenant_id == tid)
        ).scalar()
    assert n == 1


def test_rejected_command_changes_nothing_and_others_apply(
    ledger: Ledger, tenant_code: str
) -> None:
    tid = ledger.create_tenant(tenant_code)
    out = ledger.submit(
        tid,
        [
            ("a", Purchase("o1", "A", D(100))),
            ("b", Sell("A", D(1000))),  # more than held
            ("c", Sell("nobody", D(1))),
            ("d", Purchase("o2", "B", D(100))),
        ],
    )
    assert [o.status for o in out] == ["applied", "rejected", "rejected", "applied"]
    assert out[1].error_code == "insufficient_balance"
    assert out[2].error_code == "unknown_member"
    assert [o.seq for o in out if o.status == "applied"] == [1, 2]
    assert ledger.verify_chain(tid) is None
    assert set(ledger.members(tid)) == {"A", "B"}


def _random_commands(
    rng: random.Random, n: int, *, orders_flow: bool = False, rewards: bool = False
) -> list[tuple[str, Command]]:
    names = [f"u{i}" for i in range(12)]
    # referral links are permanent: each member keeps the one referrer it was given
    refs = {n: (None if i < 2 else names[rng.randrange(i)]) for i, n in enumerate(names)}
    cmds: list[tuple[str, Command]] = []
    orders: list[str] = []
    paid: list[str] = []
    holds: list[str] = []
    if orders_flow:
        cmds += [(f"j{i}", Join(nm, refs[nm])) for i, nm in enumerate(names)]
    for i in range(n):
        r = rng.random()
        who = rng.choice(names)
        if rewards and r < 0.15:
            # grants, and take-backs larger than most wallets: SP debts the next credits
            # (sales, exchanges, the bulk close's dividends and exits) must set off
            amount = D(rng.randint(1, 6000)) / 100
            cls = RewardGrant if r < 0.06 else RewardTakeBack
            cmds.append((f"e{i}", cls(who, amount, "distribution")))
            continue
        if orders_flow and r < 0.30:
            o = f"p{i}"
            cmds.append(
                (
                    f"e{i}",
                    Pay(
                        o,
                        who,
                        cny=D(rng.randint(0, 50000)) / 100,
                        sp=D(rng.choice([0, 0, rng.randint(1, 2000)])) / 100,
                        points=D(rng.choice([0, 0, rng.randint(1, 500)])) / 100,
                    ),
                )
            )
            paid.append(o)
            continue
        if orders_flow and r < 0.40 and paid:
            cmds.append((f"e{i}", Settle(rng.choice(paid))))
            continue
        if orders_flow and r < 0.45 and paid:
            amt = None if rng.random() < 0.5 else D(rng.randint(1, 5000)) / 100
            cmds.append((f"e{i}", Refund(rng.choice(paid), amt)))
            continue
        if orders_flow and r < 0.50:
            req = f"w{i}"
            cmds.append((f"e{i}", Withdraw(req, who, D(rng.randint(1, 3000)) / 100, D("0.5"))))
            holds.append(req)
            continue
        if orders_flow and r < 0.55 and holds:
            cmds.append((f"e{i}", PayoutResult(rng.choice(holds), rng.random() < 0.5)))
            continue
        r = rng.random()
        if r < 0.55 or not orders:
            ref = refs[who]
            amount = D(rng.randint(1, 300000)) / 100
            cmds.append((f"e{i}", Purchase(f"o{i}", who, amount, referrer=ref)))
            orders.append(f"o{i}")
        elif r < 0.68:
            cmds.append((f"e{i}", Sell(who, D(rng.randint(1, 3000)) / 100)))
        elif r < 0.76:
            cmds.append((f"e{i}", Exchange(who, D(rng.randint(1, 2000)) / 100)))
        elif r < 0.82:
            cmds.append((f"e{i}", BuyPoints(who, D(rng.randint(1, 5000)) / 100)))
        elif r < 0.90:
            cmds.append((f"e{i}", CloseDay(f"d{i}")))
        else:
            o = rng.choice(orders)
            amt = None if rng.random() < 0.5 else D(rng.randint(1, 5000)) / 100
            cmds.append((f"e{i}", Refund(o, amt)))
    return cmds


def _assert_store_is(
    ledger: Ledger, tid: int, stored: dict[str, dict[str, Any]], eco: Economy
) -> None:
    """Every member of the pure domain stored with the same figures; the ledger sums to zero
    per asset and its chain verifies."""
    for code, m in eco.members.items():
        assert stored[code] == {
            "points": dec(m.ep),
            "stable": dec(m.sp),
            "quota_remaining": dec(m.quota),
            "spent": dec(m.spent),
            "dividends": dec(m.dividends),
            "exited": m.exited,
        }, code
    with ledger.engine.connect() as conn:
        debts = dict(
            conn.execute(
                select(s.members.c.code, s.members.c.sp_debt).where(s.members.c.tenant_id == tid)
            ).all()
        )
    assert {c: D(debts[c]) / 10**4 for c in eco.members} == {
        c: m.sp_debt for c, m in eco.members.items()
    }
    assert all(v == 0 for v in _sums(ledger, tid).values())
    assert ledger.verify_chain(tid) is None


@pytest.mark.parametrize(
    ("seed", "orders_flow", "rewards"),
    [(1, False, False), (2, False, False), (3, True, False), (4, True, False), (5, True, True)],
)
def test_store_matches_the_pure_domain(
    ledger: Ledger, tenant_code: str, seed: int, orders_flow: bool, rewards: bool
) -> None:
    """Differential: batches on the database == the in-memory economy, event by event.

    This checks the adapter's lazy member loading, its exit pre-filter and its bulk SQL day
    close against the domain's reference implementation.
    """
    rng = random.Random(seed)
    cmds = _random_commands(rng, 400, orders_flow=orders_flow, rewards=rewards)
    params = TenantParams(referral_ratio=D("0.25"), quota_multiplier=D("1.2"))
    tid = ledger.create_tenant(tenant_code, params)
    eco = Economy(params)
    expected = []
    for _, cmd in cmds:
        snap = eco.snapshot()
        try:
            eco.apply(cmd)
            eco.take_journal()
            num, den = eco.price_ratio()
            expected.append(("applied", show_price(num, den, params.initial_price)))
        except Exception:  # noqa: BLE001 - any refusal; the state must be unchanged
            assert eco.snapshot() == snap
            expected.append(("rejected", None))
    got = []
    i = 0
    while i < len(cmds):
        size = rng.randint(1, 60)
        for o in ledger.submit(tid, cmds[i : i + size]):
            got.append((o.status, o.result["price"] if o.result else None))
        i += size
    assert got == expected
    stored = ledger.members(tid)
    _assert_store_is(ledger, tid, stored, eco)


def test_tampering_breaks_the_chain(ledger: Ledger, tenant_code: str) -> None:
    tid = ledger.create_tenant(tenant_code)
    ledger.submit(tid, [(f"k{i}", Purchase(f"o{i}", f"m{i}", D(100))) for i in range(5)])
    assert ledger.verify_chain(tid) is None
    with ledger.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE transfers SET amount = amount + 1 "
                "WHERE tenant_id = :t AND seq = 3 AND n = 1"
            ),
            {"t": tid},
        )
    assert ledger.verify_chain(tid) == 3


def test_database_refuses_a_negative_wallet(ledger: Ledger, tenant_code: str) -> None:
    """The CHECK constraint backs the domain: even a buggy writer cannot store a negative."""
    tid = ledger.create_tenant(tenant_code)
    ledger.submit(tid, [("k", Purchase("o", "A", D(100)))])
    with pytest.raises(Exception, match=r"(?i)check|constraint"), ledger.engine.begin() as conn:
        conn.execute(text("UPDATE members SET ep = -1 WHERE tenant_id = :t"), {"t": tid})
    assert ledger.members(tid)["A"]["points"] == "21"


def test_tenants_are_isolated(ledger: Ledger, tenant_code: str) -> None:
    a = ledger.create_tenant(tenant_code + "a")
    b = ledger.create_tenant(tenant_code + "b")
    ledger.submit(a, [("k", Purchase("o", "A", D(100)))])
    out = ledger.submit(b, [("k", Purchase("o", "A", D(300)))])[0]
    assert out.status == "applied"  # same key and order in another tenant: independent
    assert out.result is not None
    assert out.result["pool"] == "90"
    assert ledger.members(a)["A"]["spent"] == "100"
    assert ledger.members(b)["A"]["spent"] == "300"


def test_reads_do_not_wait_for_the_writer(ledger: Ledger, tenant_code: str) -> None:
    """While a batch holds the tenant's write lock, reads still answer (WAL snapshot)."""
    tid = ledger.create_tenant(tenant_code)
    ledger.submit(tid, [("k", Purchase("o", "A", D(100)))])
    with ledger.engine.begin() as writer:
        writer.execute(
            text("UPDATE tenant_state SET seq = seq WHERE tenant_id = :t"), {"t": tid}
        )  # holds the write lock (SQLite) / the row lock (PostgreSQL) until the block ends
        started = time.monotonic()
        assert ledger.members(tid)["A"]["points"] == "21"
        assert time.monotonic() - started < 5  # busy_timeout is 60 s: it did not wait


def test_day_close_leaves_exit_triggers_valid(ledger: Ledger, tenant_code: str) -> None:
    """The close moves the tenant's trigger shift instead of every holder's stored trigger.

    After every batch, each stored trigger minus the shift must be at or below the member's
    exact quota/EP (the exit query may over-select, never miss), and the outcome must equal
    the pure domain's, exits included, over many closes that cap and exit holders.
    """
    rng = random.Random(7)
    # a small quota and a large fund: holders are capped and exit, early ones first
    params = TenantParams(
        referral_ratio=D("0.25"), quota_multiplier=D("1.1"), dividend_rate=D("0.6")
    )
    tid = ledger.create_tenant(tenant_code, params)
    eco = Economy(params)
    cmds: list[tuple[str, Command]] = []
    for i in range(600):
        if i % 25 == 24:
            cmds.append((f"e{i}", CloseDay(f"d{i}")))
        else:
            who = f"h{rng.randrange(min(80, 5 + i // 6))}"
            amount = D(rng.choice([rng.randint(100, 999), rng.randint(1000, 300000)])) / 100
            cmds.append((f"e{i}", Purchase(f"o{i}", who, amount)))
    expected = []
    exits = 0
    for _, cmd in cmds:
        exits += int(eco.apply(cmd)["exits"])
        eco.take_journal()
        expected.append(show_price(*eco.price_ratio(), params.initial_price))
    got: list[str] = []
    shifts = []
    lagging = 0
    for start in range(0, len(cmds), 40):
        for o in ledger.submit(tid, cmds[start : start + 40]):
            assert o.status == "applied", o
            assert o.result is not None
            got.append(o.result["price"])
        with ledger.engine.connect() as conn:
            shift = conn.execute(
                select(s.tenant_state.c.trigger_shift).where(s.tenant_state.c.tenant_id == tid)
            ).scalar_one()
            shifts.append(shift)
            m = s.members.c
            for row in conn.execute(
                select(m.code, m.ep, m.quota, m.trigger).where(m.tenant_id == tid, m.ep > 0)
            ):
                if row.trigger is None:
                    continue
                exact = (row.quota / 10**4) / (row.ep / 10**8)
                assert row.trigger - shift <= exact * (1 + 1e-9) + 1e-9, row
                lagging += row.trigger - shift < exact - 1e-6
    assert got == expected
    assert shifts[-1] > 0, "the closes raised the shift"
    assert lagging > 0, "some stored triggers were left to the shift"
    assert exits >= 20, "closes capped holders and forced exits"
    stored = ledger.members(tid)
    for code, mem in eco.members.items():
        assert stored[code]["quota_remaining"] == dec(mem.quota), code
        assert stored[code]["exited"] == mem.exited, code
    assert all(v == 0 for v in _sums(ledger, tid).values())


def test_a_failed_bulk_write_rolls_the_whole_close_back(ledger: Ledger, tenant_code: str) -> None:
    """The close stores its transfers on a second thread (SQLite) or by COPY (PostgreSQL),
    past SQLAlchemy: a failure there must reach the caller (as the driver's error) and leave
    nothing of the close behind, and the next close must work."""
    tid = ledger.create_tenant(tenant_code)
    ledger.submit(tid, [(f"k{i}", Purchase(f"o{i}", f"m{i}", D(100))) for i in range(5)])
    st = s.tenant_state.c
    with ledger.engine.begin() as conn:
        seq = conn.execute(select(st.seq).where(st.tenant_id == tid)).scalar_one()
        # a row where the close's third transfer will go: its insert must fail
        conn.execute(
            s.transfers.insert().values(
                tenant_id=tid, seq=seq + 1, n=3, asset="SP", debit="x", credit="y", amount=1
            )
        )
    before = (ledger.balances(tid), ledger.members(tid))
    with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError, sa_exc.IntegrityError)):
        ledger.submit(tid, [("close:d1", CloseDay("d1"))])
    assert (ledger.balances(tid), ledger.members(tid)) == before
    with ledger.engine.begin() as conn:
        assert conn.execute(select(st.seq).where(st.tenant_id == tid)).scalar_one() == seq
        conn.execute(
            s.transfers.delete().where(s.transfers.c.tenant_id == tid, s.transfers.c.seq > seq)
        )
    [out] = ledger.submit(tid, [("close:d1", CloseDay("d1"))])
    assert out.status == "applied"
    assert out.result is not None
    assert D(out.result["figures"]["recipients"]) == 5
    assert ledger.verify_chain(tid) is None


def test_large_batches_store_what_the_domain_computes(ledger: Ledger, tenant_code: str) -> None:
    """Batches large enough for PostgreSQL's bulk paths (COPY for new rows, a temporary table
    and one joined UPDATE from 1,000 member updates on): the stored members equal the pure
    domain's, the ledger sums to zero and the chain verifies."""
    n = 1200
    params = TenantParams(referral_ratio=D("0.1"))
    tid = ledger.create_tenant(tenant_code, params)
    eco = Economy(params)
    rounds = []
    for r in range(2):
        cmds: list[tuple[str, Command]] = [
            (
                f"r{r}-{i}",
                Purchase(
                    f"o{r}-{i}",
                    f"m{i}",
                    D(100 + (i * 7 + r) % 900) / 100 * 10,
                    referrer=None if i < 3 else f"m{i // 3}",
                ),
            )
            for i in range(n)
        ]
        rounds.append(cmds)
        for _, cmd in cmds:
            eco.apply(cmd)
            eco.take_journal()
    for cmds in rounds:
        out = ledger.submit(tid, cmds)
        assert {o.status for o in out} == {"applied"}
    stored = ledger.members(tid)
    assert len(stored) == len(eco.members) == n
    _assert_store_is(ledger, tid, stored, eco)


def test_two_writers_alternating_never_use_stale_members(
    ledger: Ledger, tenant_code: str, db_url: str
) -> None:
    """Each Ledger keeps the members of its last batch warm for its next one; another writer
    (here a second Ledger, as another process would be) committing in between must make it
    read them again.  Alternating batches over the same members equal the pure domain."""
    from tokenmall.store.db import create_db_engine  # noqa: PLC0415

    other_engine = create_db_engine(db_url)
    other = Ledger(other_engine)
    params = TenantParams(referral_ratio=D("0.1"))
    tid = ledger.create_tenant(tenant_code, params)
    eco = Economy(params)
    rng = random.Random(11)
    try:
        for b in range(8):
            cmds: list[tuple[str, Command]] = []
            for i in range(30):
                who = f"m{rng.randrange(12)}"
                if rng.random() < 0.75:
                    cmds.append((f"b{b}-{i}", Purchase(f"o{b}-{i}", who, D(rng.randint(1, 900)))))
                else:
                    cmds.append((f"b{b}-{i}", Sell(who, D(rng.randint(1, 300)) / 100)))
            writer = ledger if b % 3 != 1 else other  # ledger writes twice in a row, then other
            expected = []
            for _, cmd in cmds:
                try:
                    eco.apply(cmd)
                    eco.take_journal()
                    expected.append("applied")
                except Exception:  # noqa: BLE001 - a refusal, as the store must refuse it
                    expected.append("rejected")
            assert [o.status for o in writer.submit(tid, cmds)] == expected
        stored = ledger.members(tid)
        for code, m in eco.members.items():
            assert stored[code]["points"] == dec(m.ep), code
            assert stored[code]["stable"] == dec(m.sp), code
            assert stored[code]["quota_remaining"] == dec(m.quota), code
        assert all(v == 0 for v in _sums(ledger, tid).values())
        assert ledger.verify_chain(tid) is None
    finally:
        other_engine.dispose()


def _emptying_paths() -> dict[str, tuple[TenantParams, list[Command]]]:
    """Command lists whose last-but-one command takes the last points out of circulation,
    then a purchase that meets the price kept."""
    base = TenantParams()
    bought = [Purchase("o1", "A", D(100), referrer="B"), Sell("B", D(3))]  # A holds 21 EP
    # B's refunded purchase leaves its 700 CNY in the dividend fund; the close pays A its
    # whole quota out of it and exits A, the only holder (the store's bulk cascade)
    closing = TenantParams(dividend_rate=D("0.7"))
    return {
        "refund": (base, [Purchase("o1", "A", D(100), referrer="B"), Refund("o1")]),
        "partial-refunds": (
            base,
            [Purchase("o1", "A", D(100), referrer="B"), Refund("o1", D(40)), Refund("o1")],
        ),
        "sell": (base, [*bought, Sell("A", D(21))]),
        "redeem": (base, [*bought, Redeem("A", D(21), "r1")]),
        "pay-in-points": (base, [*bought, Pay("p1", "A", points=D(21))]),
        "exit": (TenantParams(quota_multiplier=D("0.30")), [Purchase("o1", "A", D(100))]),
        "debt-set-off": (
            base,
            [
                Purchase("o1", "A", D(100)),
                Exchange("A", D(21)),
                Refund("o1"),
                BuyPoints("A", D(30)),
            ],
        ),
        "day-close-exits": (
            closing,
            [
                Purchase("o1", "A", D(10)),
                Purchase("o2", "B", D(1000)),
                Refund("o2"),
                CloseDay("d1"),
            ],
        ),
    }


EMPTYING = _emptying_paths()


@pytest.mark.parametrize("path", list(EMPTYING))
def test_the_store_keeps_the_last_price_when_circulation_empties(
    ledger: Ledger, tenant_code: str, path: str
) -> None:
    """Every path that can take the last points out of circulation, on the store and in the
    pure domain: the same prices, the same remembered empty price, and the next buyer meets it.
    The day close goes through the store's bulk exit cascade, the domain's through run_exits."""
    params, cmds = EMPTYING[path]
    cmds = [*cmds, Purchase("next", "Z", D(100))]
    tid = ledger.create_tenant(tenant_code, params)
    eco = Economy(params)
    expected = []
    emptied_at = None
    for i, cmd in enumerate(cmds):
        circ_before, price_before = eco.circulating, eco.price_ratio()
        out = eco.apply(cmd)
        eco.take_journal()
        if eco.circulating == 0 and (circ_before > 0 or out["exits"]):
            emptied_at = i if emptied_at is None else emptied_at
            if not out["exits"]:  # the command itself emptied it: the price it started from
                num, den = eco.price_ratio()
                assert num * price_before[1] == price_before[0] * den, path
        shown = show_price(*eco.price_ratio(), params.initial_price)
        expected.append((shown, dec(eco.pool), dec(eco.circulating)))
    # (under the exit path's parameters the next buyer exits at once too)
    assert emptied_at == len(cmds) - 2, "the path empties circulation with its last command"
    got = []
    for o in ledger.submit(tid, [(f"k{i}", c) for i, c in enumerate(cmds)]):
        assert o.status == "applied", o
        assert o.result is not None
        got.append((o.result["price"], o.result["pool"], o.result["circulating"]))
    assert got == expected
    with ledger.engine.connect() as conn:
        st = s.tenant_state.c
        row = conn.execute(
            select(st.empty_pool, st.empty_circulating).where(st.tenant_id == tid)
        ).one()
    assert (row.empty_pool, row.empty_circulating) == (
        atoms(eco.state.empty_pool, CNY_PLACES),
        atoms(eco.state.empty_circulating, EP_PLACES),
    )
    _assert_store_is(ledger, tid, ledger.members(tid), eco)


def test_day_close_sets_sp_debts_off_against_dividends_and_exits(
    ledger: Ledger, tenant_code: str
) -> None:
    """The bulk close pays every holder in SQL; members with an SP debt (a reward taken back
    after they spent it) keep only what the pay and any forced exit exceed the debt by, as in
    the pure domain, and the debt shrinks by the rest."""
    params = TenantParams(quota_multiplier=D("1.1"), dividend_rate=D("0.6"))
    tid = ledger.create_tenant(tenant_code, params)
    eco = Economy(params)
    cmds: list[tuple[str, Command]] = []
    for i in range(30):
        cmds.append((f"buy{i}", Purchase(f"o{i}", f"h{i}", D(100 + 37 * i))))
    for i in range(0, 30, 3):  # every third holder owes: a small debt or one larger than pays
        debt = D("0.05") if i % 2 else D(500)
        cmds += [
            (f"g{i}", RewardGrant(f"h{i}", debt, "distribution")),
            (f"w{i}", Withdraw(f"wr{i}", f"h{i}", debt)),
            (f"t{i}", RewardTakeBack(f"h{i}", debt, "distribution")),
        ]
    cmds.append(("close1", CloseDay("d1")))
    cmds.append(("buy-late", Purchase("late", "h1", D(5000))))
    cmds.append(("close2", CloseDay("d2")))
    for _, cmd in cmds:
        eco.apply(cmd)
        eco.take_journal()
    debts_before_close = {f"h{i}" for i in range(0, 30, 3)}
    out = ledger.submit(tid, cmds)
    assert {o.status for o in out} == {"applied"}
    stored = ledger.members(tid)
    _assert_store_is(ledger, tid, stored, eco)
    settled = [c for c in debts_before_close if eco.members[c].sp_debt == 0]
    owing = [c for c in debts_before_close if eco.members[c].sp_debt > 0]
    # both paths ran: debts fully set off, and debts larger than what the closes paid
    assert settled
    assert owing
    assert all(eco.members[c].sp == 0 for c in owing)
    assert any(eco.members[c].exited for c in eco.members)
