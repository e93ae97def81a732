"""A collection's next serial bought with an idempotency key (``Idempotency-Key`` over HTTP, a
one-time form key on the member's page), on SQLite and PostgreSQL: a retry with the key answers
the token it bought and takes nothing again; another key buys another; the key cannot be
reused for another collection; two requests with one key at once buy one token."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

from api_helpers import Mall, assert_error, ok
from fastapi import FastAPI
from fastapi.testclient import TestClient
from nfg_helpers_api import give_sp

from tokenmall.domain.economy import Asset
from tokenmall.service import wallet
from tokenmall.service.nfg import tokens
from tokenmall.store.db import read_only


def _setup(app: FastAPI, client: TestClient, mall: Mall) -> int:
    """Two SP collections at 10.00 and 100.00 SP in the member's wallet; the tenant's id."""
    tid = give_sp(app, mall, mall.member_code, "100.00")
    for code in ("KA", "KB"):
        body: dict[str, Any] = {
            "code": code,
            "name": code,
            "max_supply": 100,
            "price": "10.00",
            "accepted": ["SP"],
        }
        ok(client.post(mall.url("/nfg/collections"), json=body, headers=mall.operator), 201)
    return tid


def _sp(app: FastAPI, tid: int, member: str) -> Decimal:
    with read_only(app.state.services.engine).connect() as conn:
        return wallet.balance(conn, tid, member).stable


def _buy(client: TestClient, mall: Mall, code: str, key: str | None) -> Any:
    headers = dict(mall.member) | ({"Idempotency-Key": key} if key else {})
    return client.post(
        mall.url(f"/nfg/collections/{code}/mint"), json={"asset": "SP"}, headers=headers
    )


def test_a_key_buys_once(app: FastAPI, client: TestClient, mall: Mall) -> None:
    tid = _setup(app, client, mall)
    first = ok(_buy(client, mall, "KA", "tap-1"), 201)
    again = ok(_buy(client, mall, "KA", "tap-1"), 201)
    assert (first["serial"], again["serial"]) == (1, 1)
    assert _sp(app, tid, mall.member_code) == Decimal("90.00")
    other = ok(_buy(client, mall, "KA", "tap-2"), 201)
    assert other["serial"] == 2
    assert _sp(app, tid, mall.member_code) == Decimal("80.00")
    # the key bought a KA token: it cannot buy a KB one
    assert_error(_buy(client, mall, "KB", "tap-1"), 409, "idempotency_conflict")
    # without a key, each call buys (two purchases are two purchases)
    assert ok(_buy(client, mall, "KB", None), 201)["serial"] == 1
    assert ok(_buy(client, mall, "KB", None), 201)["serial"] == 2
    assert _sp(app, tid, mall.member_code) == Decimal("60.00")
    # a bad key is refused before anything moves
    assert _buy(client, mall, "KA", "has space").status_code == 422
    assert _sp(app, tid, mall.member_code) == Decimal("60.00")


def test_two_requests_with_one_key_at_once_buy_one_token(
    app: FastAPI, client: TestClient, mall: Mall
) -> None:
    tid = _setup(app, client, mall)
    store = app.state.services.store
    results: list[tuple[int, bool]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def buy() -> None:
        start.wait()
        try:
            with store.tenant_tx(tid) as tx:
                results.append(
                    tokens.purchase(tx, "KA", mall.member_code, Asset.SP, key="double-tap")
                )
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=buy) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results) == [(1, False), (1, True), (1, True), (1, True)]
    assert _sp(app, tid, mall.member_code) == Decimal("90.00")
    with read_only(app.state.services.engine).connect() as conn:
        owned = tokens.tokens_of(conn, tid, mall.member_code)
    assert [(t.code, t.serial) for t in owned] == [("KA", 1)]
