"""NFG over HTTP on both stores: the ERC-721 rules and the transfer policy with their errors,
the exchange, the public metadata and provenance, anchors and proofs."""

from __future__ import annotations

from typing import Any

from api_helpers import Mall, assert_error, bearer, ok
from fastapi import FastAPI
from fastapi.testclient import TestClient
from nfg_helpers_api import give_sp

from tokenmall.service.nfg import log


def _collection(client: TestClient, mall: Mall, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": "BLACK",
        "name": "Black Card",
        "max_supply": 5000,
        "price": "999.00",
        "kind": "right",
        "uses": 12,
        "accepted": ["SP", "EP", "CNY"],
        "royalty_bps": 500,
        "fee_bps": 250,
        "fee_to_pool": "0.5",
        "transfer_policy": "open",
        "description": "Card {serial}",
        "attributes": {"Tier": "Black"},
    }
    body.update(over)
    return ok(client.post(mall.url("/nfg/collections"), json=body, headers=mall.operator), 201)


def _bob(client: TestClient, mall: Mall) -> dict[str, str]:
    token = ok(client.post(mall.url("/members/bob/tokens"), json={}, headers=mall.operator), 201)
    return bearer(token["token"])


def test_erc721_rules_and_errors(app: FastAPI, client: TestClient, mall: Mall) -> None:
    _collection(client, mall)
    bob = _bob(client, mall)
    give_sp(app, mall, "alice", "2000.00")
    tok = ok(
        client.post(
            mall.url("/nfg/collections/BLACK/mint"), json={"asset": "SP"}, headers=mall.member
        ),
        201,
    )
    assert (tok["serial"], tok["owner"], tok["uses_left"]) == (1, "alice", 12)
    url = mall.url("/nfg/tokens/BLACK/1")
    # not owner nor approved
    r = client.post(url + "/transfer", json={"to": "bob", "from": "alice"}, headers=bob)
    assert_error(r, 403, "erc721_insufficient_approval")
    # the wrong from
    r = client.post(url + "/transfer", json={"to": "bob", "from": "bob"}, headers=mall.member)
    assert_error(r, 409, "erc721_incorrect_owner")
    # to oneself
    r = client.post(url + "/transfer", json={"to": "alice"}, headers=mall.member)
    assert_error(r, 422, "nfg_self_transfer")
    # no such token
    r = client.post(mall.url("/nfg/tokens/BLACK/99/redeem"), headers=mall.member)
    assert_error(r, 404, "erc721_nonexistent_token")
    r = client.post(mall.url("/nfg/tokens/NOPE/1/redeem"), headers=mall.member)
    assert_error(r, 404, "not_found")
    # approve bob, who may then move it; the approval is cleared by the transfer
    ok(client.post(url + "/approve", json={"to": "bob"}, headers=mall.member))
    moved = ok(client.post(url + "/transfer", json={"to": "bob", "from": "alice"}, headers=bob))
    assert (moved["owner"], moved["approved"]) == ("bob", None)
    r = client.post(url + "/transfer", json={"to": "alice", "from": "bob"}, headers=mall.member)
    assert_error(r, 403, "erc721_insufficient_approval")
    # operator for all
    r = client.post(
        mall.url("/nfg/collections/BLACK/operators"),
        json={"operator": "alice", "approved": True},
        headers=bob,
    )
    assert r.status_code == 204, r.text
    back = ok(
        client.post(url + "/transfer", json={"to": "alice", "from": "bob"}, headers=mall.member)
    )
    assert back["owner"] == "alice"
    # my tokens, redeem, public metadata and provenance without credentials
    redeemed = ok(client.post(url + "/redeem", headers=mall.member))
    assert redeemed["uses_left"] == 11
    mine = ok(client.get(mall.url("/nfg/me/tokens"), headers=mall.member))
    assert [(t["code"], t["serial"]) for t in mine] == [("BLACK", 1)]
    meta = ok(client.get(url + "/metadata.json"))
    assert meta["name"] == "BLACK #1"
    assert meta["description"] == "Card 1"
    assert {"trait_type": "Tier", "value": "Black"} in meta["attributes"]
    prov = ok(client.get(url + "/provenance"))
    assert [(e["kind"], e["from"], e["to"]) for e in prov] == [
        ("mint", None, "alice"),
        ("transfer", "alice", "bob"),
        ("transfer", "bob", "alice"),
        ("redeem", "alice", "alice"),
    ]
    # burn: gone from metadata, provenance kept
    ok(client.post(url + "/burn", headers=mall.member))
    assert_error(client.get(url + "/metadata.json"), 404, "erc721_nonexistent_token")
    assert ok(client.get(url + "/provenance"))[-1]["kind"] == "burn"
    # anchors and an offline-checkable proof
    anchor = ok(client.post(mall.url("/nfg/anchors"), headers=mall.operator), 201)
    assert (anchor["first_seq"], anchor["last_seq"]) == (1, 5)
    proof = ok(client.get(mall.url("/nfg/events/3/proof")))
    assert log.check_proof(proof)
    assert proof["index"] == 2
    assert not log.check_proof(dict(proof, index=3))
    assert_error(client.post(mall.url("/nfg/anchors"), headers=mall.operator), 422)


def test_policy_and_exchange(app: FastAPI, client: TestClient, mall: Mall) -> None:
    _collection(client, mall, min_holding_seconds=3600)
    _collection(client, mall, code="GIFT", transfer_policy="gift_only", kind="item", uses=0)
    bob = _bob(client, mall)
    give_sp(app, mall, "bob", "2000.00")
    ok(
        client.post(
            mall.url("/nfg/collections/BLACK/airdrop"),
            json={"members": ["alice"]},
            headers=mall.operator,
        ),
        201,
    )
    ok(
        client.post(
            mall.url("/nfg/collections/GIFT/airdrop"),
            json={"members": ["alice"]},
            headers=mall.operator,
        ),
        201,
    )
    r = client.post(
        mall.url("/nfg/tokens/BLACK/1/transfer"), json={"to": "bob"}, headers=mall.member
    )
    assert_error(r, 409, "nfg_holding_period")
    r = client.post(
        mall.url("/nfg/listings"),
        json={"code": "GIFT", "serial": 1, "price": "5.00"},
        headers=mall.member,
    )
    assert_error(r, 409, "nfg_exchange_closed")
    ok(
        client.post(
            mall.url("/nfg/tokens/GIFT/1/transfer"), json={"to": "bob"}, headers=mall.member
        )
    )
    # BLACK: the operator sets the holding time aside by creating an open one without it
    _collection(client, mall, code="OPEN", kind="item", uses=0)
    ok(
        client.post(
            mall.url("/nfg/collections/OPEN/airdrop"),
            json={"members": ["alice"]},
            headers=mall.operator,
        ),
        201,
    )
    listing = ok(
        client.post(
            mall.url("/nfg/listings"),
            json={"code": "OPEN", "serial": 1, "price": "1288.00"},
            headers=mall.member,
        ),
        201,
    )
    r = client.post(
        mall.url("/nfg/listings"),
        json={"code": "OPEN", "serial": 1, "price": "1300.00"},
        headers=mall.member,
    )
    assert_error(r, 409, "nfg_already_listed")
    assert_error(client.post(mall.url(f"/nfg/listings/{listing['id']}/cancel"), headers=bob), 403)
    assert [x["id"] for x in ok(client.get(mall.url("/nfg/listings"), headers=bob))] == [
        listing["id"]
    ]
    # the operator halts trading: the open listing cannot be bought
    ok(
        client.post(
            mall.url("/nfg/collections/OPEN/modes"),
            json={"exchange_mode": "off"},
            headers=mall.operator,
        )
    )
    buy = mall.url(f"/nfg/listings/{listing['id']}/buy")
    assert_error(client.post(buy, headers=bob), 409, "nfg_exchange_closed")
    ok(
        client.post(
            mall.url("/nfg/collections/OPEN/modes"),
            json={"exchange_mode": "open"},
            headers=mall.operator,
        )
    )
    sale = ok(client.post(buy, headers=bob))
    assert (sale["fee"], sale["pool_share"], sale["royalty"], sale["proceeds"]) == (
        "32.20",
        "16.10",
        "64.40",
        "1191.40",
    )
    assert_error(client.post(buy, headers=bob), 409, "nfg_listing_closed")
    assert_error(
        client.post(mall.url("/nfg/listings/999/buy"), headers=bob), 404, "nfg_unknown_listing"
    )
    # a collection whose rules contradict themselves is refused whole
    r = client.post(
        mall.url("/nfg/collections"),
        json={
            "code": "BAD",
            "name": "Bad",
            "max_supply": 1,
            "price": "1.00",
            "royalty_bps": 6000,
            "fee_bps": 6000,
        },
        headers=mall.operator,
    )
    assert_error(r, 422, "invalid_parameter")
    # members may not create collections; duplicates conflict
    assert_error(client.post(mall.url("/nfg/collections"), json={}, headers=mall.member), 403)
    r = client.post(
        mall.url("/nfg/collections"),
        json={"code": "OPEN", "name": "x", "max_supply": 1, "price": "1.00"},
        headers=mall.operator,
    )
    assert_error(r, 409, "already_exists")


def test_buy_a_listing_with_cny(app: FastAPI, client: TestClient, mall: Mall) -> None:
    """POST /listings/{id}/order reserves the listing for the caller's order; paying it as any
    order sells the token (the seller paid in SP, less fee and royalty); a second order, a
    cancel and an SP buy meanwhile answer 409."""
    _collection(client, mall, code="OPEN", kind="item", uses=0)
    bob = _bob(client, mall)
    give_sp(app, mall, "bob", "10.00")
    ok(
        client.post(
            mall.url("/nfg/collections/OPEN/airdrop"),
            json={"members": ["alice"]},
            headers=mall.operator,
        ),
        201,
    )
    listing = ok(
        client.post(
            mall.url("/nfg/listings"),
            json={"code": "OPEN", "serial": 1, "price": "1288.00"},
            headers=mall.member,
        ),
        201,
    )
    url = mall.url(f"/nfg/listings/{listing['id']}")
    res = ok(client.post(url + "/order", headers=bob), 201)
    ref = res["order"]["ref"]
    assert (res["order"]["status"], res["order"]["total"], res["order"]["lines"]) == (
        "pending_payment",
        "1288.00",
        [],
    )
    assert (res["listing"]["state"], res["listing"]["order"]) == ("open", ref)
    assert ok(client.post(url + "/order", headers=bob), 201)["order"]["ref"] == ref  # the same
    assert_error(client.post(url + "/cancel", headers=mall.member), 409, "nfg_listing_reserved")
    assert_error(client.post(url + "/buy", headers=bob), 409, "nfg_listing_reserved")
    assert_error(client.post(url + "/order", headers=mall.member), 409, "nfg_listing_reserved")
    assert_error(client.post(url + "/order", headers=mall.operator), 403)
    assert_error(
        client.post(mall.url("/nfg/listings/999/order"), headers=bob), 404, "nfg_unknown_listing"
    )
    # pay the order as any other (CNY through the sandbox); the payment sells the token
    pay = ok(
        client.post(
            mall.url(f"/orders/{ref}/payments"), json={"provider": "sandbox"}, headers=mall.operator
        ),
        201,
    )
    ok(
        client.post(
            mall.url(f"/payments/sandbox/intents/{pay['intent_id']}/complete"),
            json={},
            headers=mall.operator,
        )
    )
    order = ok(client.get(mall.url(f"/orders/{ref}"), headers=mall.operator))
    assert order["status"] == "settled"
    mine = ok(client.get(mall.url("/nfg/me/tokens"), headers=bob))
    assert [(t["code"], t["serial"]) for t in mine] == [("OPEN", 1)]
    sale = ok(client.get(mall.url("/nfg/tokens/OPEN/1/provenance")))[-1]
    assert (sale["kind"], sale["from"], sale["to"], sale["asset"]) == (
        "sale",
        "alice",
        "bob",
        "CNY",
    )
    assert ok(client.get(mall.url("/nfg/listings"), headers=bob)) == []
    # alice received 1,288.00 - 32.20 fee - 64.40 royalty as SP; a completed trade is final
    store = app.state.services.store
    tid = store.ledger.tenant_id(mall.code)
    assert store.ledger.members(tid)["alice"]["stable"] == "1191.4"
    r = client.post(
        mall.url(f"/orders/{ref}/refunds"), json={"refund_id": "r-1"}, headers=mall.operator
    )
    assert_error(r, 409, "order_state")
