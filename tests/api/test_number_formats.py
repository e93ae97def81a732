"""One number format per field, across every endpoint (docs/API.md, "Conventions").

A mall goes through paid orders, a partial refund, a sell, a withdrawal and a day close; then
every GET route is read (as the operator, and the member routes as the member) and every
decimal string in every answer is checked against its field's one format:

* CNY and SP amounts: two places always (``"200.00"``); a figure finer than the fen (a quota,
  the pool) up to four (``"12.3456"``);
* EP quantities: plain, without trailing zeros or exponent (``"21"``, ``"14.7"``);
* the EP price: four places (``"1.2500"``).

A field the test has not classified fails it, so a new field is given its format on purpose.
"""

from __future__ import annotations

import re
from typing import Any

from api_helpers import Mall, make_mall, ok
from fastapi.testclient import TestClient
from orders_helpers import paid_order
from test_api_auth import ROUTES, TENANT_PREFIX, fill, path_values

CNY = re.compile(r"^-?\d+\.\d{2}(\d{1,2})?$")
POINTS = re.compile(r"^-?(0|[1-9]\d*)(\.\d*[1-9])?$")
PRICE = re.compile(r"^\d+\.\d{4}$")

CNY_FIELDS = {
    "amount", "cny", "dividend_fund", "dividends", "escrow", "escrowed", "fee", "fund_amount",
    "held_net", "members_sp", "net", "open_withdrawals_net", "paid", "paid_cny",
    "paid_points_value", "paid_sp", "payout_hold", "pending_withdrawals", "points_value",
    "pool", "pool_amount", "quota_remaining", "refunded", "revenue", "sale_value", "sales",
    "sell_value", "sp", "sp_issuance", "sp_reserve", "spent", "stable", "total", "unit_price",
    "value", "world", "carry", "payout", "min_spent", "frozen", "granted", "taken_back",
    "compensation", "subsidy", "commission", "released", "locked", "last_price", "pool_share",
    "royalty", "proceeds",
}  # fmt: skip
POINTS_FIELDS = {
    "points", "points_debt", "burned", "circulating", "issued", "total_supply", "treasury",
    "members", "min_points", "ep", "partner_threshold",
}  # fmt: skip
PRICE_FIELDS = {"price", "initial_price", "price_before", "price_after"}
# ratios and durations: plain, like EP quantities
PLAIN_FIELDS = {"commission_ratio", "deadline_hours", "fee_to_pool", "appreciation_step"}
# the same name means another quantity in one place: (route, field) -> its format
EXCEPTIONS = {
    ("/skus", "price"): CNY,  # a SKU's price is CNY; the economy's price is the EP's
    ("/products", "price"): CNY,
    ("/groupbuys", "price"): CNY,  # a group's price per place
    ("/nfg", "price"): CNY,  # a collection's or a listing's price
    # the wallet history and the rewards: EP or SP, by the row's asset (HistoryOut.of)
    ("/history", "amount"): None,
    ("/rewards", "amount"): None,
    # an identity's two sides, in the identity's own asset (CNY, SP or EP: checked below)
    ("/balance-sheet", "left"): None,
    ("/balance-sheet", "right"): None,
}
# tenant parameters are shown as they were set (docs/RULES.md's table gives each its range)
SKIPPED = {"params", "before", "after", "changes"}
NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")


def _format(route: str, field: str) -> re.Pattern[str] | None:
    for (part, name), pattern in EXCEPTIONS.items():
        if name == field and part in route:
            return pattern
    if field in CNY_FIELDS:
        return CNY
    if field in POINTS_FIELDS or field in PLAIN_FIELDS:
        return POINTS
    if field in PRICE_FIELDS:
        return PRICE
    raise AssertionError(f"{route}: field {field!r} holds a number and has no format here")


def _walk(route: str, value: Any, field: str, seen: dict[str, set[str]]) -> None:
    if field in SKIPPED:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            _walk(route, v, k, seen)
    elif isinstance(value, list):
        for v in value:
            _walk(route, v, field, seen)
    elif isinstance(value, str) and NUMBER.fullmatch(value) and "." in value + "." and field:
        if field.endswith(("_id", "id", "ref", "code", "key", "seq", "cursor", "date")):
            return
        pattern = _format(route, field)
        seen.setdefault(field, set()).add(value)
        if pattern is not None:
            assert pattern.fullmatch(value), f"{route}: {field}={value!r}"


def _busy_mall(client: TestClient) -> Mall:
    mall = make_mall(client)
    first = paid_order(client, mall, member=mall.member_code)
    paid_order(client, mall, member=mall.other_member)
    ok(
        client.post(
            mall.url(f"/orders/{first['ref']}/refunds"),
            json={"refund_id": "r1", "amount": "10.00"},
            headers=mall.operator,
        ),
        201,
    )
    ok(client.post(mall.url(f"/orders/{first['ref']}/settlement"), headers=mall.operator))
    sell = mall.url(f"/members/{mall.member_code}/wallet/sell")
    ok(client.post(sell, json={"points": "1.5"}, headers={**mall.member, "Idempotency-Key": "s1"}))
    today = ok(client.get(mall.url("/day-close"), headers=mall.operator))
    ok(client.post(mall.url("/day-close"), json={"date": today["today"]}, headers=mall.operator))
    return mall


def test_every_decimal_field_has_its_one_format_on_every_route(client: TestClient) -> None:
    mall = _busy_mall(client)
    seen: dict[str, set[str]] = {}
    gets = [p for m, p in ROUTES if m == "GET" and p.startswith(TENANT_PREFIX)]
    read = 0
    values: dict[str, str] = {}
    for path in gets:
        # resources made on demand once (some, such as a named campaign, exist only once)
        if any(name not in values for name in re.findall(r"\{(\w+)\}", path)):
            values.update({**path_values(client, mall, path), **values})
        url = fill(path, values)
        headers = mall.member if "/me" in path else mall.operator
        r = client.get(url, headers=headers)
        if r.status_code != 200:
            continue
        _walk(path, r.json(), "", seen)
        read += 1
    assert read >= 30
    # the flow reached the figures that matter, in both kinds
    for field in ("total", "refunded", "pool", "points", "circulating", "price", "stable"):
        assert field in seen, field
