"""Tenants over HTTP: creation by the platform admin, reading, and audited parameter changes
that take effect from the tenant's next event."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from api_helpers import ADMIN, Mall, assert_error, ok
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tokenmall.domain.economy import Purchase
from tokenmall.domain.params import TenantParams


def new_code() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def test_create_and_read_a_tenant(client: TestClient) -> None:
    code = new_code()
    body = {"code": code, "name": "Brand mall", "params": {"referral_ratio": "0.05"}}
    created = ok(client.post("/v1/tenants", json=body, headers=ADMIN), 201)
    assert created["code"] == code
    assert created["name"] == "Brand mall"
    assert created["timezone"] == "Asia/Shanghai"
    assert created["currency"] == "CNY"
    defaults = TenantParams().to_mapping()
    assert created["params"] == {**defaults, "referral_ratio": "0.05"}
    assert created["created_at"].endswith("Z")
    assert ok(client.get(f"/v1/tenants/{code}", headers=ADMIN)) == created


def test_tenant_defaults_and_time_zone(client: TestClient) -> None:
    code = new_code()
    created = ok(
        client.post("/v1/tenants", json={"code": code, "timezone": "Europe/Berlin"}, headers=ADMIN),
        201,
    )
    assert created["name"] == code
    assert created["timezone"] == "Europe/Berlin"
    assert created["params"] == TenantParams().to_mapping()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"code": "bad code"}, 422, "validation_error"),
        ({"code": "-dash-first"}, 422, "validation_error"),
        ({"code": "x" * 65}, 422, "validation_error"),
        ({"code": "ok", "timezone": "Mars/Olympus"}, 422, "invalid_command"),
        ({"code": "ok", "params": {"no_such_param": "1"}}, 422, "invalid_parameter"),
        ({"code": "ok", "params": {"pool_rate": "0.8"}}, 422, "invalid_parameter"),
        ({"code": "ok", "params": {"pool_rate": 0.3}}, 422, "validation_error"),
        ({"code": "ok", "params": {"pool_rate": "abc"}}, 422, "invalid_parameter"),
        ({"code": "ok", "surprise": True}, 422, "validation_error"),
        ({}, 422, "validation_error"),
    ],
)
def test_invalid_tenants_are_refused(
    client: TestClient, body: dict[str, object], status: int, code: str
) -> None:
    if body.get("code") == "ok":
        body = {**body, "code": new_code()}
    assert_error(client.post("/v1/tenants", json=body, headers=ADMIN), status, code)


def test_duplicate_tenant_is_a_conflict(client: TestClient) -> None:
    code = new_code()
    ok(client.post("/v1/tenants", json={"code": code}, headers=ADMIN), 201)
    assert_error(
        client.post("/v1/tenants", json={"code": code}, headers=ADMIN), 409, "already_exists"
    )


def test_list_tenants_pages_through_all(client: TestClient) -> None:
    codes = {new_code() for _ in range(5)}
    for code in codes:
        ok(client.post("/v1/tenants", json={"code": code}, headers=ADMIN), 201)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = ok(client.get("/v1/tenants", params=params, headers=ADMIN))
        assert len(page["items"]) <= 2
        seen.extend(t["code"] for t in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert codes <= set(seen)


def test_any_credential_of_the_tenant_reads_it(client: TestClient, mall: Mall) -> None:
    for headers in (mall.operator, mall.merchant, mall.member, ADMIN):
        assert ok(client.get(mall.url(""), headers=headers))["code"] == mall.code


# ----------------------------------------------------------------------------- parameters


def test_param_change_is_audited(client: TestClient, mall: Mall) -> None:
    before = ok(client.get(mall.url(""), headers=mall.operator))["params"]
    change = ok(
        client.post(
            mall.url("/param-changes"),
            json={"params": {"sell_fee": "0.05", "quota_multiplier": "3"}},
            headers=mall.operator,
        ),
        201,
    )
    assert change["changed"] == ["quota_multiplier", "sell_fee"]
    assert change["before"] == before
    assert change["after"] == {**before, "sell_fee": "0.05", "quota_multiplier": "3"}
    assert change["actor"].startswith("operator-key:")
    assert change["at"].endswith("Z")
    now = ok(client.get(mall.url(""), headers=mall.merchant))["params"]
    assert now == change["after"]

    by_admin = ok(
        client.post(
            mall.url("/param-changes"), json={"params": {"sell_fee": "0.2"}}, headers=ADMIN
        ),
        201,
    )
    assert by_admin["actor"] == "platform-admin"
    assert by_admin["before"] == change["after"]
    assert by_admin["id"] == change["id"] + 1

    listed = ok(client.get(mall.url("/param-changes"), headers=mall.operator))
    assert [c["id"] for c in listed["items"]][-2:] == [change["id"], by_admin["id"]]
    assert listed["items"][-1] == by_admin
    assert listed["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "validation_error"),
        ({"sell_fee": 0.1}, "validation_error"),
        ({"sell_fee": "1.5"}, "invalid_parameter"),
        ({"pool_rate": "0.6", "dividend_rate": "0.5"}, "invalid_parameter"),
        ({"dividend_weight": "votes"}, "invalid_parameter"),
        ({"nope": "1"}, "invalid_parameter"),
    ],
)
def test_invalid_param_changes_change_nothing(
    client: TestClient, mall: Mall, params: dict[str, object], code: str
) -> None:
    before = ok(client.get(mall.url(""), headers=mall.operator))["params"]
    n = len(ok(client.get(mall.url("/param-changes"), headers=mall.operator))["items"])
    r = client.post(mall.url("/param-changes"), json={"params": params}, headers=mall.operator)
    assert_error(r, 422, code)
    assert ok(client.get(mall.url(""), headers=mall.operator))["params"] == before
    assert len(ok(client.get(mall.url("/param-changes"), headers=mall.operator))["items"]) == n


def test_param_change_takes_effect_from_the_next_event(
    client: TestClient, app: FastAPI, mall: Mall
) -> None:
    """R1 referral share: alice refers bob and carol; the ratio changes between their orders."""
    ctx = app.state.tokenmall
    tid = ctx.tenant_id(mall.code)
    ok(
        client.post(
            mall.url("/param-changes"), json={"params": {"referral_ratio": "0.10"}}, headers=ADMIN
        ),
        201,
    )
    bob = Purchase(order="o1", member="bob", amount=Decimal(100), referrer="alice")
    assert ctx.ledger.submit(tid, [("o1", bob)])[0].status == "applied"
    alice = ok(client.get(mall.url("/members/alice"), headers=mall.member))
    assert alice["ledger"]["points"] == "3"  # 30 x 0.10 / price 1

    ok(
        client.post(
            mall.url("/param-changes"),
            json={"params": {"referral_ratio": "0.05"}},
            headers=mall.operator,
        ),
        201,
    )
    ok(client.post(mall.url("/members"), json={"code": "carol"}, headers=mall.operator), 201)
    carol = Purchase(order="o2", member="carol", amount=Decimal(100), referrer="alice")
    assert ctx.ledger.submit(tid, [("o2", carol)])[0].status == "applied"
    # price before carol's order: pool 30 / (21 + 3) EP = 1.25; 30 x 0.05 / 1.25 = 1.2
    alice = ok(client.get(mall.url("/members/alice"), headers=mall.member))
    assert Decimal(alice["ledger"]["points"]) == Decimal("4.2")


def test_total_supply_cannot_go_below_what_was_issued(
    client: TestClient, app: FastAPI, mall: Mall
) -> None:
    ctx = app.state.tokenmall
    tid = ctx.tenant_id(mall.code)
    order = Purchase(order="o1", member="alice", amount=Decimal(100))
    assert ctx.ledger.submit(tid, [("o1", order)])[0].status == "applied"
    r = client.post(
        mall.url("/param-changes"), json={"params": {"total_supply": "20"}}, headers=mall.operator
    )
    error = assert_error(r, 422, "invalid_parameter")
    assert "already issued" in error["message"]
    ok(
        client.post(
            mall.url("/param-changes"),
            json={"params": {"total_supply": "21"}},
            headers=mall.operator,
        ),
        201,
    )
