"""Helpers of the group-buy API tests: offers, groups, places paid through the sandbox."""

from __future__ import annotations

import uuid
from typing import Any

from api_helpers import Mall, ok
from fastapi.testclient import TestClient
from orders_helpers import complete, start_payment


def offer(client: TestClient, mall: Mall, **body: Any) -> Any:
    body = {
        "code": f"o{uuid.uuid4().hex[:8]}",
        "sku_id": mall.sku_id,
        "mode": "multi",
        "price": "70.00",
        "size": 2,
        **body,
    }
    return ok(client.post(mall.url("/groupbuys/offers"), json=body, headers=mall.operator), 201)


def pay_place(client: TestClient, mall: Mall, group: Any, member: str) -> None:
    ref = next(p["order"] for p in group["places"] if p["member"] == member)
    pay = start_payment(client, mall, ref)
    complete(client, mall, pay["intent_id"])


def groupbuy_path_values(client: TestClient, mall: Mall, path: str = "") -> dict[str, str]:
    """A campaign, an offer and an open group of the mall: ``{code}`` (the offer's in an
    ``/offers/`` path, else the campaign's) and ``{public_id}``."""
    camp = ok(
        client.post(
            mall.url("/groupbuys/campaigns"),
            json={"code": "c1", "winners": 1},
            headers=mall.operator,
        ),
        201,
    )
    o = offer(client, mall, size=3)
    group = ok(
        client.post(
            mall.url("/groupbuys/groups"),
            json={"offer": o["code"], "member": mall.member_code},
            headers=mall.operator,
        ),
        201,
    )
    code = o["code"] if "/offers/" in path else camp["code"]
    return {"code": code, "public_id": group["public_id"]}
