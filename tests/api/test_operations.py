"""The operator's routes on SQLite and PostgreSQL: the balance sheet, the day close (status and
a manual close) and the daily series, with their refusals."""

from __future__ import annotations

import datetime as dt
import time
import zoneinfo
from decimal import Decimal
from typing import Any

from api_helpers import Mall, assert_error, ok
from fastapi.testclient import TestClient
from sqlalchemy import update

from tokenmall.domain.economy import CloseDay, Command, Pay, Purchase, Sell
from tokenmall.service.ledger import Ledger
from tokenmall.store import schema as s

D = Decimal
ZONE = zoneinfo.ZoneInfo("Asia/Shanghai")  # make_mall's tenants take the default zone


def ctx(client: TestClient) -> Any:
    app: Any = client.app
    return app.state.tokenmall


def submit(client: TestClient, mall: Mall, items: list[tuple[str, Command]]) -> int:
    ledger: Ledger = ctx(client).ledger
    tid: int = ctx(client).tenant_id(mall.code)
    out = ledger.submit(tid, items)
    assert all(o.status == "applied" for o in out), out
    return tid


def today() -> dt.date:
    return dt.datetime.now(ZONE).date()


def test_the_balance_sheet_shows_the_accounts_and_every_identity_holding(
    client: TestClient, mall: Mall
) -> None:
    submit(
        client,
        mall,
        [
            ("p1", Purchase("o1", "alice", D(100))),
            ("p2", Purchase("o2", "bob", D(100))),
            ("s1", Sell("alice", D(10))),
            ("pay", Pay("o3", "bob", cny=D(40))),
        ],
    )
    sheet = ok(client.get(mall.url("/balance-sheet"), headers=mall.operator))
    assert sheet["ok"] is True
    names = {i["name"]: i for i in sheet["identities"]}
    assert set(names) >= {
        "cny_balanced",
        "ep_balanced",
        "sp_balanced",
        "sp_backed",
        "payout_hold_matches_holds",
        "holds_match_withdrawals",
        "escrow_matches_orders",
        "circulating_held",
        "non_negative",
        "pool_covers_sales",
        "supply_cap",
    }
    assert all(i["holds"] for i in sheet["identities"])
    economy = ok(client.get(mall.url("/economy"), headers=mall.operator))
    assert sheet["price"] == economy["price"]
    assert D(sheet["cny"]["pool"]) == D(economy["pool"])
    assert sheet["ep"]["circulating"] == economy["circulating"]
    assert D(sheet["cny"]["escrow"]) == D(40)
    assert sheet["open"]["escrowed_orders"] == 1
    # alice's sale: its payout is the SP the reserve owes her
    assert D(sheet["cny"]["sp_reserve"]) == D(sheet["sp"]["members"]) > 0
    assert names["sp_backed"]["left"] == names["sp_backed"]["right"]
    # the world paid 240 in (two purchases, one payment)
    assert D(sheet["cny"]["world"]) == D(-240)
    assert D(sheet["open"]["sale_value"]) <= D(sheet["cny"]["pool"])


def test_the_balance_sheet_is_the_operators(client: TestClient, mall: Mall) -> None:
    assert_error(client.get(mall.url("/balance-sheet"), headers=mall.member), 403, "forbidden")
    assert_error(client.get(mall.url("/balance-sheet"), headers=mall.merchant), 403, "forbidden")


def test_day_close_status_close_replay_and_refusals(client: TestClient, mall: Mall) -> None:
    status = ok(client.get(mall.url("/day-close"), headers=mall.operator))
    assert status["timezone"] == "Asia/Shanghai"
    assert status["today"] == today().isoformat()
    assert status["last_closed"] is None
    assert status["due"] == []  # created today: nothing past to close
    midnight = dt.datetime.fromisoformat(status["next_close"])
    assert midnight.astimezone(ZONE).time() == dt.time(0)
    assert 0 < midnight.timestamp() - time.time() <= 86_400

    submit(client, mall, [("p1", Purchase("o1", "alice", D(100)))])
    body = {"date": today().isoformat()}
    first = ok(client.post(mall.url("/day-close"), json=body, headers=mall.operator))
    assert first["status"] == "applied"
    assert first["date"] == today().isoformat()
    # the fund (30% of 100) goes to alice, the only holder, up to her quota (200)
    assert (D(first["paid"]), first["recipients"]) == (D(30), 1)
    again = ok(client.post(mall.url("/day-close"), json=body, headers=mall.operator))
    assert again["status"] == "replayed"
    assert (again["seq"], again["paid"]) == (first["seq"], first["paid"])
    assert ok(client.get(mall.url("/day-close"), headers=mall.operator))["last_closed"] == (
        today().isoformat()
    )

    tomorrow = (today() + dt.timedelta(days=1)).isoformat()
    error = assert_error(
        client.post(mall.url("/day-close"), json={"date": tomorrow}, headers=mall.operator),
        422,
        "invalid_command",
    )
    assert "not begun" in error["message"]
    error = assert_error(
        client.post(mall.url("/day-close"), json={"date": "2001-01-01"}, headers=mall.operator),
        422,
        "invalid_command",
    )
    assert "first day" in error["message"]
    for bad in (
        {"date": "2026-13-01"},
        {"date": "yesterday"},
        {},
        {"date": today().isoformat(), "x": 1},
    ):
        assert_error(
            client.post(mall.url("/day-close"), json=bad, headers=mall.operator),
            422,
            "validation_error",
        )
    for who in (mall.member, mall.merchant):
        assert_error(client.post(mall.url("/day-close"), json=body, headers=who), 403)
        assert_error(client.get(mall.url("/day-close"), headers=who), 403)


def _backdate(client: TestClient, tid: int, stamps: dict[int, float], created: float) -> None:
    """Move the tenant's creation and its transactions' commit times into the past (the log's
    hashes do not cover the commit time, so the chain stays valid)."""
    engine = ctx(client).engine
    t = s.ledger_tx.c
    with engine.begin() as conn:
        conn.execute(update(s.tenants).where(s.tenants.c.id == tid).values(created_at=created))
        for seq, at in stamps.items():
            conn.execute(
                update(s.ledger_tx).where(t.tenant_id == tid, t.seq == seq).values(created_at=at)
            )


def test_the_daily_series_has_a_row_per_local_day(client: TestClient, mall: Mall) -> None:
    d0 = today()
    d2, d1 = d0 - dt.timedelta(days=2), d0 - dt.timedelta(days=1)

    def at(day: dt.date, hour: int, minute: int = 0) -> float:
        return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=ZONE).timestamp()

    tid = submit(
        client,
        mall,
        [
            ("p1", Purchase("o1", "alice", D(100))),  # seq 1, day -2
            ("p2", Purchase("o2", "bob", D(100))),  # seq 2, day -2, 23:59
            (f"close:{d2.isoformat()}", CloseDay(d2.isoformat())),  # seq 3, just after midnight
            ("p3", Purchase("o3", "alice", D(50))),  # seq 4, day -1
            ("pay", Pay("o4", "bob", cny=D(40))),  # seq 5, day -1
        ],
    )
    _backdate(
        client,
        tid,
        {1: at(d2, 9), 2: at(d2, 23, 59), 3: at(d1, 0, 1), 4: at(d1, 12), 5: at(d1, 13)},
        created=at(d2, 8),
    )
    history = ok(client.get(mall.url("/economy/history"), headers=mall.operator))["items"]
    got = ok(
        client.get(
            mall.url("/series/daily"),
            params={"from": (d0 - dt.timedelta(days=10)).isoformat(), "to": d0.isoformat()},
            headers=mall.member,
        )
    )
    assert got["timezone"] == "Asia/Shanghai"
    rows = got["days"]
    # clipped to the tenant's first day; today is there, carrying yesterday's end
    assert [r["date"] for r in rows] == [d2.isoformat(), d1.isoformat(), d0.isoformat()]
    first, second, third = rows
    assert (first["sales"], first["transactions"]) == ("200.00", 2)
    assert (first["price"], first["pool"]) == (history[1]["price"], history[1]["pool"])
    # the close of day -2 ran after midnight: its dividends count for day -2, its state for -1
    assert (
        first["dividends"]
        == ok(
            client.post(
                mall.url("/day-close"), json={"date": d2.isoformat()}, headers=mall.operator
            )
        )["paid"]
    )
    assert D(first["dividends"]) > 0
    assert first["recipients"] == 2
    assert (second["sales"], second["transactions"]) == ("90.00", 3)
    assert second["dividends"] is None
    assert (second["price"], second["pool"], second["circulating"]) == (
        history[4]["price"],
        history[4]["pool"],
        history[4]["circulating"],
    )
    assert second["dividend_fund"] == history[4]["dividend_fund"]
    assert (third["transactions"], third["sales"]) == (0, "0.00")
    assert (third["price"], third["pool"]) == (second["price"], second["pool"])

    # the default window ends today
    default = ok(client.get(mall.url("/series/daily"), headers=mall.operator))["days"]
    assert [r["date"] for r in default] == [r["date"] for r in rows]


def test_the_daily_series_refuses_bad_ranges(client: TestClient, mall: Mall) -> None:
    url = mall.url("/series/daily")
    d0 = today()
    error = assert_error(
        client.get(
            url,
            params={"from": d0.isoformat(), "to": (d0 - dt.timedelta(days=1)).isoformat()},
            headers=mall.operator,
        ),
        422,
        "invalid_command",
    )
    assert "after" in error["message"]
    error = assert_error(
        client.get(
            url,
            params={"from": (d0 - dt.timedelta(days=366)).isoformat(), "to": d0.isoformat()},
            headers=mall.operator,
        ),
        422,
        "invalid_command",
    )
    assert "366" in error["message"]
    for bad in ({"from": "2026-02-30"}, {"to": "today"}, {"from": "1"}):
        assert_error(client.get(url, params=bad, headers=mall.operator), 422, "validation_error")
    # the far ends of the calendar are answered, not crashed on
    edge = ok(client.get(url, params={"to": "0001-01-01"}, headers=mall.operator))
    assert edge["days"] == []
    edge = ok(
        client.get(url, params={"from": "9999-12-31", "to": "9999-12-31"}, headers=mall.operator)
    )
    assert edge["days"] == []
