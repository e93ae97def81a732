"""Webhooks over HTTP: operators register endpoints (the secret shown once), list them,
list and replay deliveries, disable; nobody else may; bad input is a 4xx."""

from __future__ import annotations

import httpx
from api_helpers import Mall, assert_error, make_mall, ok
from fastapi.testclient import TestClient
from orders_helpers import engine, paid_order, tenant_id
from webhook_helpers import URL

from tokenmall.service.webhooks import WebhookSender


def _create(client: TestClient, mall: Mall, **body: object) -> dict[str, object]:
    payload = {"url": URL, "events": ["order.paid"], **body}
    created: dict[str, object] = ok(
        client.post(mall.url("/webhooks"), json=payload, headers=mall.operator), 201
    )
    return created


def test_an_operator_registers_lists_and_disables_an_endpoint(
    client: TestClient, mall: Mall
) -> None:
    created = _create(client, mall, events=["day.closed", "order.paid"], description="ERP")
    assert str(created["secret"]).startswith("whsec_")
    assert created["events"] == ["order.paid", "day.closed"]
    listed = ok(client.get(mall.url("/webhooks"), headers=mall.operator))
    assert listed["next_cursor"] is None
    assert [e["id"] for e in listed["items"]] == [created["id"]]
    assert "secret" not in listed["items"][0]  # shown once
    gone = ok(client.delete(mall.url(f"/webhooks/{created['id']}"), headers=mall.operator))
    assert gone["disabled_at"] is not None
    assert ok(client.delete(mall.url(f"/webhooks/{created['id']}"), headers=mall.operator))
    assert_error(client.delete(mall.url("/webhooks/999999"), headers=mall.operator), 404)


def test_bad_endpoints_are_refused(client: TestClient, mall: Mall) -> None:
    post = mall.url("/webhooks")
    for body in [
        {"url": "http://shop.example.com/hook", "events": ["order.paid"]},
        {"url": "https://shop.example.com/hook", "events": ["order.shipped"]},
        {"url": "https://shop.example.com/hook", "events": []},
        {"url": "not a url at all", "events": ["order.paid"]},
    ]:
        assert_error(client.post(post, json=body, headers=mall.operator), 422)


def test_only_operators_reach_webhooks(client: TestClient, mall: Mall) -> None:
    for headers in (mall.member, mall.merchant):
        assert_error(client.get(mall.url("/webhooks"), headers=headers), 403)
        assert_error(
            client.post(
                mall.url("/webhooks"), json={"url": URL, "events": ["order.paid"]}, headers=headers
            ),
            403,
        )


def test_deliveries_are_listed_by_status_and_replayed(client: TestClient, mall: Mall) -> None:
    endpoint = _create(client, mall)
    order = paid_order(client, mall)
    listed = ok(client.get(mall.url("/webhooks/deliveries?status=pending"), headers=mall.operator))
    assert len(listed["items"]) == 1
    delivery = listed["items"][0]
    assert delivery["endpoint_id"] == endpoint["id"]
    assert delivery["event"]["type"] == "order.paid"
    assert delivery["event"]["data"]["order"] == order["ref"]
    assert delivery["event"]["id"] == delivery["event_id"]
    assert (
        ok(client.get(mall.url("/webhooks/deliveries?status=failed"), headers=mall.operator))[
            "items"
        ]
        == []
    )

    # sent by the process's sender (through a fake transport), then replayed by an operator
    tid = tenant_id(client, mall)
    seen: list[str] = []
    sender = WebhookSender(
        engine(client),
        transport=httpx.MockTransport(
            lambda r: seen.append(r.headers["Tokenmall-Event-Id"]) or httpx.Response(200)
        ),
    )
    assert sender.deliver_due(tenants=[tid]) == 1
    one = ok(client.get(mall.url(f"/webhooks/deliveries/{delivery['id']}"), headers=mall.operator))
    assert (one["status"], one["attempts"], one["last_status"]) == ("delivered", 1, 200)
    replayed = ok(
        client.post(
            mall.url(f"/webhooks/deliveries/{delivery['id']}/replay"), headers=mall.operator
        )
    )
    assert (replayed["status"], replayed["attempts"]) == ("pending", 0)
    assert sender.deliver_due(tenants=[tid]) == 1
    assert seen == [delivery["event_id"]] * 2  # same event id: the receiver de-duplicates

    other = make_mall(client)
    assert_error(
        client.get(
            mall.url(f"/webhooks/deliveries/{delivery['id']}").replace(mall.code, other.code),
            headers=other.operator,
        ),
        404,
    )
