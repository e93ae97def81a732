"""An operator closing a group-buy offer, and activity offers in a campaign, over HTTP (both
stores).  Closing: no new group opens of the offer, groups already open run to their end.
An activity offer may name a campaign: its groups belong to the campaign (listed with it) but
draw among their own members when they fill, never in the campaign's lottery draw."""

from __future__ import annotations

from typing import Any

from api_helpers import Mall, assert_error, ok
from fastapi.testclient import TestClient
from groupbuy_api_helpers import offer, pay_place

from tokenmall.domain import draw


def _open(client: TestClient, mall: Mall, code: str, member: str) -> Any:
    body = {"offer": code, "member": member}
    return ok(client.post(mall.url("/groupbuys/groups"), json=body, headers=mall.operator), 201)


def _join(client: TestClient, mall: Mall, public_id: str, member: str) -> Any:
    return ok(
        client.post(
            mall.url(f"/groupbuys/groups/{public_id}/places"),
            json={"member": member},
            headers=mall.operator,
        ),
        201,
    )


def _group(client: TestClient, mall: Mall, public_id: str) -> Any:
    return ok(client.get(mall.url(f"/groupbuys/groups/{public_id}"), headers=mall.operator))


def _codes(page: Any) -> list[str]:
    return [o["code"] for o in page["items"]]


def test_a_closed_offer_opens_no_group_and_its_open_groups_run_to_their_end(
    client: TestClient, mall: Mall
) -> None:
    o = offer(client, mall, size=2)
    g = _open(client, mall, o["code"], "alice")
    pay_place(client, mall, g, "alice")
    url = mall.url(f"/groupbuys/offers/{o['code']}/close")
    closed = ok(client.post(url, headers=mall.operator))
    assert closed["active"] is False
    assert closed["closed_at"] is not None
    again = ok(client.post(url, headers=mall.operator))  # closing again changes nothing
    assert again == closed
    # no new group: refused before any order exists
    r = client.post(mall.url("/groupbuys/groups"), json={"offer": o["code"]}, headers=mall.member)
    assert_error(r, 409, "group_state")
    groups = ok(client.get(mall.url("/groupbuys/groups"), headers=mall.operator))["items"]
    assert [x["public_id"] for x in groups] == [g["public_id"]]
    # the open group still takes bob and succeeds
    g = _join(client, mall, g["public_id"], "bob")
    pay_place(client, mall, g, "bob")
    assert _group(client, mall, g["public_id"])["state"] == "succeeded"
    # members see the offers they can still open
    other = offer(client, mall, size=2)
    open_ = ok(client.get(mall.url("/groupbuys/offers?active=true"), headers=mall.member))
    assert _codes(open_) == [other["code"]]
    shut = ok(client.get(mall.url("/groupbuys/offers?active=false"), headers=mall.operator))
    assert _codes(shut) == [o["code"]]


def test_closing_an_offer_is_the_operators_and_a_bad_code_is_404(
    client: TestClient, mall: Mall
) -> None:
    o = offer(client, mall)
    url = mall.url(f"/groupbuys/offers/{o['code']}/close")
    assert_error(client.post(url, headers=mall.member), 403, "forbidden")
    assert_error(client.post(url, headers=mall.merchant), 403, "forbidden")
    assert_error(
        client.post(mall.url("/groupbuys/offers/nope/close"), headers=mall.operator),
        404,
        "not_found",
    )
    listed = ok(client.get(mall.url("/groupbuys/offers"), headers=mall.operator))["items"]
    assert [(x["code"], x["active"]) for x in listed] == [(o["code"], True)]


def test_an_activity_offer_in_a_campaign_draws_its_own_members_not_in_the_lottery(
    client: TestClient, mall: Mall
) -> None:
    camp = ok(
        client.post(
            mall.url("/groupbuys/campaigns"),
            json={"code": "spring", "winners": 1},
            headers=mall.operator,
        ),
        201,
    )
    act = offer(client, mall, mode="activity", size=2, winners=1, campaign="spring")
    lot = offer(client, mall, mode="lottery", size=2, campaign="spring", compensation="5.00")
    assert act["campaign"] == "spring"
    in_campaign = ok(
        client.get(mall.url("/groupbuys/offers?campaign=spring"), headers=mall.operator)
    )
    assert _codes(in_campaign) == [act["code"], lot["code"]]
    # the activity group commits to its own seed when it opens, and draws when it fills
    ga = _open(client, mall, act["code"], "alice")
    assert ga["campaign"] == "spring"
    assert ga["commitment"] not in (None, camp["commitment"])
    pay_place(client, mall, ga, "alice")
    ga = _join(client, mall, ga["public_id"], "bob")
    pay_place(client, mall, ga, "bob")
    ga = _group(client, mall, ga["public_id"])
    assert ga["state"] == "succeeded"
    record = ok(client.get(f"/v1/groupbuys/groups/{ga['public_id']}/draw"))
    assert record["candidates"] == ["alice", "bob"]
    assert record["k"] == 1
    assert draw.verify(record) == record["winners"] == ga["winners"]
    # a lottery group of the same campaign waits for the campaign's draw
    gl = _open(client, mall, lot["code"], "alice")
    pay_place(client, mall, gl, "alice")
    gl = _join(client, mall, gl["public_id"], "bob")
    pay_place(client, mall, gl, "bob")
    waiting = ok(
        client.get(mall.url("/groupbuys/groups?campaign=spring&state=full"), headers=mall.operator)
    )["items"]
    assert [x["public_id"] for x in waiting] == [gl["public_id"]]
    both = ok(client.get(mall.url("/groupbuys/groups?campaign=spring"), headers=mall.operator))
    assert [x["public_id"] for x in both["items"]] == [ga["public_id"], gl["public_id"]]
    assert (
        ok(client.get(mall.url("/groupbuys/campaigns/spring"), headers=mall.operator))["waiting"]
        == 1
    )
    drawn = ok(client.post(mall.url("/groupbuys/campaigns/spring/draw"), headers=mall.operator))
    assert drawn["candidates"] == [gl["public_id"]]  # the activity group is not a candidate
    listed = ok(client.get(mall.url("/groupbuys/campaigns/spring/draws"), headers=mall.operator))
    assert listed == [drawn]
    assert ok(client.get(f"/v1/groupbuys/campaigns/{camp['public_id']}/draws/1")) == drawn
    assert_error(
        client.get(mall.url("/groupbuys/campaigns/spring/draws"), headers=mall.member),
        403,
        "forbidden",
    )
    assert _group(client, mall, ga["public_id"])["winners"] == ga["winners"]  # unchanged
    assert_error(
        client.get(mall.url("/groupbuys/groups?campaign=nope"), headers=mall.operator),
        404,
        "not_found",
    )
