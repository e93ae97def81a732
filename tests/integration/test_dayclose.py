"""Day close per tenant-local date (R9, issue 3 item 7), on SQLite and PostgreSQL: idempotent
per date, catch-up of every missed date in order, time zones, concurrent schedulers, the
scheduler's jobs, the CLI, and the scheduler inside the app's lifespan."""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import time
import zoneinfo
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update
from typer.testing import CliRunner

from tokenmall.cli import app as cli_app
from tokenmall.domain.economy import Purchase
from tokenmall.errors import InvalidCommand
from tokenmall.service import dayclose
from tokenmall.service.ledger import Ledger
from tokenmall.store import schema as s
from tokenmall.store.db import create_db_engine
from tokenmall.worker import Scheduler, orders_jobs

D = Decimal
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
# Dates are relative to today, so a scheduler running for real in another test (which closes
# every tenant of a shared database) finds only a few past dates on these tenants.
TODAY = dt.datetime.now(SHANGHAI).date()
NOON = dt.datetime.combine(TODAY, dt.time(12), SHANGHAI).timestamp()


def day(offset: int) -> dt.date:
    return TODAY + dt.timedelta(days=offset)


def make_tenant(
    ledger: Ledger, code: str, *, created: float, timezone: str = "Asia/Shanghai"
) -> int:
    tid = ledger.create_tenant(code, timezone=timezone)
    with ledger.engine.begin() as conn:
        conn.execute(update(s.tenants).where(s.tenants.c.id == tid).values(created_at=created))
    return tid


def clock(ledger: Ledger, tid: int) -> dayclose.TenantClock:
    with ledger.engine.connect() as conn:
        return dayclose.tenant_clock(conn, tid)


def closes(engine: Engine, tid: int) -> list[tuple[int, str]]:
    t = s.ledger_tx.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(t.seq, t.key).where(t.tenant_id == tid, t.kind == "close_day").order_by(t.seq)
        ).all()
    return [(int(r.seq), str(r.key)) for r in rows]


def dividends(ledger: Ledger, tid: int) -> Decimal:
    return sum((D(m["dividends"]) for m in ledger.members(tid).values()), D(0))


def assert_balanced(ledger: Ledger, tid: int) -> None:
    """Every asset's balances (accounts and members) sum to zero, as stored."""
    sums: dict[str, Decimal] = {}
    for (_, asset), v in ledger.balances(tid).items():
        sums[asset] = sums.get(asset, D(0)) + v
    assert all(v == 0 for v in sums.values()), sums


def test_consecutive_closes_pay_each_fund_once(ledger: Ledger, tenant_code: str) -> None:
    """Regression: the bulk close did not store a balance it brought to zero (the emptied
    dividend fund), so the next day's close paid yesterday's fund again."""
    tid = make_tenant(ledger, tenant_code, created=NOON - 3 * 86400)
    ledger.submit(tid, [("p", Purchase("o", "A", D(100)))])
    c = clock(ledger, tid)
    paid = [dayclose.close_day(ledger, c, day(-k)).paid for k in (3, 2, 1)]
    assert paid == ["30", "0", "0"]
    assert dividends(ledger, tid) == D(30)
    assert ledger.balances(tid)[("dividend_fund", "CNY")] == 0
    assert_balanced(ledger, tid)
    assert ledger.verify_chain(tid) is None


def test_closing_a_date_twice_pays_once(ledger: Ledger, tenant_code: str) -> None:
    tid = make_tenant(ledger, tenant_code, created=NOON - 86400)
    ledger.submit(tid, [("p", Purchase("o", "A", D(100))), ("q", Purchase("o2", "B", D(100)))])
    c = clock(ledger, tid)
    yesterday = day(-1)
    first = dayclose.close_day(ledger, c, yesterday, now=NOON)
    assert not first.replayed
    # the fund of two purchases; what the fen cuts leave is carried
    assert D(first.paid) + D(first.result["dividend_fund"]) == D(60)
    assert D(first.paid) == dividends(ledger, tid) > D("59.9")
    before = ledger.members(tid)
    again = dayclose.close_day(ledger, c, yesterday, now=NOON)
    assert again.replayed
    assert (again.seq, again.paid) == (first.seq, first.paid)
    assert ledger.members(tid) == before
    assert closes(ledger.engine, tid) == [(first.seq, f"close:{yesterday}")]
    # today may be closed early; tomorrow has not begun
    assert not dayclose.close_day(ledger, c, day(0), now=NOON).replayed
    with pytest.raises(InvalidCommand, match="has not begun"):
        dayclose.close_day(ledger, c, day(1), now=NOON)


def test_catch_up_closes_every_missed_date_in_order(ledger: Ledger, tenant_code: str) -> None:
    # created four days ago at 23:30 local: four past dates by noon today
    created = dt.datetime.combine(day(-4), dt.time(23, 30), SHANGHAI).timestamp()
    tid = make_tenant(ledger, tenant_code, created=created)
    ledger.submit(tid, [("p", Purchase("o", "A", D(100)))])
    c = clock(ledger, tid)
    # an operator closed one by hand: the gap around it is still filled, oldest first
    dayclose.close_day(ledger, c, day(-2))
    with ledger.engine.connect() as conn:
        assert dayclose.due_dates(conn, c, NOON) == [day(-4), day(-3), day(-1)]
    jobs = Scheduler(ledger.engine, jobs=[])
    report = jobs.tick(NOON)
    mine = [o for o in report.closes if o.tenant == tenant_code]
    assert [o.day for o in mine] == [day(-4), day(-3), day(-1)]
    assert [k for _, k in closes(ledger.engine, tid)] == [
        f"close:{d}" for d in (day(-2), day(-4), day(-3), day(-1))
    ]
    assert dividends(ledger, tid) == D(30)  # the one day's fund, paid once
    assert [o for o in jobs.tick(NOON).closes if o.tenant == tenant_code] == []
    # at the next local midnight today is due, and only it
    midnight = dayclose.next_midnight(c, NOON)
    assert midnight == dt.datetime.combine(day(1), dt.time(0), SHANGHAI).timestamp()
    assert [o.day for o in jobs.tick(midnight - 1).closes if o.tenant == tenant_code] == []
    assert [o.day for o in jobs.tick(midnight + 1).closes if o.tenant == tenant_code] == [day(0)]


def test_each_tenant_closes_at_its_own_midnight(ledger: Ledger, tenant_code: str) -> None:
    created = NOON - 5 * 86400
    east = make_tenant(ledger, tenant_code + "-sh", created=created)
    west = make_tenant(ledger, tenant_code + "-la", created=created, timezone="America/Los_Angeles")
    # 00:30 today in Shanghai is still yesterday morning in Los Angeles
    now = dt.datetime.combine(TODAY, dt.time(0, 30), SHANGHAI).timestamp()
    east_clock, west_clock = clock(ledger, east), clock(ledger, west)
    with ledger.engine.connect() as conn:
        east_due = dayclose.due_dates(conn, east_clock, now)
        west_due = dayclose.due_dates(conn, west_clock, now)
    assert east_due[-1] == day(-1)
    assert west_due[-1] == day(-2)
    jobs = Scheduler(ledger.engine, jobs=[], interval=3600)
    assert jobs.next_wakeup(now) <= now + 3600
    # the scheduler wakes for the nearest midnight of any tenant
    nearest = min(dayclose.next_midnight(c, now) for c in (east_clock, west_clock))
    assert jobs.next_wakeup(now) <= nearest + 1


def test_local_midnight_follows_daylight_saving() -> None:
    la = dayclose.TenantClock(0, "la", zoneinfo.ZoneInfo("America/Los_Angeles"), 0.0)
    for date, hours in [
        (dt.date(2026, 3, 8), 23),
        (dt.date(2026, 11, 1), 25),
        (dt.date(2026, 6, 1), 24),
    ]:
        start = dt.datetime.combine(date, dt.time(0), la.zone).timestamp()
        assert dayclose.next_midnight(la, start + 1) - start == hours * 3600
        assert la.today(start + 1) == date
        assert la.today(start - 1) == date - dt.timedelta(days=1)


def _close_in_process(url: str, tid: int, day: str) -> str:
    ledger = Ledger(create_db_engine(url))
    try:
        with ledger.engine.connect() as conn:
            c = dayclose.tenant_clock(conn, tid)
        out = dayclose.close_day(ledger, c, dt.date.fromisoformat(day))
        return "replayed" if out.replayed else "applied"
    finally:
        ledger.engine.dispose()


def test_schedulers_racing_on_one_date_pay_once(
    ledger: Ledger, tenant_code: str, db_url: str
) -> None:
    tid = make_tenant(ledger, tenant_code, created=NOON - 86400)
    ledger.submit(tid, [(f"p{i}", Purchase(f"o{i}", f"m{i}", D(100))) for i in range(20)])
    with mp.get_context("spawn").Pool(4) as pool:
        got = pool.starmap(_close_in_process, [(db_url, tid, day(-1).isoformat())] * 8)
    assert sorted(got) == ["applied"] + ["replayed"] * 7
    assert len(closes(ledger.engine, tid)) == 1
    paid = dividends(ledger, tid)
    assert D("599.8") < paid <= D(600)  # 20 x 30, once (less what the fen cuts carry)
    assert_balanced(ledger, tid)
    assert ledger.verify_chain(tid) is None


def test_the_scheduler_runs_the_orders_jobs_and_survives_a_failing_one(
    ledger: Ledger, tenant_code: str
) -> None:
    names = [name for name, _ in orders_jobs()]
    assert names == ["expire_orders", "settle_due"]
    make_tenant(ledger, tenant_code, created=NOON)
    calls: list[tuple[Any, float]] = []

    def job(engine: Engine, now: float) -> int:
        calls.append((engine, now))
        return 3

    def broken(engine: Engine, now: float) -> None:
        raise RuntimeError("boom")

    jobs = Scheduler(ledger.engine, jobs=[("broken", broken), ("job", job)])
    report = jobs.tick(NOON)
    assert calls == [(ledger.engine, NOON)]
    assert report.jobs == {"job": 3}
    assert report.errors == ["broken: boom"]
    # the real ones run on a real store
    assert Scheduler(ledger.engine).tick(NOON).errors == []


def test_the_scheduler_resends_refunds_and_survives_a_failing_resend(
    ledger: Ledger, tenant_code: str
) -> None:
    make_tenant(ledger, tenant_code, created=NOON)
    seen: list[float] = []

    def resend(now: float) -> int:
        seen.append(now)
        return 2

    report = Scheduler(ledger.engine, jobs=[], refunds=resend).tick(NOON)
    assert (seen, report.refunds, report.errors) == ([NOON], 2, [])

    def broken(now: float) -> int:
        raise RuntimeError("provider down")

    report = Scheduler(ledger.engine, jobs=[], refunds=broken).tick(NOON)
    assert (report.refunds, report.errors) == (0, ["refunds: provider down"])


def test_the_scheduler_reconciles_payments_before_the_order_jobs(ledger: Ledger) -> None:
    calls: list[tuple[str, float]] = []

    def reconcile(now: float) -> int:
        calls.append(("payments", now))
        return 3

    def expire(_engine: Any, now: float) -> int:
        calls.append(("expire_orders", now))
        return 0

    report = Scheduler(ledger.engine, jobs=[("expire_orders", expire)], payments=reconcile).tick(
        NOON
    )
    # first: a payment found made in time must be applied before its order could expire
    assert calls == [("payments", NOON), ("expire_orders", NOON)]
    assert (report.reconciled, report.errors) == (3, [])

    def broken(now: float) -> int:
        raise RuntimeError("WeChat down")

    report = Scheduler(ledger.engine, jobs=[("expire_orders", expire)], payments=broken).tick(NOON)
    assert (report.reconciled, report.errors) == (0, ["payments: WeChat down"])
    assert calls[-1] == ("expire_orders", NOON)  # the other jobs still ran


def test_the_scheduler_thread_starts_and_stops(ledger: Ledger, tenant_code: str) -> None:
    tid = make_tenant(ledger, tenant_code, created=time.time() - 3 * 86400)
    jobs = Scheduler(ledger.engine, jobs=[], interval=0.05)
    jobs.start()
    try:
        deadline = time.monotonic() + 30
        while len(closes(ledger.engine, tid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        jobs.stop()
    assert len(closes(ledger.engine, tid)) == 3


# ----------------------------------------------------------------------------- CLI


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli_app, list(args))


def test_day_close_from_the_command_line(ledger: Ledger, tenant_code: str, db_url: str) -> None:
    today = TODAY
    tid = make_tenant(ledger, tenant_code, created=NOON - 2 * 86400)
    ledger.submit(tid, [("p", Purchase("o", "A", D(100)))])
    day = (today - dt.timedelta(days=1)).isoformat()
    r = invoke("day", "close", "--tenant", tenant_code, "--date", day, "--db", db_url)
    assert r.exit_code == 0, r.output
    assert f"closed {day} for tenant {tenant_code}" in r.output
    assert "paid 30 SP to 1 members" in r.output
    r = invoke("day", "close", "--tenant", tenant_code, "--date", day, "--db", db_url, "--json")
    assert r.exit_code == 0, r.output
    assert '"status": "replayed"' in r.output
    assert dividends(ledger, tid) == D(30)
    r = invoke("day", "status", "--tenant", tenant_code, "--db", db_url)
    assert r.exit_code == 0, r.output
    assert f"last closed {day}" in r.output
    assert "to close: " + (today - dt.timedelta(days=2)).isoformat() in r.output
    # without --date: every past date still open, oldest first
    r = invoke("day", "close", "--tenant", tenant_code, "--db", db_url)
    assert r.exit_code == 0, r.output
    assert r.output.count("closed ") == 1
    r = invoke("day", "close", "--tenant", tenant_code, "--db", db_url)
    assert "nothing to close" in r.output
    for bad, message in [
        (["--date", "2026-02-30"], "date must be YYYY-MM-DD"),
        (["--date", (today + dt.timedelta(days=2)).isoformat()], "has not begun"),
    ]:
        r = invoke("day", "close", "--tenant", tenant_code, "--db", db_url, *bad)
        assert r.exit_code == 2, r.output
        assert message in r.output
    r = invoke("day", "close", "--tenant", "no-such-tenant", "--db", db_url)
    assert r.exit_code == 2
    assert "no tenant" in r.output


def test_worker_once(ledger: Ledger, tenant_code: str, db_url: str) -> None:
    tid = make_tenant(ledger, tenant_code, created=time.time() - 86400)
    r = invoke("worker", "--once", "--db", db_url)
    assert r.exit_code == 0, r.output
    assert f"for tenant {tenant_code}" in r.output
    assert len(closes(ledger.engine, tid)) == 1


def test_serve_runs_the_scheduler_in_its_lifespan(
    ledger: Ledger, tenant_code: str, db_url: str
) -> None:
    from fastapi.testclient import TestClient  # noqa: PLC0415

    from tokenmall.api import create_app  # noqa: PLC0415
    from tokenmall.settings import Settings  # noqa: PLC0415

    tid = make_tenant(ledger, tenant_code, created=time.time() - 2 * 86400)
    app = create_app(Settings(db_url=db_url, rate_limit_per_second=0), scheduler=True)
    with TestClient(app):
        deadline = time.monotonic() + 30
        while len(closes(ledger.engine, tid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert len(closes(ledger.engine, tid)) == 2
    with ledger.engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(s.tenants)).scalar_one()
    assert n >= 1
