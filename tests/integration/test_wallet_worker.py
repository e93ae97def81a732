"""A payout whose server died between the approval and the provider (or whose notification
never came) is finished by ``tokenmall worker``, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from decimal import Decimal

from sqlalchemy import func, select, update
from typer.testing import CliRunner

from tokenmall.cli import app as cli_app
from tokenmall.domain.economy import Purchase, Sell
from tokenmall.service import members, wallet
from tokenmall.service.ledger import Ledger
from tokenmall.store import schema as s

D = Decimal


def test_the_worker_sends_a_payout_the_server_never_sent(
    ledger: Ledger, tenant_code: str, db_url: str
) -> None:
    tid = ledger.create_tenant(tenant_code)
    with ledger.engine.begin() as conn:
        members.create_member(conn, tid, "alice")
    ledger.submit(tid, [("b", Purchase("o", "alice", D(100))), ("s", Sell("alice", D(21)))])
    wd, _ = wallet.request_withdrawal(
        ledger, tid, "alice", amount=D("20.00"), account="oid", key="k"
    )
    wallet.approve_withdrawal(ledger, tid, wd.id, reviewer="op")
    # the server stamped the attempt, then died before the provider answered (long ago)
    w = s.withdrawals.c
    with ledger.engine.begin() as conn:
        conn.execute(
            update(s.withdrawals)
            .where(w.tenant_id == tid, w.ref == wd.id)
            .values(payout_sent_at=time.time() - 3600)
        )
    r = CliRunner().invoke(cli_app, ["worker", "--once", "--db", db_url])
    assert r.exit_code == 0, r.output
    with ledger.engine.connect() as conn:
        done = wallet.get_withdrawal(conn, tid, wd.id)
        e = s.provider_events.c
        events = conn.execute(
            select(func.count()).where(e.tenant_id == tid, e.kind == "payout_succeeded")
        ).scalar_one()
    assert done.status == "paid"
    assert events == 1  # through the payment hub: recorded like any notification
    assert ledger.balances(tid)[("payout_hold", "CNY")] == 0
    # again: nothing left to send
    r = CliRunner().invoke(cli_app, ["worker", "--once", "--db", db_url])
    assert r.exit_code == 0, r.output
    t = s.ledger_tx.c
    with ledger.engine.connect() as conn:
        results = conn.execute(
            select(func.count()).where(t.tenant_id == tid, t.kind == "payout_result")
        ).scalar_one()
    assert results == 1
