"""NFG resources in a mall for the route-table tests: a collection, a token, a listing and an
anchor, so every NFG route template can be filled with ids that exist."""

from __future__ import annotations

from decimal import Decimal

from api_helpers import Mall, ok
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tokenmall.domain.commands import Join, RewardGrant

# the routes that take no credential: anyone may read a token's metadata and history and
# check a proof (docs/API.md, "NFG"); they answer the same whoever asks
NFG_PUBLIC_SUFFIXES = ("/metadata.json", "/provenance", "/proof")


def give_sp(app: FastAPI, mall: Mall, member: str, amount: str) -> int:
    """``member`` joins the mall (if new) and is granted ``amount`` SP; the tenant's id."""
    store = app.state.services.store
    tid: int = store.ledger.tenant_id(mall.code)
    with store.tenant_tx(tid) as tx:
        tx.apply_one(f"join:{member}:None", Join(member, None))
        tx.apply_one(f"grant:{member}:{amount}", RewardGrant(member, Decimal(amount), "test"))
    return tid


def nfg_path_values(client: TestClient, mall: Mall) -> dict[str, str]:
    ok(
        client.post(
            mall.url("/nfg/collections"),
            json={
                "code": "ISO",
                "name": "Isolation",
                "max_supply": 10,
                "price": "1.00",
                "transfer_policy": "open",
            },
            headers=mall.operator,
        ),
        201,
    )
    ok(
        client.post(
            mall.url("/nfg/collections/ISO/airdrop"),
            json={"members": [mall.member_code]},
            headers=mall.operator,
        ),
        201,
    )
    listing = ok(
        client.post(
            mall.url("/nfg/listings"),
            json={"code": "ISO", "serial": 1, "price": "5.00"},
            headers=mall.member,
        ),
        201,
    )
    ok(client.post(mall.url("/nfg/anchors"), headers=mall.operator), 201)
    return {"code": "ISO", "serial": "1", "listing_id": str(listing["id"]), "seq": "1"}
