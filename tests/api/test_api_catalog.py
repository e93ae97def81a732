"""The catalog over HTTP: merchants, products and SKUs; money as decimal strings; who may
write what."""

from __future__ import annotations

import pytest
from api_helpers import ADMIN, Mall, assert_error, bearer, make_mall, ok
from fastapi.testclient import TestClient


def test_merchants(client: TestClient, mall: Mall) -> None:
    created = ok(
        client.post(
            mall.url("/merchants"),
            json={"code": "m2", "name": "Fruit Stall"},
            headers=mall.operator,
        ),
        201,
    )
    assert created["accepts_sp"] is False
    assert ok(client.get(mall.url(f"/merchants/{created['id']}"), headers=mall.member)) == created
    updated = ok(
        client.patch(
            mall.url(f"/merchants/{created['id']}"), json={"accepts_sp": True}, headers=ADMIN
        )
    )
    assert updated == {**created, "accepts_sp": True}
    listed = ok(client.get(mall.url("/merchants"), headers=mall.merchant))["items"]
    assert [m["code"] for m in listed] == ["m1", "m2"]
    assert_error(
        client.post(mall.url("/merchants"), json={"code": "m2", "name": "x"}, headers=ADMIN),
        409,
        "already_exists",
    )
    assert_error(
        client.patch(
            mall.url(f"/merchants/{created['id']}"), json={"name": "x"}, headers=mall.merchant
        ),
        403,
    )
    assert_error(client.get(mall.url("/merchants/999999"), headers=mall.operator), 404)


def test_product_with_skus_and_money_as_strings(client: TestClient, mall: Mall) -> None:
    product = ok(
        client.post(
            mall.url("/products"),
            json={
                "merchant_id": mall.merchant_id,
                "name": "Oolong",
                "description": "Anxi",
                "pool_amount": "12.5",
                "fund_amount": "0",
                "skus": [
                    {"name": "100 g", "price": "68", "stock": 5},
                    {"name": "500 g", "price": "298.90"},
                ],
            },
            headers=mall.operator,
        ),
        201,
    )
    assert product["pool_amount"] == "12.50"
    assert product["fund_amount"] == "0.00"
    assert [(k["name"], k["price"], k["stock"]) for k in product["skus"]] == [
        ("100 g", "68.00", 5),
        ("500 g", "298.90", 0),
    ]
    assert ok(client.get(mall.url(f"/products/{product['id']}"), headers=mall.member)) == product
    sku = product["skus"][0]
    assert ok(client.get(mall.url(f"/skus/{sku['id']}"), headers=mall.member)) == sku

    # clearing an override with null; leaving the other untouched
    cleared = ok(
        client.patch(
            mall.url(f"/products/{product['id']}"),
            json={"pool_amount": None, "name": "Oolong tea"},
            headers=mall.merchant,
        )
    )
    assert cleared["pool_amount"] is None
    assert cleared["fund_amount"] == "0.00"
    assert cleared["name"] == "Oolong tea"
    assert cleared["description"] == "Anxi"


@pytest.mark.parametrize(
    "amount",
    [12.5, 12, True, "12.505", "-1", "1e3", "NaN", "Infinity", " 12", "12.", ".5", "0012", ""],
)
def test_money_must_be_a_decimal_string_in_whole_fen(
    client: TestClient, mall: Mall, amount: object
) -> None:
    url = mall.url(f"/products/{mall.product_id}/skus")
    r = client.post(url, json={"name": "x", "price": amount, "stock": 1}, headers=mall.operator)
    error = assert_error(r, 422, "validation_error")
    assert error["details"][0]["loc"] == ["body", "price"]
    r = client.patch(
        mall.url(f"/products/{mall.product_id}"),
        json={"pool_amount": amount},
        headers=mall.operator,
    )
    assert_error(r, 422, "validation_error")


@pytest.mark.parametrize(
    ("price", "stock"), [("0", 1), ("0.00", 1), ("100000000", 1), ("1", -1), ("1", 10**10)]
)
def test_price_positive_and_bounded_stock_non_negative(
    client: TestClient, mall: Mall, price: str, stock: int
) -> None:
    url = mall.url(f"/products/{mall.product_id}/skus")
    r = client.post(url, json={"name": "x", "price": price, "stock": stock}, headers=mall.operator)
    assert_error(r, 422)


def test_stock_updates(client: TestClient, mall: Mall) -> None:
    url = mall.url(f"/skus/{mall.sku_id}")
    assert ok(client.get(url, headers=mall.member))["stock"] == 10
    assert ok(client.patch(url, json={"stock_delta": 5}, headers=mall.merchant))["stock"] == 15
    assert ok(client.patch(url, json={"stock_delta": -15}, headers=mall.merchant))["stock"] == 0
    assert_error(
        client.patch(url, json={"stock_delta": -1}, headers=mall.operator), 409, "out_of_stock"
    )
    sku = ok(client.patch(url, json={"stock": 7, "price": "88.80"}, headers=mall.operator))
    assert (sku["stock"], sku["price"]) == (7, "88.80")
    assert_error(
        client.patch(url, json={"stock": 1, "stock_delta": 1}, headers=mall.operator),
        422,
        "validation_error",
    )
    assert_error(client.patch(url, json={"stock": "7"}, headers=mall.operator), 422)
    assert_error(client.patch(url, json={"stock": 7.0}, headers=mall.operator), 422)
    assert_error(
        client.patch(mall.url("/skus/999999"), json={"stock": 1}, headers=mall.operator), 404
    )


def test_merchant_keys_write_only_their_own_catalog(client: TestClient, mall: Mall) -> None:
    other = ok(
        client.post(
            mall.url("/merchants"), json={"code": "m2", "name": "Other"}, headers=mall.operator
        ),
        201,
    )
    theirs = ok(
        client.post(
            mall.url("/products"),
            json={
                "merchant_id": other["id"],
                "name": "Theirs",
                "skus": [{"name": "a", "price": "1"}],
            },
            headers=mall.operator,
        ),
        201,
    )
    # own merchant implied when omitted
    own = ok(client.post(mall.url("/products"), json={"name": "Own"}, headers=mall.merchant), 201)
    assert own["merchant_id"] == mall.merchant_id
    assert_error(
        client.post(
            mall.url("/products"),
            json={"name": "x", "merchant_id": other["id"]},
            headers=mall.merchant,
        ),
        403,
        "forbidden",
    )
    assert_error(
        client.patch(
            mall.url(f"/products/{theirs['id']}"), json={"name": "x"}, headers=mall.merchant
        ),
        403,
    )
    assert_error(
        client.post(
            mall.url(f"/products/{theirs['id']}/skus"),
            json={"name": "b", "price": "2"},
            headers=mall.merchant,
        ),
        403,
    )
    assert_error(
        client.patch(
            mall.url(f"/skus/{theirs['skus'][0]['id']}"), json={"stock": 1}, headers=mall.merchant
        ),
        403,
    )
    # but reads the whole catalog, as members do
    ok(client.get(mall.url(f"/products/{theirs['id']}"), headers=mall.merchant))
    # operators must say which merchant; members write nothing
    assert_error(client.post(mall.url("/products"), json={"name": "x"}, headers=mall.operator), 422)
    assert_error(
        client.post(
            mall.url("/products"), json={"name": "x", "merchant_id": 999999}, headers=mall.operator
        ),
        422,
        "invalid_command",
    )
    assert_error(client.post(mall.url("/products"), json={"name": "x"}, headers=mall.member), 403)


def test_lists_filter_and_page(client: TestClient, mall: Mall) -> None:
    other = ok(
        client.post(
            mall.url("/merchants"), json={"code": "m2", "name": "Other"}, headers=mall.operator
        ),
        201,
    )
    for i in range(4):
        ok(
            client.post(
                mall.url("/products"),
                json={
                    "merchant_id": other["id"],
                    "name": f"p{i}",
                    "skus": [{"name": "s", "price": f"{i + 1}"}],
                },
                headers=mall.operator,
            ),
            201,
        )
    mine = ok(
        client.get(
            mall.url("/products"), params={"merchant_id": mall.merchant_id}, headers=mall.member
        )
    )
    assert [p["name"] for p in mine["items"]] == ["Green tea"]
    # the list carries each product's SKUs (tests/api/test_api_shelf.py checks them)
    assert [k["id"] for k in mine["items"][0]["skus"]] == [mall.sku_id]
    names: list[str] = []
    params: dict[str, object] = {"merchant_id": other["id"], "limit": 3}
    page = ok(client.get(mall.url("/products"), params=params, headers=mall.member))
    names += [p["name"] for p in page["items"]]
    page = ok(
        client.get(
            mall.url("/products"),
            params={**params, "cursor": page["next_cursor"]},
            headers=mall.member,
        )
    )
    names += [p["name"] for p in page["items"]]
    assert names == ["p0", "p1", "p2", "p3"]
    assert page["next_cursor"] is None
    skus = ok(
        client.get(mall.url("/skus"), params={"product_id": mall.product_id}, headers=mall.member)
    )
    assert [k["id"] for k in skus["items"]] == [mall.sku_id]
    assert len(ok(client.get(mall.url("/skus"), headers=mall.member))["items"]) == 5


def test_a_key_of_a_merchant_of_another_tenant_is_useless_here(
    client: TestClient, mall: Mall
) -> None:
    other = make_mall(client)
    r = client.post(mall.url("/products"), json={"name": "x"}, headers=other.merchant)
    assert_error(r, 404, "not_found")
    r = client.get(mall.url("/products"), headers=bearer(other.merchant["Authorization"][7:]))
    assert_error(r, 404, "not_found")
