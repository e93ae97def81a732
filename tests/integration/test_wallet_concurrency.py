"""One wallet, many spenders at once (issue 3: "a balance can never be spent twice"), on SQLite
and PostgreSQL: withdrawals, SP->EP exchanges and order payments with SP from several
processes never take more than the balance.  Every debit that succeeded is in the ledger,
the final balance is the start less exactly those debits, and it is never negative."""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from tokenmall.domain.economy import Exchange, Pay, Purchase, Sell
from tokenmall.errors import InsufficientBalance, TokenmallError
from tokenmall.service import members, wallet
from tokenmall.service.ledger import Ledger
from tokenmall.store import schema as s
from tokenmall.store.db import create_db_engine

D = Decimal
START = D("270.00")  # alice buys 1000 (210 EP at price 1) and sells them: 210 x 300/210 x 0.9
OPS = 12
WORKERS = 6
AMOUNTS = {"withdraw": D("7.00"), "buy_points": D("5.00"), "pay": D("9.00")}


def _setup(ledger: Ledger, code: str) -> int:
    tid = ledger.create_tenant(code)
    with ledger.engine.begin() as conn:
        for m in ("alice", "bob"):
            members.create_member(conn, tid, m)
    out = ledger.submit(
        tid,
        [
            ("a-buy", Purchase("a-o", "alice", D(1000))),
            ("a-sell", Sell("alice", D(210))),
            ("b-buy", Purchase("b-o", "bob", D(1000))),
            ("b-ex", Exchange("bob", D(100))),  # the treasury gets points to sell for SP
        ],
    )
    assert all(o.status == "applied" for o in out), out
    assert D(ledger.members(tid, ["alice"])["alice"]["stable"]) == START
    return tid


def _spend(ledger: Ledger, tid: int, worker: int, i: int) -> tuple[str, Decimal, str]:
    kind = ("withdraw", "buy_points", "pay")[(worker + i) % 3]
    amount = AMOUNTS[kind]
    k = f"w{worker}-{i}"
    try:
        if kind == "withdraw":
            wallet.request_withdrawal(
                ledger, tid, "alice", amount=amount, account="oid-alice", key=k
            )
        elif kind == "buy_points":
            wallet.buy_points(ledger, tid, "alice", amount, k)
        else:
            out = ledger.submit(tid, [(f"pay:{k}", Pay(f"order-{k}", "alice", sp=amount))])[0]
            if out.status == "rejected":
                return kind, amount, out.error_code or "rejected"
    except InsufficientBalance:
        return kind, amount, "insufficient_balance"
    except TokenmallError as exc:
        return kind, amount, exc.code
    return kind, amount, "ok"


def _worker(url: str, tid: int, worker: int) -> list[tuple[str, Decimal, str]]:
    ledger = Ledger(create_db_engine(url))
    try:
        return [_spend(ledger, tid, worker, i) for i in range(OPS)]
    finally:
        ledger.engine.dispose()


def _check(ledger: Ledger, tid: int, results: list[tuple[str, Decimal, str]]) -> None:
    ok = [(k, a) for k, a, st in results if st == "ok"]
    refused = [st for _, _, st in results if st != "ok"]
    assert set(refused) <= {"insufficient_balance"}, refused
    assert refused, "the spenders asked for more than the balance: some must be refused"
    spent = sum((a for _, a in ok), D(0))
    final = D(ledger.members(tid, ["alice"])["alice"]["stable"])
    assert final >= 0
    assert spent <= START
    assert final == START - spent
    # a refusal said the wallet was short of that amount then, and it only shrank since
    assert final < max(a for _, a, st in results if st != "ok")
    # each success is in the store once: withdrawals held, payments escrowed
    engine = ledger.engine
    with engine.connect() as conn:
        w = s.withdrawals.c
        held = conn.execute(select(w.amount_fen).where(w.tenant_id == tid)).scalars().all()
        e = s.escrows.c
        escrowed = conn.execute(select(e.sp).where(e.tenant_id == tid)).scalars().all()
    assert len(held) == sum(k == "withdraw" for k, _ in ok)
    assert len(escrowed) == sum(k == "pay" for k, _ in ok)
    sums: dict[str, Decimal] = {}
    for (_, asset), v in ledger.balances(tid).items():
        sums[asset] = sums.get(asset, D(0)) + v
    assert all(v == 0 for v in sums.values()), sums
    assert ledger.verify_chain(tid) is None


def test_processes_spending_one_wallet_never_overdraw(
    ledger: Ledger, tenant_code: str, db_url: str
) -> None:
    tid = _setup(ledger, tenant_code)
    with mp.get_context("spawn").Pool(WORKERS) as pool:
        per_worker = pool.starmap(_worker, [(db_url, tid, w) for w in range(WORKERS)])
    _check(ledger, tid, [r for rs in per_worker for r in rs])


def test_threads_over_http_never_overdraw(ledger: Ledger, tenant_code: str, db_url: str) -> None:
    from fastapi.testclient import TestClient  # noqa: PLC0415

    from tokenmall.api import create_app  # noqa: PLC0415
    from tokenmall.service.credentials import issue_member_token  # noqa: PLC0415
    from tokenmall.settings import Settings  # noqa: PLC0415

    tid = _setup(ledger, tenant_code)
    settings = Settings(db_url=db_url, rate_limit_per_second=0)
    token, _ = issue_member_token(
        settings.secret_key.get_secret_value(), tid, "alice", ttl_seconds=600
    )
    auth = {"Authorization": f"Bearer {token}"}
    base = f"/v1/tenants/{tenant_code}/members/alice"
    requests: list[tuple[str, str, dict[str, Any], Decimal]] = []
    for i in range(WORKERS * OPS):
        kind = ("withdraw", "buy_points", "pay")[i % 3]
        if kind == "withdraw":
            requests.append((kind, "/withdrawals", {"amount": "7.00", "account": "o"}, D(7)))
        elif kind == "buy_points":
            requests.append((kind, "/wallet/buy-points", {"stable": "5.00"}, D(5)))
        else:
            requests.append((kind, "", {}, D(9)))

    with TestClient(create_app(settings)) as client:

        def one(n: int) -> tuple[str, Decimal, str]:
            kind, path, body, amount = requests[n]
            if kind == "pay":  # an order paid with SP: the ledger's Pay, as the orders service does
                out = ledger.submit(tid, [(f"pay:h{n}", Pay(f"order-h{n}", "alice", sp=amount))])
                return kind, amount, "ok" if out[0].status == "applied" else out[0].error_code or ""
            r = client.post(base + path, json=body, headers={**auth, "Idempotency-Key": f"h{n}"})
            if r.status_code in (200, 201):
                return kind, amount, "ok"
            return kind, amount, r.json()["error"]["code"]

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(one, range(len(requests))))
    _check(ledger, tid, results)


def test_cancel_reject_and_approve_race_one_wins(ledger: Ledger, tenant_code: str) -> None:
    """A member's cancel, an operator's rejection and an approval of the same withdrawal at
    once: exactly one of them happens, and the SP comes back at most once."""
    tid = _setup(ledger, tenant_code)
    refs = [
        wallet.request_withdrawal(
            ledger, tid, "alice", amount=D("10.00"), account="oid-alice", key=f"r{i}"
        )[0].id
        for i in range(8)
    ]
    assert D(ledger.members(tid, ["alice"])["alice"]["stable"]) == START - 80

    def attempt(job: tuple[str, str]) -> tuple[str, str, str]:
        ref, action = job
        try:
            if action == "cancel":
                wallet.cancel_withdrawal(ledger, tid, ref, member="alice", actor="member:alice")
            elif action == "reject":
                wallet.reject_withdrawal(ledger, tid, ref, reviewer="op")
            else:
                wallet.approve_withdrawal(ledger, tid, ref, reviewer="op")
        except TokenmallError as exc:
            return ref, action, exc.code
        return ref, action, "ok"

    jobs = [(ref, a) for ref in refs for a in ("cancel", "reject", "approve", "cancel")]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, jobs))
    won: dict[str, list[str]] = {ref: [] for ref in refs}
    for ref, action, outcome in results:
        assert outcome in ("ok", "conflict"), (ref, action, outcome)
        if outcome == "ok":
            won[ref].append(action)
    assert all(len(w) == 1 for w in won.values()), won
    with ledger.engine.connect() as conn:
        w = s.withdrawals.c
        rows = conn.execute(select(w.ref, w.status).where(w.tenant_id == tid)).all()
    status = {row.ref: row.status for row in rows}
    expected = {"cancel": "cancelled", "reject": "rejected", "approve": "approved"}
    assert status == {ref: expected[won[ref][0]] for ref in refs}
    approved = sum(1 for ref in refs if status[ref] == "approved")
    # returned SP came back once each; approved ones stay held for their payout
    assert D(ledger.members(tid, ["alice"])["alice"]["stable"]) == START - 10 * approved
    assert ledger.balances(tid)[("payout_hold", "CNY")] == 10 * approved
    sums: dict[str, Decimal] = {}
    for (_, asset), v in ledger.balances(tid).items():
        sums[asset] = sums.get(asset, D(0)) + v
    assert all(v == 0 for v in sums.values()), sums
    assert ledger.verify_chain(tid) is None
