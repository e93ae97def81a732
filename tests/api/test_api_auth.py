"""Credentials, scopes, tenant isolation and rate limits, on SQLite and PostgreSQL.

The isolation test is parametrized over the app's route table, so a route added later is
covered without anyone remembering to add it: another tenant's key or token gets 404 from
every tenant route, the same answer as a tenant that does not exist.
"""

from __future__ import annotations

import base64
import json
import re
import time

import pytest
from api_helpers import (
    ADMIN,
    ADMIN_TOKEN,
    SECRET_KEY,
    Mall,
    assert_error,
    bearer,
    make_mall,
    ok,
    second_catalog,
)
from fastapi import FastAPI
from fastapi.testclient import TestClient
from groupbuy_api_helpers import groupbuy_path_values
from nfg_helpers_api import NFG_PUBLIC_SUFFIXES, nfg_path_values
from orders_helpers import aftersales_path_values, order_path_values
from wallet_helpers import wallet_path_values
from webhook_helpers import webhook_path_values

from tokenmall.api import create_app
from tokenmall.api.ratelimit import RateLimiter
from tokenmall.service.credentials import issue_member_token, verify_member_token
from tokenmall.settings import Settings

# every route outside /v1/tenants/{tenant}: the only ones a tenant credential is not scoped to
PLATFORM_ROUTES = {
    ("GET", "/v1/health"),
    ("GET", "/v1/tenants"),
    ("POST", "/v1/tenants"),
    # public draw records: anyone may check a draw (docs/GROUPBUY.md)
    ("GET", "/v1/groupbuys/groups/{public_id}/draw"),
    ("GET", "/v1/groupbuys/campaigns/{public_id}/draws/{no}"),
}
TENANT_PREFIX = "/v1/tenants/{tenant}"


def _routes() -> list[tuple[str, str]]:
    """(method, path) of every operation, from the OpenAPI schema (a public, stable view of
    the route table; a route missing from it would be undocumented, which is a bug too)."""
    schema = create_app(Settings(db_url="sqlite://")).openapi()
    return sorted((method.upper(), path) for path, ops in schema["paths"].items() for method in ops)


ROUTES = _routes()
TENANT_ROUTES = [r for r in ROUTES if r[1].startswith(TENANT_PREFIX)]
# provider callbacks take no credential (the provider's signature is the authentication):
# tests/api/test_orders_notify.py checks that another tenant's notification changes nothing
CALLBACK_ROUTES = [r for r in TENANT_ROUTES if r[1].endswith("/notify")]
# the NFG routes anyone may read without a credential (a token's metadata, provenance, proofs)
PUBLIC_ROUTES = [r for r in TENANT_ROUTES if r[1].endswith(NFG_PUBLIC_SUFFIXES)]
KEYED_ROUTES = [r for r in TENANT_ROUTES if r not in CALLBACK_ROUTES and r not in PUBLIC_ROUTES]


def fill(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


def path_values(client: TestClient, mall: Mall, path: str) -> dict[str, str]:
    """The mall's ids, plus resources created on demand for the routes that name them."""
    values = dict(mall.path_values)
    if "{order_ref}" in path or "{intent_id}" in path:
        values.update(order_path_values(client, mall))
    if "{request_id}" in path:
        values.update(aftersales_path_values(client, mall))
    if "{withdrawal_id}" in path:
        values.update(wallet_path_values(client, mall))
    if "{endpoint_id}" in path or "{delivery_id}" in path:
        values.update(webhook_path_values(client, mall))
    if "/groupbuys/" in path and ("{code}" in path or "{public_id}" in path):
        values.update(groupbuy_path_values(client, mall, path))
    if "/nfg/" in path and "{" in path.removeprefix(TENANT_PREFIX):
        values.update(nfg_path_values(client, mall))
    return values


def test_every_route_is_tenant_scoped_or_a_known_platform_route() -> None:
    others = {r for r in ROUTES if not r[1].startswith(TENANT_PREFIX)}
    assert others == PLATFORM_ROUTES
    assert len(TENANT_ROUTES) >= 20


# ----------------------------------------------------------------------------- isolation


@pytest.mark.parametrize(
    ("method", "path"), KEYED_ROUTES, ids=[f"{m} {p}" for m, p in KEYED_ROUTES]
)
def test_another_tenants_credentials_get_404_from_every_route(
    client: TestClient, method: str, path: str
) -> None:
    a = make_mall(client)
    b = make_mall(client)
    values = path_values(client, b, path)
    url_b = fill(path, values)
    nowhere = fill(path, {**values, "tenant": "no-such-tenant"})
    absent = client.request(method, nowhere, headers=a.operator, json={})
    assert_error(absent, 404, "not_found")
    for who, headers in (("operator", a.operator), ("merchant", a.merchant), ("member", a.member)):
        r = client.request(method, url_b, headers=headers, json={})
        assert_error(r, 404, "not_found")
        # as if it did not exist: the same message as for an unknown tenant, modulo the name
        assert r.json()["error"]["message"] == f"no tenant {b.code!r}", who
    # the platform admin reaches no tenant that does not exist either
    assert_error(client.request(method, nowhere, headers=ADMIN, json={}), 404, "not_found")
    # and the path really names B's resources: B's own operator does not get 404
    r = client.request(method, url_b, headers=b.operator, json={})
    assert r.status_code != 404, (r.status_code, r.text)


def test_a_member_token_whose_tenant_id_was_changed_is_refused(
    client: TestClient, mall: Mall
) -> None:
    """A token is bound to the tenant id it was signed for: editing the id breaks the MAC."""
    other = make_mall(client)
    token = mall.member["Authorization"].removeprefix("Bearer tmt_")
    payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    tid = client.app.state.tokenmall.tenant_id(other.code)  # type: ignore[attr-defined]
    claims["t"] = tid
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    r = client.get(other.url("/me"), headers=bearer(f"tmt_{forged}.{signature}"))
    assert_error(r, 401, "unauthenticated")
    ok(client.get(mall.url("/me"), headers=mall.member))  # the genuine one still works


def test_member_sees_only_themselves(client: TestClient, mall: Mall) -> None:
    me = ok(client.get(mall.url("/me"), headers=mall.member))
    assert me["code"] == "alice"
    assert ok(client.get(mall.url("/members/alice"), headers=mall.member))["code"] == "alice"
    r = client.get(mall.url(f"/members/{mall.other_member}"), headers=mall.member)
    assert_error(r, 404, "not_found")
    # and may read the catalog
    ok(client.get(mall.url("/products"), headers=mall.member))


# ----------------------------------------------------------------------------- authentication


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        bearer("tmk_nope_nope"),
        bearer("tmk_"),
        bearer("tmt_e30.AAAA"),
        bearer("tmt_not-base64!.sig"),
        bearer("whatever"),
        bearer(ADMIN_TOKEN + "x"),
    ],
    ids=[
        "none",
        "empty-bearer",
        "basic",
        "unknown-key",
        "bare-prefix",
        "forged-token",
        "garbage-token",
        "garbage",
        "admin-typo",
    ],
)
def test_missing_or_invalid_credentials_answer_401(
    client: TestClient, mall: Mall, headers: dict[str, str]
) -> None:
    r = client.get(mall.url(""), headers=headers)
    error = assert_error(r, 401, "unauthenticated")
    assert "Bearer" in r.headers["www-authenticate"]
    assert "Authorization" in error["message"] or "credential" in error["message"]


# Raw header bytes: HTTP carries them as Latin-1, so a client can put any byte in a credential.
# A member token whose signature held a non-ASCII character once answered 500 (the signature
# went to hmac.compare_digest as a str); the key path is probed the same way, NUL included.
RAW_CREDENTIALS = [
    b"tmt_abc.\xe9",
    b"tmt_\xe9.abc",
    b"tmt_\xe9\xff.\xe9\xff",
    b"tmt_abc.\x00",
    b"tmk_\xe9_abc",
    b"tmk_abc_\xe9",
    b"tmk_a\x00_b",
    b"tmk_" + b"\xe9" * 20 + b"_x",
    b"\xe9\xff",
]


@pytest.mark.parametrize("credential", RAW_CREDENTIALS, ids=[repr(c) for c in RAW_CREDENTIALS])
def test_credentials_with_non_ascii_bytes_answer_401(
    client: TestClient, mall: Mall, credential: bytes
) -> None:
    for path in ("", "/me"):
        r = client.get(mall.url(path), headers={"Authorization": b"Bearer " + credential})
        assert_error(r, 401, "unauthenticated")


def test_verify_member_token_refuses_any_non_ascii_text() -> None:
    token, _ = issue_member_token(SECRET_KEY, 1, "alice", ttl_seconds=600)
    assert verify_member_token(SECRET_KEY, token) is not None
    for bad in (token + "\xe9", token[:-1] + "\xe9", token + "\ud800", "tmt_\ud800.\ud800"):
        assert verify_member_token(SECRET_KEY, bad) is None


def test_a_key_with_the_right_id_and_a_wrong_secret_is_refused(
    client: TestClient, mall: Mall
) -> None:
    key = mall.operator["Authorization"].removeprefix("Bearer ")
    prefix, key_id, _secret = key.split("_", 2)
    assert_error(client.get(mall.url(""), headers=bearer(f"{prefix}_{key_id}_x")), 401)


def test_revoked_key_is_refused_from_the_next_request(client: TestClient, mall: Mall) -> None:
    ok(client.get(mall.url("/products"), headers=mall.merchant))
    revoked = ok(client.delete(mall.url(f"/api-keys/{mall.key_id}"), headers=mall.operator))
    assert revoked["revoked_at"] is not None
    assert_error(client.get(mall.url("/products"), headers=mall.merchant), 401, "unauthenticated")
    again = ok(client.delete(mall.url(f"/api-keys/{mall.key_id}"), headers=mall.operator))
    assert again["revoked_at"] == revoked["revoked_at"]


def test_expired_member_token_is_refused(client: TestClient, app: FastAPI, mall: Mall) -> None:
    tid = app.state.tokenmall.tenant_id(mall.code)
    token, _ = issue_member_token(SECRET_KEY, tid, "alice", ttl_seconds=60, now=time.time() - 61)
    assert_error(client.get(mall.url("/me"), headers=bearer(token)), 401, "unauthenticated")
    fresh, _ = issue_member_token(SECRET_KEY, tid, "alice", ttl_seconds=60)
    ok(client.get(mall.url("/me"), headers=bearer(fresh)))


def test_token_signed_with_another_secret_is_refused(
    client: TestClient, app: FastAPI, mall: Mall
) -> None:
    tid = app.state.tokenmall.tenant_id(mall.code)
    token, _ = issue_member_token("not-the-server-secret", tid, "alice", ttl_seconds=600)
    assert_error(client.get(mall.url("/me"), headers=bearer(token)), 401, "unauthenticated")


def test_keys_are_stored_hashed_and_shown_once(
    client: TestClient, app: FastAPI, mall: Mall
) -> None:
    created = ok(
        client.post(
            mall.url("/api-keys"), json={"scope": "operator", "name": "ops"}, headers=ADMIN
        ),
        201,
    )
    key = created["key"]
    assert key.startswith(f"tmk_{created['id']}_")
    secret = key.split("_", 2)[2]
    assert len(secret) >= 43  # 32 random bytes
    listed = ok(client.get(mall.url("/api-keys"), headers=mall.operator))["items"]
    assert {k["id"] for k in listed} >= {created["id"], mall.key_id}
    assert all("key" not in k for k in listed)
    engine = app.state.tokenmall.engine
    with engine.connect() as conn:
        dump = " ".join(
            str(v) for row in conn.exec_driver_sql("SELECT * FROM api_keys") for v in row
        )
    assert secret not in dump
    ok(client.get(mall.url(""), headers=bearer(key)))


# ----------------------------------------------------------------------------- scopes


def test_scopes(client: TestClient, mall: Mall) -> None:
    change = {"params": {"referral_ratio": "0.02"}}
    for headers in (mall.merchant, mall.member):
        assert_error(
            client.post(mall.url("/param-changes"), json=change, headers=headers), 403, "forbidden"
        )
        assert_error(client.get(mall.url("/param-changes"), headers=headers), 403, "forbidden")
        assert_error(
            client.post(
                mall.url("/api-keys"), json={"scope": "operator", "name": "x"}, headers=headers
            ),
            403,
            "forbidden",
        )
        assert_error(client.get(mall.url("/members"), headers=headers), 403, "forbidden")
        assert_error(
            client.post(mall.url("/merchants"), json={"code": "m9", "name": "x"}, headers=headers),
            403,
        )
    # platform routes take the admin token only
    for headers in (mall.operator, mall.merchant, mall.member):
        assert_error(
            client.post("/v1/tenants", json={"code": "x"}, headers=headers), 403, "forbidden"
        )
        assert_error(client.get("/v1/tenants", headers=headers), 403, "forbidden")
    # the operator and the admin may
    ok(client.post(mall.url("/param-changes"), json=change, headers=mall.operator), 201)
    ok(client.post(mall.url("/param-changes"), json=change, headers=ADMIN), 201)
    # /me is for members
    assert_error(client.get(mall.url("/me"), headers=mall.operator), 403, "forbidden")


def test_operator_creates_merchant_keys_bound_to_its_tenants_merchants(
    client: TestClient, mall: Mall
) -> None:
    other = second_catalog(client, make_mall(client))
    body = {"scope": "merchant", "name": "x", "merchant_id": other["merchant_id"]}
    assert_error(client.post(mall.url("/api-keys"), json=body, headers=mall.operator), 422)
    body["merchant_id"] = mall.merchant_id
    key = ok(client.post(mall.url("/api-keys"), json=body, headers=mall.operator), 201)
    assert key["scope"] == "merchant"
    assert key["created_by"].startswith("operator-key:")
    no_merchant = {"scope": "merchant", "name": "x"}
    assert_error(client.post(mall.url("/api-keys"), json=no_merchant, headers=mall.operator), 422)
    bad = {"scope": "operator", "name": "x", "merchant_id": mall.merchant_id}
    assert_error(client.post(mall.url("/api-keys"), json=bad, headers=mall.operator), 422)
    assert_error(
        client.post(mall.url("/api-keys"), json={"scope": "root", "name": "x"}, headers=ADMIN), 422
    )


# ----------------------------------------------------------------------------- rate limits


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limit_per_key_answers_429_with_retry_after(
    client: TestClient, app: FastAPI, mall: Mall
) -> None:
    clock = FakeClock()
    app.state.tokenmall.limiter = RateLimiter(0.5, 3, clock=clock)
    for _ in range(3):
        ok(client.get(mall.url(""), headers=mall.operator))
    r = client.get(mall.url(""), headers=mall.operator)
    assert_error(r, 429, "rate_limited")
    assert r.headers["retry-after"] == "2"  # one request per 2 s
    # another key has its own bucket
    ok(client.get(mall.url(""), headers=mall.merchant))
    clock.now += 2
    ok(client.get(mall.url(""), headers=mall.operator))
    assert_error(client.get(mall.url(""), headers=mall.operator), 429, "rate_limited")


def test_failed_authentication_is_rate_limited_per_client(
    client: TestClient, app: FastAPI, mall: Mall
) -> None:
    app.state.tokenmall.limiter = RateLimiter(0.01, 5, clock=FakeClock())
    for _ in range(5):
        assert_error(client.get(mall.url(""), headers=bearer("tmk_guess_guess")), 401)
    r = client.get(mall.url(""), headers=bearer("tmk_guess_guess"))
    assert_error(r, 429, "rate_limited")
    assert int(r.headers["retry-after"]) >= 1
    ok(client.get(mall.url(""), headers=mall.operator))  # valid keys keep their own buckets


def test_rate_limit_from_settings(db_url: str) -> None:
    app = create_app(
        Settings(
            db_url=db_url,
            admin_token=ADMIN_TOKEN,
            secret_key=SECRET_KEY,
            rate_limit_per_second=0.001,
            rate_limit_burst=2,
        )
    )
    with TestClient(app) as c:
        ok(c.get("/v1/tenants", headers=ADMIN))
        ok(c.get("/v1/tenants", headers=ADMIN))
        assert_error(c.get("/v1/tenants", headers=ADMIN), 429, "rate_limited")
