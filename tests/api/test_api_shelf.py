"""The product list carries SKUs, prices and stock; a product taken off the shelf stays
listed and its SKUs cannot be ordered until it is put back (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from api_helpers import Mall, assert_error, ok
from fastapi.testclient import TestClient
from orders_helpers import create_order
from sqlalchemy import Engine

from tokenmall.store import schema as s
from tokenmall.store.db import create_db_engine


def _stock(client: TestClient, mall: Mall) -> int:
    sku = ok(client.get(mall.url(f"/skus/{mall.sku_id}"), headers=mall.operator))
    stock: int = sku["stock"]
    return stock


def test_the_product_list_has_skus_prices_and_stock(client: TestClient, mall: Mall) -> None:
    second = ok(
        client.post(
            mall.url("/products"),
            json={
                "merchant_id": mall.merchant_id,
                "name": "Oolong",
                "skus": [
                    {"name": "100g", "price": "38.00", "stock": 3},
                    {"name": "500g", "price": "150.00", "stock": 0},
                ],
            },
            headers=mall.operator,
        ),
        201,
    )
    listed = ok(client.get(mall.url("/products"), headers=mall.member))["items"]
    assert [p["id"] for p in listed] == [mall.product_id, second["id"]]
    assert all(p["on_shelf"] for p in listed)
    first = listed[0]
    assert [(k["id"], k["name"], k["price"], k["stock"]) for k in first["skus"]] == [
        (mall.sku_id, "250g", "100.00", 10)
    ]
    assert [(k["name"], k["price"], k["stock"]) for k in listed[1]["skus"]] == [
        ("100g", "38.00", 3),
        ("500g", "150.00", 0),
    ]
    # the list and the single read agree
    assert listed[1] == ok(client.get(mall.url(f"/products/{second['id']}"), headers=mall.member))
    # pages carry their own products' SKUs
    page = ok(client.get(mall.url("/products?limit=1"), headers=mall.member))
    assert [p["id"] for p in page["items"]] == [mall.product_id]
    assert len(page["items"][0]["skus"]) == 1


def test_a_product_off_the_shelf_cannot_be_ordered_until_put_back(
    client: TestClient, mall: Mall
) -> None:
    url = mall.url(f"/products/{mall.product_id}")
    before = _stock(client, mall)
    off = ok(client.patch(url, json={"on_shelf": False}, headers=mall.merchant))
    assert off["on_shelf"] is False
    assert off["skus"][0]["stock"] == before  # nothing else changes
    body = {"member": "bob", "lines": [{"sku_id": mall.sku_id, "quantity": 1}]}
    error = assert_error(
        client.post(mall.url("/orders"), json=body, headers=mall.operator), 409, "off_shelf"
    )
    assert "off the shelf" in error["message"]
    assert str(mall.product_id) in error["message"]
    assert _stock(client, mall) == before  # the refused order reserved nothing

    # still listed, and the filter tells the two apart
    shelf: dict[str, Any] = {}
    for flag in ("true", "false"):
        shelf[flag] = ok(client.get(mall.url(f"/products?on_shelf={flag}"), headers=mall.operator))[
            "items"
        ]
    assert shelf["true"] == []
    assert [p["id"] for p in shelf["false"]] == [mall.product_id]
    # other changes leave the shelf state alone
    renamed = ok(client.patch(url, json={"name": "Green tea 2"}, headers=mall.operator))
    assert renamed["on_shelf"] is False

    back = ok(client.patch(url, json={"on_shelf": True}, headers=mall.operator))
    assert back["on_shelf"] is True
    order = create_order(client, mall)
    assert order["status"] == "pending_payment"
    assert _stock(client, mall) == before - 1


def test_only_catalog_writers_change_the_shelf(client: TestClient, mall: Mall) -> None:
    url = mall.url(f"/products/{mall.product_id}")
    assert_error(client.patch(url, json={"on_shelf": False}, headers=mall.member), 403)
    assert_error(
        client.patch(url, json={"on_shelf": "maybe"}, headers=mall.operator),
        422,
        "validation_error",
    )


def test_migration_0012_matches_the_metadata(db_url: str) -> None:
    engine: Engine = create_db_engine(db_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = compare_metadata(ctx, s.metadata)
    finally:
        engine.dispose()
    products = [d for d in diffs if "products" in repr(d)]
    assert products == []
    assert "on_shelf" in s.products.c
