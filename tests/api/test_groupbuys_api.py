"""Group buys over HTTP (both stores): an operator's offer, a member opening from a token and
another joining by the group's public id, places paid with the ordinary order routes, the
public draw record read without credentials and verified by ``tokenmall groupbuy verify``,
and every refusal answered with its code and nothing changed."""

from __future__ import annotations

import json
from pathlib import Path

from api_helpers import Mall, assert_error, ok
from fastapi.testclient import TestClient
from groupbuy_api_helpers import offer, pay_place
from typer.testing import CliRunner

from tokenmall.cli import app as cli_app


def _open(client: TestClient, mall: Mall, code: str, headers: dict[str, str], **body: str) -> dict:
    return ok(
        client.post(mall.url("/groupbuys/groups"), json={"offer": code, **body}, headers=headers),
        201,
    )


def _join(client: TestClient, mall: Mall, public_id: str, **body: str) -> dict:
    return ok(
        client.post(
            mall.url(f"/groupbuys/groups/{public_id}/places"), json=body, headers=mall.operator
        ),
        201,
    )


def test_a_member_opens_a_group_another_joins_both_pay_and_the_group_succeeds(
    client: TestClient, mall: Mall
) -> None:
    o = offer(client, mall)
    g = _open(client, mall, o["code"], mall.member)  # alice's token: she is the leader
    assert g["leader"] == "alice"
    assert g["state"] == "open"
    pay_place(client, mall, g, "alice")
    g = _join(client, mall, g["public_id"], member="bob")
    # alice sees bob's place but not his order number
    seen = ok(client.get(mall.url(f"/groupbuys/groups/{g['public_id']}"), headers=mall.member))
    assert [(p["member"], p["order"] is None) for p in seen["places"]] == [
        ("alice", False),
        ("bob", True),
    ]
    assert_error(
        client.post(
            mall.url(f"/orders/{g['places'][0]['order']}/settlement"), headers=mall.operator
        ),
        409,
        "order_state",
    )
    pay_place(client, mall, g, "bob")
    g = ok(client.get(mall.url(f"/groupbuys/groups/{g['public_id']}"), headers=mall.operator))
    assert g["state"] == "succeeded"
    assert [p["status"] for p in g["places"]] == ["confirmed", "confirmed"]
    mine = ok(client.get(mall.url("/groupbuys/groups"), headers=mall.member))
    assert [x["public_id"] for x in mine["items"]] == [g["public_id"]]
    # a third member is refused: the group is no longer open
    ok(client.post(mall.url("/members"), json={"code": "carol"}, headers=mall.operator), 201)
    r = client.post(
        mall.url(f"/groupbuys/groups/{g['public_id']}/places"),
        json={"member": "carol"},
        headers=mall.operator,
    )
    assert_error(r, 409, "group_state")


def test_a_full_group_refuses_a_place_before_any_order_exists(
    client: TestClient, mall: Mall
) -> None:
    o = offer(client, mall)
    g = _open(client, mall, o["code"], mall.operator, member="alice")
    _join(client, mall, g["public_id"], member="bob")
    ok(client.post(mall.url("/members"), json={"code": "carol"}, headers=mall.operator), 201)
    before = ok(client.get(mall.url("/orders"), headers=mall.operator))["items"]
    r = client.post(
        mall.url(f"/groupbuys/groups/{g['public_id']}/places"),
        json={"member": "carol"},
        headers=mall.operator,
    )
    assert_error(r, 409, "group_full")
    assert ok(client.get(mall.url("/orders"), headers=mall.operator))["items"] == before


def test_refusals_name_their_reason(client: TestClient, mall: Mall) -> None:
    o = offer(client, mall)
    body = {
        "code": "x",
        "sku_id": mall.sku_id,
        "mode": "merchant",
        "price": "70.00",
        "size": 3,
        "winners": 4,
    }
    r = client.post(mall.url("/groupbuys/offers"), json=body, headers=mall.operator)
    assert_error(r, 422, "invalid_command")
    r = client.post(
        mall.url("/groupbuys/offers"), json={**body, "price": 70}, headers=mall.operator
    )
    assert_error(r, 422, "validation_error")
    r = client.post(
        mall.url("/groupbuys/offers"),
        json={**body, "winners": 1, "code": o["code"]},
        headers=mall.operator,
    )
    assert_error(r, 409, "already_exists")
    r = client.post(mall.url("/groupbuys/offers"), json={**body, "winners": 1}, headers=mall.member)
    assert_error(r, 403, "forbidden")
    r = client.post(mall.url("/groupbuys/groups"), json={"offer": o["code"]}, headers=mall.merchant)
    assert_error(r, 403, "forbidden")
    r = client.post(
        mall.url("/groupbuys/groups"),
        json={"offer": o["code"], "member": "bob"},
        headers=mall.member,
    )
    assert_error(r, 403, "forbidden")
    r = client.post(
        mall.url("/groupbuys/groups"),
        json={"offer": "nope", "member": "bob"},
        headers=mall.operator,
    )
    assert_error(r, 404, "not_found")
    r = client.post(
        mall.url("/groupbuys/groups"),
        json={"offer": o["code"], "member": "zed"},
        headers=mall.operator,
    )
    assert_error(r, 422, "unknown_member")
    assert ok(client.get(mall.url("/groupbuys/groups"), headers=mall.operator))["items"] == []


def test_the_public_draw_record_needs_no_credentials_and_the_cli_verifies_it(
    client: TestClient, mall: Mall, tmp_path: Path
) -> None:
    o = offer(client, mall, mode="merchant", size=2, winners=1, subsidy="2.00")
    g = _open(client, mall, o["code"], mall.operator, member="alice")
    before = ok(client.get(f"/v1/groupbuys/groups/{g['public_id']}/draw"))
    assert before["seed"] is None
    assert before["commitment"] == g["commitment"]
    pay_place(client, mall, g, "alice")
    g = _join(client, mall, g["public_id"], member="bob")
    pay_place(client, mall, g, "bob")
    record = ok(client.get(f"/v1/groupbuys/groups/{g['public_id']}/draw"))
    assert record["commitment"] == before["commitment"]
    assert record["candidates"] == ["alice", "bob"]
    file = tmp_path / "draw.json"
    file.write_text(json.dumps(record), encoding="utf-8")
    done = CliRunner().invoke(cli_app, ["groupbuy", "verify", str(file)])
    assert done.exit_code == 0, done.output
    assert done.output.split() == record["winners"]
    # a record whose winners were swapped for the other member does not verify
    loser = "bob" if record["winners"] == ["alice"] else "alice"
    file.write_text(json.dumps({**record, "winners": [loser]}), encoding="utf-8")
    assert CliRunner().invoke(cli_app, ["groupbuy", "verify", str(file)]).exit_code == 2
    assert_error(client.get("/v1/groupbuys/groups/gnope/draw"), 404, "not_found")


def test_a_campaign_draw_over_http_and_its_public_record(client: TestClient, mall: Mall) -> None:
    camp = ok(
        client.post(
            mall.url("/groupbuys/campaigns"),
            json={"code": "c9", "winners": 1},
            headers=mall.operator,
        ),
        201,
    )
    o = offer(client, mall, mode="lottery", campaign="c9", compensation="5.00")
    g = _open(client, mall, o["code"], mall.operator, member="alice")
    pay_place(client, mall, g, "alice")
    g = _join(client, mall, g["public_id"], member="bob")
    pay_place(client, mall, g, "bob")
    waiting = ok(client.get(mall.url("/groupbuys/campaigns/c9"), headers=mall.operator))
    assert waiting["waiting"] == 1
    drawn = ok(client.post(mall.url("/groupbuys/campaigns/c9/draw"), headers=mall.operator))
    assert drawn["commitment"] == camp["commitment"]
    assert drawn["winners"] == [g["public_id"]]
    public = ok(client.get(f"/v1/groupbuys/campaigns/{camp['public_id']}/draws/1"))
    assert public == drawn
    assert_error(
        client.get(f"/v1/groupbuys/campaigns/{camp['public_id']}/draws/2"), 404, "not_found"
    )
