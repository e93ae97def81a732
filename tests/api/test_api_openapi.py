"""The OpenAPI schema is served and describes what clients get: every list is paginated the
same way, every operation documents the error shape, money is a string."""

from __future__ import annotations

import re
from typing import Any

import pytest
from api_helpers import ADMIN, Mall, make_mall, ok
from fastapi.testclient import TestClient

from tokenmall.api import create_app
from tokenmall.settings import Settings

SCHEMA = create_app(Settings(db_url="sqlite://")).openapi()


def _resolve(ref: dict[str, Any]) -> dict[str, Any]:
    name = ref["$ref"].rsplit("/", 1)[-1]
    schema: dict[str, Any] = SCHEMA["components"]["schemas"][name]
    return schema


def _response_schema(op: dict[str, Any]) -> dict[str, Any] | None:
    for status in ("200", "201"):
        content = op["responses"].get(status, {}).get("content", {})
        if "application/json" in content:
            schema: dict[str, Any] = content["application/json"]["schema"]
            return _resolve(schema) if "$ref" in schema else schema
    return None


LISTS = sorted(
    path
    for path, ops in SCHEMA["paths"].items()
    if "get" in ops and "items" in (_response_schema(ops["get"]) or {}).get("properties", {})
)
# the lists the walk below can fill (every list's shape is checked from the schema)
SEEDED_LISTS = [
    "/v1/tenants",
    "/v1/tenants/{tenant}/api-keys",
    "/v1/tenants/{tenant}/members",
    "/v1/tenants/{tenant}/merchants",
    "/v1/tenants/{tenant}/param-changes",
    "/v1/tenants/{tenant}/products",
    "/v1/tenants/{tenant}/skus",
]


def test_docs_and_schema_are_served(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    # every asset of the page from this server: nothing from a CDN (blank offline otherwise)
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets
    assert all(a.startswith("/docs/static/") for a in assets), assets
    assert "https://" not in page.text
    assert "http://" not in page.text
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
    schema = ok(client.get("/openapi.json"))
    assert schema["info"]["title"] == "tokenmall"
    assert all(path.startswith("/v1/") for path in schema["paths"])
    health = ok(client.get("/v1/health"))
    assert health["status"] == "ok"


def test_every_operation_documents_the_error_shape() -> None:
    """Every documented error is ErrorResponse, and 422 is documented wherever input is taken
    (FastAPI's default 422 schema is another shape: a schema fuzzer would rightly flag it)."""
    for path, ops in SCHEMA["paths"].items():
        for method, op in ops.items():
            errors = {s: r for s, r in op["responses"].items() if s[0] in "45"}
            for status, response in errors.items():
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/ErrorResponse"), (method, path, status)
            if op.get("parameters") or op.get("requestBody"):
                assert "422" in errors, (method, path)


def test_tenant_routes_document_auth_errors() -> None:
    for path, ops in SCHEMA["paths"].items():
        if not path.startswith("/v1/tenants/{tenant}"):
            continue
        for method, op in ops.items():
            if op.get("security"):
                assert {"401", "404", "429"} <= set(op["responses"]), (method, path)


def test_money_fields_are_strings_in_the_schema() -> None:
    for name in ("SkuCreate", "SkuOut", "ProductCreate", "ProductOut"):
        props = SCHEMA["components"]["schemas"][name]["properties"]
        for field in ("price", "pool_amount", "fund_amount"):
            if field not in props:
                continue
            variants = props[field].get("anyOf", [props[field]])
            types = {v.get("type") for v in variants}
            assert types <= {"string", "null"}, (name, field, props[field])


def test_every_list_is_paginated_alike() -> None:
    assert len(LISTS) >= 7
    for path in LISTS:
        op = SCHEMA["paths"][path]["get"]
        names = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
        assert {"limit", "cursor"} <= names, path
        props = _response_schema(op)["properties"]  # type: ignore[index]
        assert set(props) == {"items", "next_cursor"}, path


def test_seeded_lists_exist() -> None:
    assert set(SEEDED_LISTS) <= set(LISTS)


@pytest.mark.parametrize("path", SEEDED_LISTS)
def test_following_cursors_visits_every_item_once(client: TestClient, path: str) -> None:
    mall: Mall = make_mall(client)
    # a few more of everything, so every list has pages to turn
    for i in range(3):
        if "{tenant}" not in path:
            make_mall(client)
        ok(client.post(mall.url("/members"), json={"code": f"x{i}"}, headers=mall.operator), 201)
        m = ok(
            client.post(
                mall.url("/merchants"), json={"code": f"mx{i}", "name": "M"}, headers=mall.operator
            ),
            201,
        )
        ok(
            client.post(
                mall.url("/products"),
                json={
                    "merchant_id": m["id"],
                    "name": "P",
                    "skus": [{"name": "S", "price": "1.00"}],
                },
                headers=mall.operator,
            ),
            201,
        )
        ok(
            client.post(
                mall.url("/api-keys"), json={"scope": "operator", "name": "k"}, headers=ADMIN
            ),
            201,
        )
        ok(
            client.post(
                mall.url("/param-changes"), json={"params": {"sell_fee": "0.1"}}, headers=ADMIN
            ),
            201,
        )
    url = path.replace("{tenant}", mall.code)
    platform = "{tenant}" not in path  # every tenant of the (shared) database: larger pages
    headers = ADMIN if platform else mall.operator
    everything = walk(client, url, headers, 500)
    assert len(everything) >= 4
    assert walk(client, url, headers, 50 if platform else 2) == everything


def walk(client: TestClient, url: str, headers: dict[str, str], limit: int) -> list[Any]:
    seen: list[Any] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        page = ok(client.get(url, params=params, headers=headers))
        assert len(page["items"]) <= limit
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
        assert len(page["items"]) == limit


def test_routes_sit_in_the_apps_own_table() -> None:
    """Every API route is matched straight from the app's table: an included router would be
    matched route by route on every request (bench/README.md, fifth session), and a route
    whose router forgot the /v1 prefix would answer outside the versioned API."""
    from fastapi.routing import APIRoute  # noqa: PLC0415

    app = create_app(Settings(db_url="sqlite://"))
    api = [r for r in app.routes if isinstance(r, APIRoute)]
    others = [r for r in app.routes if not isinstance(r, APIRoute)]
    # what FastAPI itself adds: the schema and the docs pages
    assert {getattr(r, "path", None) for r in others} <= {
        "/openapi.json",
        "/docs",
        "/docs/static",
    }
    assert all(r.path.startswith("/v1/") for r in api)
    assert {r.path for r in api} == set(SCHEMA["paths"])
