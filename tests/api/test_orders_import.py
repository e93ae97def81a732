"""POST /v1/tenants/{tenant}/orders/import on SQLite and PostgreSQL: applied in one ledger
transaction, validated all-or-nothing, idempotent per external id, tenant-isolated."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from api_helpers import ADMIN, Mall, assert_error, make_mall, ok
from fastapi.testclient import TestClient
from orders_helpers import economy, engine, figures, set_params, tenant_id

from tokenmall.service.imports import MAX_IMPORT
from tokenmall.service.ledger import Ledger


def post_import(client: TestClient, mall: Mall, orders: list[dict[str, Any]], **kw: Any) -> Any:
    return client.post(
        mall.url("/orders/import"),
        json={"orders": orders},
        headers=kw.get("headers", mall.operator),
    )


def seq(client: TestClient, mall: Mall) -> int:
    """The tenant's ledger sequence number: unchanged means nothing was applied."""
    from sqlalchemy import select  # noqa: PLC0415

    from tokenmall.store import schema as s  # noqa: PLC0415

    with engine(client).connect() as conn:
        return int(
            conn.execute(
                select(s.tenant_state.c.seq).where(
                    s.tenant_state.c.tenant_id == tenant_id(client, mall)
                )
            ).scalar_one()
        )


ORDERS = [
    {"external_id": "pos-1", "member": "alice", "amount": "100.00"},
    {"external_id": "pos-2", "member": "walk-in-7", "amount": "50.00", "referrer": "alice"},
    {
        "external_id": "pos-3",
        "member": "alice",
        "amount": "80.00",
        "pool_amount": "40.00",
        "fund_amount": "0",
    },
]


def test_import_applies_every_order_as_a_settled_purchase(client: TestClient, mall: Mall) -> None:
    before = economy(client, mall)
    body = ok(post_import(client, mall, ORDERS))
    assert body["summary"] == {
        "total": 3,
        "applied": 3,
        "replayed": 0,
        "conflict": 0,
        "rejected": 0,
    }
    items = body["items"]
    assert [i["index"] for i in items] == [0, 1, 2]
    assert [i["external_id"] for i in items] == ["pos-1", "pos-2", "pos-3"]
    assert all(i["status"] == "applied" and i["error"] is None for i in items)
    assert items[0]["seq"] < items[1]["seq"] < items[2]["seq"]
    # first purchase at the initial price 1: 30% of 100 into the pool, 70% of that as EP
    assert Decimal(items[0]["points"]) == Decimal(21)
    assert Decimal(items[1]["referral_points"]) > 0
    after = economy(client, mall)
    # default pool rate 30% for the first two, the explicit 40.00 for the third
    assert after["pool"] - before["pool"] == Decimal("30") + Decimal("15") + Decimal("40")
    assert after["escrow"] == before["escrow"]  # settled at once: nothing held in escrow
    assert Decimal(body["economy"]["pool"]) == after["pool"]
    alice = figures(client, mall, "alice")
    assert alice["spent"] == Decimal("180")
    # an unregistered buyer exists in the ledger; registering it later keeps its referrer
    reg = ok(
        client.post(mall.url("/members"), json={"code": "walk-in-7"}, headers=mall.operator), 201
    )
    assert reg["referrer"] == "alice"
    assert Ledger(engine(client)).verify_chain(tenant_id(client, mall)) is None


def test_a_replay_returns_the_first_results_and_changes_nothing(
    client: TestClient, mall: Mall
) -> None:
    first = ok(post_import(client, mall, ORDERS))
    state, n = economy(client, mall), seq(client, mall)
    again = ok(post_import(client, mall, ORDERS))
    assert again["summary"]["replayed"] == 3
    assert again["summary"]["applied"] == 0
    assert again["economy"] is None
    for a, b in zip(first["items"], again["items"], strict=True):
        assert b["status"] == "replayed"
        assert (b["seq"], b["points"], b["referral_points"], b["quota"]) == (
            a["seq"],
            a["points"],
            a["referral_points"],
            a["quota"],
        )
    assert economy(client, mall) == state
    assert seq(client, mall) == n


def test_same_external_id_with_other_content_is_a_conflict_per_item(
    client: TestClient, mall: Mall
) -> None:
    ok(post_import(client, mall, ORDERS[:1]))
    state = economy(client, mall)
    body = ok(
        post_import(
            client,
            mall,
            [
                {"external_id": "pos-1", "member": "alice", "amount": "100.01"},
                {"external_id": "pos-9", "member": "bob", "amount": "10.00"},
            ],
        )
    )
    assert body["summary"] == {
        "total": 2,
        "applied": 1,
        "replayed": 0,
        "conflict": 1,
        "rejected": 0,
    }
    conflict, applied = body["items"]
    assert conflict["status"] == "conflict"
    assert conflict["error"]["code"] == "idempotency_conflict"
    assert conflict["seq"] is None
    assert conflict["points"] is None
    assert applied["status"] == "applied"
    assert economy(client, mall)["pool"] == state["pool"] + Decimal("3")


def test_registered_referrer_is_used_and_a_contradicting_one_is_rejected(
    client: TestClient, mall: Mall
) -> None:
    """bob was registered with alice's invite code: his imported order rewards alice; an
    order naming another referrer for him is refused by the permanent-link rule."""
    body = ok(
        post_import(
            client,
            mall,
            [
                {"external_id": "b-1", "member": "bob", "amount": "100.00"},
                {"external_id": "b-2", "member": "bob", "amount": "10.00", "referrer": "carol"},
            ],
        )
    )
    ok_item, refused = body["items"]
    assert ok_item["status"] == "applied"
    assert Decimal(ok_item["referral_points"]) > 0
    assert figures(client, mall, "alice")["points"] == Decimal(ok_item["referral_points"])
    assert refused["status"] == "rejected"
    assert refused["error"]["code"] == "invalid_command"
    assert "permanent" in refused["error"]["message"]
    assert body["summary"]["rejected"] == 1


def test_imported_orders_are_settled_even_with_a_return_window(
    client: TestClient, mall: Mall
) -> None:
    set_params(client, mall, settle_days="7")
    body = ok(post_import(client, mall, ORDERS[:1]))
    assert body["items"][0]["status"] == "applied"
    assert Decimal(body["items"][0]["points"]) > 0
    assert economy(client, mall)["escrow"] == 0
    assert figures(client, mall, "alice")["points"] == Decimal(body["items"][0]["points"])


@pytest.mark.parametrize(
    ("bad", "where"),
    [
        ({"amount": "0"}, "orders[2]: amount must be greater than zero"),
        ({"amount": 5}, "body.orders.2.amount"),
        ({"amount": "1.005"}, "body.orders.2.amount"),
        ({"pool_amount": "9.00", "fund_amount": "2.00"}, "orders[2]: pool_amount and fund"),
        ({"referrer": "m2"}, "orders[2]: a member cannot refer themselves"),
        ({"external_id": "x" * 61}, "body.orders.2.external_id"),
        ({"external_id": "e0"}, "orders[2]: external_id 'e0' is also orders[0]"),
        ({"member": "bad member"}, "body.orders.2.member"),
        ({"surprise": "1"}, "body.orders.2.surprise"),
    ],
)
def test_one_invalid_order_refuses_the_whole_batch_naming_it(
    client: TestClient, mall: Mall, bad: dict[str, Any], where: str
) -> None:
    orders: list[dict[str, Any]] = [
        {"external_id": f"e{i}", "member": f"m{i}", "amount": "10.00"} for i in range(4)
    ]
    orders[2].update(bad)
    n = seq(client, mall)
    r = post_import(client, mall, orders)
    error = assert_error(r, 422)
    assert error["message"].startswith(where), error["message"]
    assert seq(client, mall) == n


def test_batch_size_limits(client: TestClient, mall: Mall) -> None:
    assert_error(post_import(client, mall, []), 422, "validation_error")
    too_many = [
        {"external_id": f"e{i}", "member": "m", "amount": "1.00"} for i in range(MAX_IMPORT + 1)
    ]
    assert_error(post_import(client, mall, too_many), 422, "validation_error")


def test_a_large_batch_is_one_ledger_transaction(client: TestClient, mall: Mall) -> None:
    orders = [
        {"external_id": f"big-{i}", "member": f"buyer-{i % 97}", "amount": "19.90"}
        for i in range(1200)
    ]
    n = seq(client, mall)
    body = ok(post_import(client, mall, orders))
    assert body["summary"]["applied"] == 1200
    assert seq(client, mall) == n + 1200
    assert [i["seq"] for i in body["items"]] == list(range(n + 1, n + 1201))
    assert Ledger(engine(client)).verify_chain(tenant_id(client, mall)) is None


def test_only_operators_import_and_other_tenants_get_404(client: TestClient, mall: Mall) -> None:
    other = make_mall(client)
    n = seq(client, mall)
    r = post_import(client, mall, ORDERS, headers=other.operator)
    assert_error(r, 404, "not_found")
    assert r.json()["error"]["message"] == f"no tenant {mall.code!r}"
    assert_error(post_import(client, mall, ORDERS, headers=mall.merchant), 403, "forbidden")
    assert_error(post_import(client, mall, ORDERS, headers=mall.member), 403, "forbidden")
    assert_error(client.post(mall.url("/orders/import"), json={"orders": ORDERS}), 401)
    assert seq(client, mall) == n
    # the same external ids in another tenant are that tenant's own orders
    ok(post_import(client, other, ORDERS))
    assert ok(post_import(client, mall, ORDERS, headers=ADMIN))["summary"]["applied"] == 3


def test_concurrent_imports_of_one_batch_apply_each_order_once(
    client: TestClient, mall: Mall
) -> None:
    """Four clients send the same batch at once (a retry storm): the tenant's ledger lock
    orders them, so each order is applied by exactly one request and replayed by the rest."""
    import threading  # noqa: PLC0415

    orders = [
        {"external_id": f"race-{i}", "member": f"r{i % 7}", "amount": "12.34"} for i in range(300)
    ]
    n = seq(client, mall)
    answers: list[Any] = []

    def send() -> None:
        answers.append(post_import(client, mall, orders))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bodies = [ok(r) for r in answers]
    assert sum(b["summary"]["applied"] for b in bodies) == 300
    assert sum(b["summary"]["replayed"] for b in bodies) == 900
    assert seq(client, mall) == n + 300
    seqs = {tuple(i["seq"] for i in b["items"]) for b in bodies}
    assert len(seqs) == 1  # every answer names the same ledger events
