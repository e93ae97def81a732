"""Helpers of the webhook API tests: an endpoint and a delivery to it, for route templates."""

from __future__ import annotations

from api_helpers import Mall, ok
from fastapi.testclient import TestClient
from orders_helpers import paid_order

URL = "http://127.0.0.1:9/hook"  # refused at once if a scheduler round tries it


def webhook_path_values(client: TestClient, mall: Mall) -> dict[str, str]:
    """An endpoint of the mall's for order.paid, and the delivery a paid order wrote to it."""
    endpoint = ok(
        client.post(
            mall.url("/webhooks"),
            json={"url": URL, "events": ["order.paid"]},
            headers=mall.operator,
        ),
        201,
    )
    paid_order(client, mall)
    found = ok(client.get(mall.url("/webhooks/deliveries"), headers=mall.operator))
    return {"endpoint_id": str(endpoint["id"]), "delivery_id": str(found["items"][-1]["id"])}
