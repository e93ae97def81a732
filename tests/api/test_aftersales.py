"""After-sales over HTTP, on SQLite and PostgreSQL: a member asks for a refund, the merchant or an
operator accepts (the order's refund flow runs, the request id as the refund id) or refuses;
every refusal of a bad request; isolation between members and between merchants; two accepts
at once make one refund; an open request holds the order's settlement."""

from __future__ import annotations

import threading
from typing import Any

from api_helpers import Mall, assert_error, ok
from fastapi.testclient import TestClient
from merchant_helpers import ADDRESS, add_merchant, member_token, order_of
from orders_helpers import run_settlement, service, tenant_id

from tokenmall.service.orders import Viewer

PHOTO = "https://img.example.com/a/1.jpg"
DAY = 86_400


def ask(
    client: TestClient,
    mall: Mall,
    ref: str,
    headers: dict[str, str],
    status: int = 201,
    **body: Any,
) -> Any:
    payload = {"amount": "40.00", "reason": "arrived broken", **body}
    r = client.post(mall.url(f"/orders/{ref}/aftersales"), json=payload, headers=headers)
    if status >= 400:
        return assert_error(r, status)
    return ok(r, status)


def test_the_full_flow_asked_accepted_refunded_with_every_step_kept(
    client: TestClient, mall: Mall
) -> None:
    order = order_of(client, mall, [mall.sku_id], headers=mall.member, address=ADDRESS)
    ref = order["ref"]
    req = ask(client, mall, ref, mall.member, photos=[PHOTO, PHOTO + "?v=2"])
    rid = req["request_id"]
    assert (req["status"], req["amount"], req["member"], req["order_ref"]) == (
        "requested",
        "40.00",
        "alice",
        ref,
    )
    assert req["photos"] == [PHOTO, PHOTO + "?v=2"]
    assert [(h["status"], h["actor"]) for h in req["history"]] == [("requested", "member:alice")]
    # the member lists its own; the merchant of the order sees it waiting
    mine = ok(client.get(mall.url("/aftersales"), headers=mall.member))["items"]
    assert [r["request_id"] for r in mine] == [rid]
    waiting = ok(client.get(mall.url("/aftersales?status=requested"), headers=mall.merchant))
    assert [r["request_id"] for r in waiting["items"]] == [rid]
    assert ok(client.get(mall.url(f"/aftersales?order_ref={ref}"), headers=mall.operator))["items"]
    # the member cannot decide its own request
    assert_error(client.post(mall.url(f"/aftersales/{rid}/accept"), headers=mall.member), 403)

    done = ok(client.post(mall.url(f"/aftersales/{rid}/accept"), headers=mall.merchant))
    assert done["status"] == "refunded"
    assert done["refund_id"] == rid
    steps = [(h["status"], h["actor"].split(":")[0]) for h in done["history"]]
    assert steps == [
        ("requested", "member"),
        ("accepted", "merchant-key"),
        ("refunded", "merchant-key"),
    ]
    after = ok(client.get(mall.url(f"/orders/{ref}"), headers=mall.member))
    assert after["refunded"] == "40.00"
    assert after["status"] == "paid"
    assert [(r["refund_id"], r["amount"]) for r in after["refunds"]] == [(rid, "40.00")]
    # accepting again answers the same request; still one refund
    again = ok(client.post(mall.url(f"/aftersales/{rid}/accept"), headers=mall.operator))
    assert again["history"] == done["history"]
    refunds = ok(client.get(mall.url(f"/orders/{ref}/refunds"), headers=mall.operator))
    assert len(refunds) == 1
    # decided: neither refused nor cancelled any more
    refuse = client.post(
        mall.url(f"/aftersales/{rid}/refuse"), json={"reason": "x"}, headers=mall.operator
    )
    assert_error(refuse, 409, "conflict")
    assert_error(client.post(mall.url(f"/aftersales/{rid}/cancel"), headers=mall.member), 409)
    # what is left may be asked for again; more than that may not
    ask(client, mall, ref, mall.member, status=422, amount="60.01")
    rest = ask(client, mall, ref, mall.member, amount="60.00")
    ok(client.post(mall.url(f"/aftersales/{rest['request_id']}/accept"), headers=mall.operator))
    assert ok(client.get(mall.url(f"/orders/{ref}"), headers=mall.member))["status"] == "refunded"


def test_every_refusal_of_a_bad_request(client: TestClient, mall: Mall) -> None:
    unpaid = order_of(client, mall, [mall.sku_id], headers=mall.member, paid=False)
    err = ask(client, mall, unpaid["ref"], mall.member, status=409)
    assert err["code"] == "order_state"
    order = order_of(client, mall, [mall.sku_id], headers=mall.member)
    ref = order["ref"]
    for body in (
        {"amount": "100.01"},  # more than the order
        {"amount": "0.00"},
        {"amount": 40},  # a JSON number
        {"amount": "1.001"},
        {"reason": ""},
        {"reason": "x" * 201},
        {"photos": ["http://img.example.com/1.jpg"]},
        {"photos": ["javascript:alert(1)"]},
        {"photos": ["https://"]},
        {"photos": ["https://img.example.com/a b.jpg"]},
        {"photos": ["https://img.example.com/" + "x" * 500]},
        {"photos": [PHOTO] * 10},
        {"unknown": 1},
    ):
        ask(client, mall, ref, mall.member, status=422, **body)
    assert_error(  # a merchant does not ask
        client.post(
            mall.url(f"/orders/{ref}/aftersales"),
            json={"amount": "1.00", "reason": "x"},
            headers=mall.merchant,
        ),
        403,
        "forbidden",
    )
    first = ask(client, mall, ref, mall.member)
    err = ask(client, mall, ref, mall.member, status=409, amount="1.00")
    assert err["code"] == "duplicate_request"
    assert first["request_id"] in err["message"]
    # cancelled, the order may be asked for again
    ok(client.post(mall.url(f"/aftersales/{first['request_id']}/cancel"), headers=mall.member))
    second = ask(client, mall, ref, mall.member)
    assert second["request_id"] != first["request_id"]
    ok(client.post(mall.url(f"/aftersales/{second['request_id']}/cancel"), headers=mall.member))

    # delivered: inside the window yes, after it no
    ok(client.post(mall.url(f"/orders/{ref}/delivery"), headers=mall.member))
    inside = ask(client, mall, ref, mall.member)
    ok(client.post(mall.url(f"/aftersales/{inside['request_id']}/cancel"), headers=mall.member))
    svc = service(client)
    real = svc.clock
    try:
        svc.clock = lambda: real() + 8 * DAY  # settle_days is 7
        err = ask(client, mall, ref, mall.member, status=409)
        assert err["code"] == "order_state"
        assert "return window" in err["message"]
    finally:
        svc.clock = real
    # settled: the window is over
    settled = order_of(client, mall, [mall.sku_id], headers=mall.member)
    ok(client.post(mall.url(f"/orders/{settled['ref']}/settlement"), headers=mall.operator))
    ask(client, mall, settled["ref"], mall.member, status=409)


def test_refuse_with_a_reason_and_cancel_by_the_member(client: TestClient, mall: Mall) -> None:
    order = order_of(client, mall, [mall.sku_id], headers=mall.member)
    rid = ask(client, mall, order["ref"], mall.member)["request_id"]
    url = mall.url(f"/aftersales/{rid}")
    assert_error(client.post(f"{url}/refuse", json={}, headers=mall.merchant), 422)
    assert_error(client.post(f"{url}/refuse", json={"reason": "no"}, headers=mall.member), 403)
    assert_error(client.post(f"{url}/cancel", headers=mall.merchant), 403)
    refused = ok(
        client.post(f"{url}/refuse", json={"reason": "used, not broken"}, headers=mall.merchant)
    )
    assert refused["status"] == "refused"
    assert refused["decision_note"] == "used, not broken"
    assert refused["refund_id"] is None
    assert [h["status"] for h in refused["history"]] == ["requested", "refused"]
    assert refused["history"][1]["note"] == "used, not broken"
    # refusing again answers it unchanged; accepting or cancelling it is too late
    again = ok(client.post(f"{url}/refuse", json={"reason": "still no"}, headers=mall.operator))
    assert again["history"] == refused["history"]
    assert_error(client.post(f"{url}/accept", headers=mall.operator), 409, "conflict")
    assert_error(client.post(f"{url}/cancel", headers=mall.member), 409, "conflict")
    assert (
        ok(client.get(mall.url(f"/orders/{order['ref']}"), headers=mall.member))["refunded"]
        == "0.00"
    )

    other = ask(client, mall, order["ref"], mall.member)["request_id"]
    cancelled = ok(client.post(mall.url(f"/aftersales/{other}/cancel"), headers=mall.member))
    assert cancelled["status"] == "cancelled"
    assert [(h["status"], h["actor"]) for h in cancelled["history"]][-1] == (
        "cancelled",
        "member:alice",
    )
    again = ok(client.post(mall.url(f"/aftersales/{other}/cancel"), headers=mall.member))
    assert again["history"] == cancelled["history"]
    assert_error(client.post(mall.url(f"/aftersales/{other}/accept"), headers=mall.merchant), 409)
    listed = ok(client.get(mall.url("/aftersales?status=cancelled"), headers=mall.operator))[
        "items"
    ]
    assert [r["request_id"] for r in listed] == [other]


def test_members_see_and_touch_only_their_own_requests(client: TestClient, mall: Mall) -> None:
    order = order_of(client, mall, [mall.sku_id], headers=mall.member)
    rid = ask(client, mall, order["ref"], mall.member)["request_id"]
    bob = member_token(client, mall, "bob")
    assert_error(client.get(mall.url(f"/aftersales/{rid}"), headers=bob), 404, "not_found")
    assert_error(client.post(mall.url(f"/aftersales/{rid}/cancel"), headers=bob), 404)
    assert ok(client.get(mall.url("/aftersales"), headers=bob))["items"] == []
    err = ask(client, mall, order["ref"], bob, status=404)
    assert err["code"] == "not_found"
    # bob's own order and request: alice sees neither
    bobs = order_of(client, mall, [mall.sku_id], headers=bob)
    bob_rid = ask(client, mall, bobs["ref"], bob)["request_id"]
    assert [
        r["request_id"]
        for r in ok(client.get(mall.url("/aftersales"), headers=mall.member))["items"]
    ] == [rid]
    assert_error(client.get(mall.url(f"/aftersales/{bob_rid}"), headers=mall.member), 404)
    # an operator asks for a buyer; the step names the operator
    ok(client.post(mall.url(f"/aftersales/{bob_rid}/cancel"), headers=mall.operator))
    by_op = ask(client, mall, bobs["ref"], mall.operator, amount="5.00")
    assert by_op["member"] == "bob"
    assert by_op["history"][0]["actor"].startswith("operator-key:")


def test_merchants_decide_only_orders_wholly_their_own(client: TestClient, mall: Mall) -> None:
    b = add_merchant(client, mall, "m2")
    only_b = order_of(client, mall, [b.sku_id], headers=mall.member)
    mixed = order_of(client, mall, [mall.sku_id, b.sku_id], headers=mall.member)
    rb = ask(client, mall, only_b["ref"], mall.member, amount="10.00")["request_id"]
    rm = ask(client, mall, mixed["ref"], mall.member, amount="10.00")["request_id"]
    # A: B's order's request does not exist for it; the mixed one is seen, not decided
    assert_error(client.get(mall.url(f"/aftersales/{rb}"), headers=mall.merchant), 404)
    assert_error(client.post(mall.url(f"/aftersales/{rb}/accept"), headers=mall.merchant), 404)
    seen = ok(client.get(mall.url("/aftersales"), headers=mall.merchant))["items"]
    assert [r["request_id"] for r in seen] == [rm]
    assert_error(client.post(mall.url(f"/aftersales/{rm}/accept"), headers=mall.merchant), 403)
    r = client.post(mall.url(f"/aftersales/{rm}/refuse"), json={"reason": "no"}, headers=b.key)
    assert_error(r, 403, "forbidden")
    assert "operator" in r.json()["error"]["message"]
    # B decides its own; an operator decides the mixed one
    assert (
        ok(client.post(mall.url(f"/aftersales/{rb}/accept"), headers=b.key))["status"] == "refunded"
    )
    assert (
        ok(client.post(mall.url(f"/aftersales/{rm}/accept"), headers=mall.operator))["status"]
        == "refunded"
    )
    # the operator's list filters by merchant
    of_a = ok(
        client.get(mall.url(f"/aftersales?merchant_id={mall.merchant_id}"), headers=mall.operator)
    )
    assert [r["request_id"] for r in of_a["items"]] == [rm]


def test_two_accepts_at_once_make_one_refund(client: TestClient, mall: Mall) -> None:
    order = order_of(client, mall, [mall.sku_id], headers=mall.member)
    rid = ask(client, mall, order["ref"], mall.member)["request_id"]
    svc = service(client)
    tid = tenant_id(client, mall)
    barrier = threading.Barrier(4)
    results: list[tuple[str, bool]] = []
    errors: list[BaseException] = []

    def accept() -> None:
        try:
            barrier.wait()
            req, did = svc.aftersales.accept(tid, mall.code, rid, viewer=Viewer(), actor="t")
            results.append((req.status, did))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=accept) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results) == [("refunded", False)] * 3 + [("refunded", True)]
    after = ok(client.get(mall.url(f"/orders/{order['ref']}"), headers=mall.operator))
    assert after["refunded"] == "40.00"
    assert [r["refund_id"] for r in after["refunds"]] == [rid]
    steps = ok(client.get(mall.url(f"/aftersales/{rid}"), headers=mall.operator))["history"]
    assert [h["status"] for h in steps] == ["requested", "accepted", "refunded"]


def test_an_open_request_holds_settlement_until_decided(client: TestClient, mall: Mall) -> None:
    order = order_of(client, mall, [mall.sku_id], headers=mall.member)
    ref = order["ref"]
    ok(client.post(mall.url(f"/orders/{ref}/delivery"), headers=mall.member))
    rid = ask(client, mall, ref, mall.member)["request_id"]
    report = run_settlement(client, mall, 8 * DAY)
    assert report.settled == 0
    assert (
        ok(client.get(mall.url(f"/orders/{ref}"), headers=mall.operator))["status"] == "delivered"
    )
    ok(
        client.post(
            mall.url(f"/aftersales/{rid}/refuse"), json={"reason": "no"}, headers=mall.merchant
        )
    )
    assert run_settlement(client, mall, 8 * DAY).settled == 1
    assert ok(client.get(mall.url(f"/orders/{ref}"), headers=mall.operator))["status"] == "settled"
    # a request accepted after the window closed is still refunded (the request was in time)
    other = order_of(client, mall, [mall.sku_id], headers=mall.member)
    ok(client.post(mall.url(f"/orders/{other['ref']}/delivery"), headers=mall.member))
    late = ask(client, mall, other["ref"], mall.member)["request_id"]
    svc = service(client)
    real = svc.clock
    try:
        svc.clock = lambda: real() + 8 * DAY
        done = ok(client.post(mall.url(f"/aftersales/{late}/accept"), headers=mall.merchant))
    finally:
        svc.clock = real
    assert done["status"] == "refunded"
    assert (
        ok(client.get(mall.url(f"/orders/{other['ref']}"), headers=mall.operator))["refunded"]
        == "40.00"
    )
