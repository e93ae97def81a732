"""Verified API keys are cached for a few seconds: a revocation through this process is
immediate, one made elsewhere (another server process) within the cache lifetime."""

from __future__ import annotations

from api_helpers import Mall, assert_error, bearer, make_mall, make_settings, ok
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import update

from tokenmall.api import create_app
from tokenmall.store import schema as s


def _revoke_elsewhere(app: FastAPI, key_id: str) -> None:
    with app.state.tokenmall.engine.begin() as conn:
        conn.execute(update(s.api_keys).where(s.api_keys.c.key_id == key_id).values(revoked_at=1.0))


def test_revocation_elsewhere_is_seen_after_the_cache_lifetime(
    client: TestClient, app: FastAPI, mall: Mall
) -> None:
    ok(client.get(mall.url("/products"), headers=mall.merchant))  # verified and cached
    _revoke_elsewhere(app, mall.key_id)
    ok(client.get(mall.url("/products"), headers=mall.merchant))  # still trusted: cached
    app.state.tokenmall.forget_key(mall.key_id)  # what the lifetime running out does
    assert_error(client.get(mall.url("/products"), headers=mall.merchant), 401, "unauthenticated")


def test_a_cached_key_id_with_another_secret_is_refused(client: TestClient, mall: Mall) -> None:
    key = mall.operator["Authorization"].removeprefix("Bearer ")
    ok(client.get(mall.url(""), headers=mall.operator))
    prefix, key_id, secret = key.split("_", 2)
    forged = f"{prefix}_{key_id}_{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}"
    assert_error(client.get(mall.url(""), headers=bearer(forged)), 401, "unauthenticated")
    ok(client.get(mall.url(""), headers=mall.operator))


def test_no_cache_reads_every_time(db_url: str) -> None:
    app = create_app(make_settings(db_url, api_key_cache_seconds=0))
    with TestClient(app) as client:
        mall = make_mall(client)
        ok(client.get(mall.url("/products"), headers=mall.merchant))
        _revoke_elsewhere(app, mall.key_id)
        assert_error(client.get(mall.url("/products"), headers=mall.merchant), 401)
