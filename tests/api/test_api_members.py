"""Members over HTTP: sign-up with an invite code, referral links, tokens, ledger figures."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from api_helpers import ADMIN, Mall, assert_error, bearer, ok
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tokenmall.domain.economy import Purchase
from tokenmall.service.members import INVITE_ALPHABET


def test_sign_up_with_and_without_an_invite_code(client: TestClient, mall: Mall) -> None:
    carol = ok(
        client.post(
            mall.url("/members"),
            json={"code": "carol", "display_name": "Carol", "invite_code": mall.invite_code},
            headers=mall.operator,
        ),
        201,
    )
    assert carol["referrer"] == "alice"
    assert carol["display_name"] == "Carol"
    assert len(carol["invite_code"]) == 8
    assert set(carol["invite_code"]) <= set(INVITE_ALPHABET)
    assert carol["ledger"] == {
        "points": "0",
        "stable": "0.00",
        "quota_remaining": "0.00",
        "spent": "0.00",
        "dividends": "0.00",
        "exited": False,
    }
    dave = ok(client.post(mall.url("/members"), json={"code": "dave"}, headers=ADMIN), 201)
    assert dave["referrer"] is None
    assert dave["invite_code"] != carol["invite_code"]
    # invite codes are read aloud: lower case works too
    erin = ok(
        client.post(
            mall.url("/members"),
            json={"code": "erin", "invite_code": dave["invite_code"].lower()},
            headers=mall.operator,
        ),
        201,
    )
    assert erin["referrer"] == "dave"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"code": "alice"}, 409, "already_exists"),
        ({"code": "zed", "invite_code": "NOPE2345"}, 422, "invalid_command"),
        ({"code": "has space"}, 422, "validation_error"),
        ({"code": ""}, 422, "validation_error"),
        ({"code": "zed", "display_name": "x" * 201}, 422, "validation_error"),
        ({"code": "zed", "referrer": "alice"}, 422, "validation_error"),
        ({"code": 7}, 422, "validation_error"),
    ],
)
def test_invalid_sign_ups_are_refused(
    client: TestClient, mall: Mall, body: dict[str, object], status: int, code: str
) -> None:
    assert_error(client.post(mall.url("/members"), json=body, headers=mall.operator), status, code)


def test_bind_a_referrer_once(client: TestClient, mall: Mall) -> None:
    dave = ok(client.post(mall.url("/members"), json={"code": "dave"}, headers=mall.operator), 201)
    # a member binds their own referrer (e.g. after scanning an invite poster)
    token = ok(client.post(mall.url("/members/dave/tokens"), json={}, headers=mall.operator), 201)
    dave_auth = bearer(token["token"])
    bound = ok(
        client.patch(
            mall.url("/members/dave"),
            json={"referrer_invite_code": mall.invite_code, "display_name": "Dave"},
            headers=dave_auth,
        )
    )
    assert bound["referrer"] == "alice"
    assert bound["display_name"] == "Dave"
    # the same request again changes nothing; another referrer is refused
    assert (
        ok(
            client.patch(
                mall.url("/members/dave"),
                json={"referrer_invite_code": mall.invite_code},
                headers=dave_auth,
            )
        )["referrer"]
        == "alice"
    )
    bob = ok(client.get(mall.url("/members/bob"), headers=mall.operator))
    r = client.patch(
        mall.url("/members/dave"),
        json={"referrer_invite_code": bob["invite_code"]},
        headers=mall.operator,
    )
    assert_error(r, 409, "conflict")
    # self-referral and loops are refused: alice referred bob, bob cannot refer alice
    r = client.patch(
        mall.url("/members/dave"),
        json={"referrer_invite_code": dave["invite_code"]},
        headers=mall.operator,
    )
    assert_error(r, 409, "conflict")
    r = client.patch(
        mall.url("/members/alice"),
        json={"referrer_invite_code": bob["invite_code"]},
        headers=mall.operator,
    )
    assert_error(r, 422, "invalid_command")
    eve = ok(client.post(mall.url("/members"), json={"code": "eve"}, headers=mall.operator), 201)
    r = client.patch(
        mall.url("/members/eve"),
        json={"referrer_invite_code": eve["invite_code"]},
        headers=mall.operator,
    )
    assert_error(r, 422, "invalid_command")
    # display name can be cleared
    cleared = ok(
        client.patch(mall.url("/members/dave"), json={"display_name": None}, headers=dave_auth)
    )
    assert cleared["display_name"] is None
    assert cleared["referrer"] == "alice"


def test_a_member_cannot_change_another(client: TestClient, mall: Mall) -> None:
    r = client.patch(mall.url("/members/bob"), json={"display_name": "x"}, headers=mall.member)
    assert_error(r, 404, "not_found")
    r = client.patch(mall.url("/members/bob"), json={"display_name": "x"}, headers=mall.merchant)
    assert_error(r, 403, "forbidden")
    assert_error(client.get(mall.url("/members/bob"), headers=mall.merchant), 403, "forbidden")


def test_member_reads_their_ledger_figures(client: TestClient, app: FastAPI, mall: Mall) -> None:
    ctx = app.state.tokenmall
    tid = ctx.tenant_id(mall.code)
    bob = ok(client.get(mall.url("/members/bob"), headers=mall.operator))
    # the order flow passes the registry's referrer to the engine
    order = Purchase(order="o1", member="bob", amount=Decimal(100), referrer=bob["referrer"])
    assert ctx.ledger.submit(tid, [("o1", order)])[0].status == "applied"
    bob = ok(client.get(mall.url("/members/bob"), headers=mall.operator))["ledger"]
    assert bob["points"] == "21"
    assert bob["spent"] == "100.00"
    assert bob["quota_remaining"] == "200.00"
    alice = ok(client.get(mall.url("/me"), headers=mall.member))["ledger"]
    # the mall fixture set referral_ratio to 0.05: 30 x 0.05 / 1
    assert alice["points"] == "1.5"


def test_a_member_unknown_to_the_registry_but_known_to_the_ledger_keeps_its_link(
    client: TestClient, app: FastAPI, mall: Mall
) -> None:
    ctx = app.state.tokenmall
    tid = ctx.tenant_id(mall.code)
    imported = Purchase(order="o1", member="zoe", amount=Decimal(100), referrer="alice")
    assert ctx.ledger.submit(tid, [("o1", imported)])[0].status == "applied"
    assert_error(client.get(mall.url("/members/zoe"), headers=mall.operator), 404)
    zoe = ok(client.post(mall.url("/members"), json={"code": "zoe"}, headers=mall.operator), 201)
    assert zoe["referrer"] == "alice"
    assert zoe["ledger"]["points"] == "21"
    # a registry link that contradicts the ledger's is refused
    other = Purchase(order="o2", member="yan", amount=Decimal(100), referrer="alice")
    assert ctx.ledger.submit(tid, [("o2", other)])[0].status == "applied"
    bob = ok(client.get(mall.url("/members/bob"), headers=mall.operator))
    r = client.post(
        mall.url("/members"),
        json={"code": "yan", "invite_code": bob["invite_code"]},
        headers=mall.operator,
    )
    assert_error(r, 409, "conflict")


def test_member_tokens(client: TestClient, mall: Mall) -> None:
    token = ok(
        client.post(
            mall.url("/members/bob/tokens"), json={"ttl_seconds": 120}, headers=mall.operator
        ),
        201,
    )
    assert token["token_type"] == "bearer"
    assert token["member"] == "bob"
    assert token["token"].startswith("tmt_")
    expires = datetime.fromisoformat(token["expires_at"].replace("Z", "+00:00"))
    assert 100 < (expires - datetime.now(expires.tzinfo)).total_seconds() <= 120
    assert ok(client.get(mall.url("/me"), headers=bearer(token["token"])))["code"] == "bob"
    assert_error(
        client.post(mall.url("/members/nobody/tokens"), json={}, headers=mall.operator), 404
    )
    for ttl in (59, 10**9, "600", 600.5):
        r = client.post(
            mall.url("/members/bob/tokens"), json={"ttl_seconds": ttl}, headers=mall.operator
        )
        assert_error(r, 422)
    # a member cannot mint tokens, not even their own
    assert_error(client.post(mall.url("/members/alice/tokens"), json={}, headers=mall.member), 403)


def test_list_members_with_figures(client: TestClient, mall: Mall) -> None:
    for i in range(5):
        ok(client.post(mall.url("/members"), json={"code": f"m{i}"}, headers=mall.operator), 201)
    page = ok(client.get(mall.url("/members"), params={"limit": 3}, headers=mall.operator))
    assert [m["code"] for m in page["items"]] == ["alice", "bob", "m0"]
    assert page["items"][1]["referrer"] == "alice"
    rest = ok(
        client.get(
            mall.url("/members"),
            params={"limit": 3, "cursor": page["next_cursor"]},
            headers=mall.operator,
        )
    )
    assert [m["code"] for m in rest["items"]] == ["m1", "m2", "m3"]
    last = ok(
        client.get(
            mall.url("/members"),
            params={"limit": 3, "cursor": rest["next_cursor"]},
            headers=mall.operator,
        )
    )
    assert [m["code"] for m in last["items"]] == ["m4"]
    assert last["next_cursor"] is None
