"""The previews the member pages show, over HTTP: a listing's settlement before the buy is the
buy's own, and a primary purchase's cost in SP or EP is what the mint takes."""

from __future__ import annotations

from decimal import Decimal

from api_helpers import Mall, assert_error, bearer, ok
from fastapi import FastAPI
from fastapi.testclient import TestClient
from nfg_helpers_api import give_sp

from tokenmall.domain.commands import Join, Purchase
from tokenmall.service import wallet
from tokenmall.store.db import read_only


def test_the_sale_preview_is_what_the_buy_moves(
    app: FastAPI, client: TestClient, mall: Mall
) -> None:
    give_sp(app, mall, "bob", "100.00")
    bob = bearer(
        ok(client.post(mall.url("/members/bob/tokens"), json={}, headers=mall.operator), 201)[
            "token"
        ]
    )
    body = {
        "code": "PV",
        "name": "Preview",
        "max_supply": 5,
        "price": "10.00",
        "royalty_bps": 500,
        "fee_bps": 250,
        "fee_to_pool": "0.5",
        "transfer_policy": "open",
    }
    ok(client.post(mall.url("/nfg/collections"), json=body, headers=mall.operator), 201)
    ok(
        client.post(
            mall.url("/nfg/collections/PV/airdrop"),
            json={"members": ["alice"]},
            headers=mall.operator,
        ),
        201,
    )
    listing = ok(
        client.post(
            mall.url("/nfg/listings"),
            json={"code": "PV", "serial": 1, "price": "33.33"},
            headers=mall.member,
        ),
        201,
    )
    preview = ok(client.get(mall.url(f"/nfg/listings/{listing['id']}/preview"), headers=bob))
    assert (preview["price"], preview["fee"], preview["royalty"], preview["proceeds"]) == (
        "33.33",
        "0.83",
        "1.66",
        "30.84",
    )
    sale = ok(client.post(mall.url(f"/nfg/listings/{listing['id']}/buy"), headers=bob))
    assert sale == preview
    assert_error(client.get(mall.url("/nfg/listings/999/preview"), headers=bob), 404)
    # an operator is no buyer
    assert_error(
        client.get(mall.url(f"/nfg/listings/{listing['id']}/preview"), headers=mall.operator), 403
    )


def test_the_mint_cost_is_what_the_mint_takes(app: FastAPI, client: TestClient, mall: Mall) -> None:
    store = app.state.services.store
    tid = store.ledger.tenant_id(mall.code)
    with store.tenant_tx(tid) as tx:
        tx.apply_one("join:alice:None", Join("alice", None))
        tx.apply_one("buy:alice", Purchase("o-1", "alice", Decimal("300")))
    body = {
        "code": "EPC",
        "name": "For points",
        "max_supply": 5,
        "price": "7.77",
        "accepted": ["EP", "SP"],
    }
    ok(client.post(mall.url("/nfg/collections"), json=body, headers=mall.operator), 201)
    sp = ok(client.get(mall.url("/nfg/collections/EPC/cost?asset=SP"), headers=mall.member))
    assert sp == {"asset": "SP", "amount": "7.77"}
    ep = ok(client.get(mall.url("/nfg/collections/EPC/cost?asset=EP"), headers=mall.member))
    with read_only(app.state.services.engine).connect() as conn:
        before = wallet.balance(conn, tid, "alice").points
    ok(
        client.post(
            mall.url("/nfg/collections/EPC/mint"), json={"asset": "EP"}, headers=mall.member
        ),
        201,
    )
    with read_only(app.state.services.engine).connect() as conn:
        after = wallet.balance(conn, tid, "alice").points
    assert before - after == Decimal(ep["amount"]) > 0
    assert_error(
        client.get(mall.url("/nfg/collections/EPC/cost?asset=CNY"), headers=mall.member), 422
    )
    assert_error(
        client.get(mall.url("/nfg/collections/NOPE/cost?asset=SP"), headers=mall.member), 404
    )
