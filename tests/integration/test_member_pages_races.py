"""A member's double tap, for real: the same confirmation form of the H5 exchange and withdrawal
pages posted by several threads at once, on SQLite and PostgreSQL.  What must hold: the
conversion is applied once, the withdrawal requested once, and every asset's ledger balances
still sum to zero."""

from __future__ import annotations

import html
import re
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tokenmall.asgi import create_app
from tokenmall.domain.economy import Purchase, Sell
from tokenmall.service import credentials, members, tenants, wallet
from tokenmall.settings import Settings
from tokenmall.store.db import read_only

SECRET = "integration-secret-0123456789abcdef-member"
TAPS = 6


def _hidden(page: str, form: str) -> dict[str, str]:
    body = page[page.index(f'id="{form}"') :]
    body = body[: body.index("</form>")]
    return {
        name: html.unescape(value)
        for name, value in re.findall(r'type="hidden" name="(\w+)" value="([^"]*)"', body)
    }


def _member_client(app: object, tid: int, code: str, member: str) -> TestClient:
    client = TestClient(app)  # type: ignore[arg-type]
    token, _ = credentials.issue_member_token(SECRET, tid, member, ttl_seconds=600)
    answer = client.get(f"/m/{code}/login", params={"token": token})
    assert answer.status_code == 200  # followed to home
    return client


def _balanced(app: object, tid: int) -> None:
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for (_, asset), amount in app.state.services.store.ledger.balances(tid).items():  # type: ignore[attr-defined]
        sums[asset] += amount
    assert sums
    assert all(v == 0 for v in sums.values()), dict(sums)


def test_a_double_tap_exchanges_and_withdraws_once(db_url: str, db_engine: Engine) -> None:
    app = create_app(
        Settings(db_url=db_url, admin_token="a" * 32, secret_key=SECRET, rate_limit_per_second=0),
        engine=db_engine,
    )
    ledger = app.state.services.store.ledger
    code = f"r-{uuid.uuid4().hex[:10]}"
    tid = tenants.create_tenant(ledger, code, name="Race").id
    with db_engine.begin() as conn:
        members.create_member(conn, tid, "ann")
    out = ledger.submit(
        tid,
        [
            ("buy", Purchase("o-1", "ann", Decimal(100))),
            ("sell", Sell("ann", Decimal(5))),
        ],
    )
    assert all(o.status != "rejected" for o in out), out
    client = _member_client(app, tid, code, "ann")
    cookies = dict(client.cookies)

    def tap(path: str, form: dict[str, str]) -> int:
        with TestClient(app, cookies=cookies) as one:
            return one.post(path, data=form).status_code

    with read_only(db_engine).connect() as conn:
        before = wallet.balance(conn, tid, "ann")
    page = client.get(f"/m/{code}/exchange", params={"dir": "ep", "amount": "3"}).text
    form = _hidden(page, "exchange-form")
    assert form["amount"] == "3"
    with ThreadPoolExecutor(TAPS) as pool:
        statuses = list(pool.map(lambda _: tap(f"/m/{code}/exchange", form), range(TAPS)))
    assert statuses == [200] * TAPS
    with read_only(db_engine).connect() as conn:
        after = wallet.balance(conn, tid, "ann")
    assert before.points - after.points == Decimal(3)
    assert after.stable > before.stable
    _balanced(app, tid)

    page = client.get(
        f"/m/{code}/withdrawals", params={"amount": "2.00", "account": "oid-ann"}
    ).text
    form = _hidden(page, "withdraw-form")
    with ThreadPoolExecutor(TAPS) as pool:
        statuses = list(pool.map(lambda _: tap(f"/m/{code}/withdrawals", form), range(TAPS)))
    assert statuses == [200] * TAPS
    with read_only(db_engine).connect() as conn:
        found = wallet.list_withdrawals(conn, tid, member="ann", limit=10, cursor=None).items
        final = wallet.balance(conn, tid, "ann")
    assert [(w.amount, w.status) for w in found] == [(Decimal("2.00"), "requested")]
    assert after.stable - final.stable == Decimal("2.00")
    _balanced(app, tid)
