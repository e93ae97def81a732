"""Provider callbacks and payments over HTTP, on SQLite and PostgreSQL: signatures, replays,
late and out-of-order notifications, the SP part of a payment, WeChat Pay v3."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from api_helpers import Mall, assert_error, make_mall, ok
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from orders_helpers import (
    complete,
    create_order,
    economy,
    engine,
    figures,
    notify,
    read_order,
    run_expiry,
    service,
    start_payment,
    tenant_id,
)
from sqlalchemy import func, select

from tokenmall.domain.economy import Purchase, Sell
from tokenmall.payments.sandbox import DeliveryChaos, sign_sandbox
from tokenmall.payments.wechat import (
    build_notification,
    encrypt_resource,
    sign_message,
    transaction_resource,
    wechat_time,
)
from tokenmall.service.ledger import Ledger
from tokenmall.store import schema as s


def sku_stock(client: TestClient, mall: Mall) -> int:
    return int(ok(client.get(mall.url(f"/skus/{mall.sku_id}"), headers=mall.operator))["stock"])


def pending_delivery(client: TestClient, mall: Mall, **order: Any) -> tuple[str, dict[str, Any]]:
    """An order whose sandbox payment succeeded, with its notification not delivered yet."""
    o = create_order(client, mall, **order)
    pay = start_payment(client, mall, o["ref"])
    done = complete(client, mall, pay["intent_id"], deliver=False)
    return o["ref"], done["deliveries"][0]


def event_count(client: TestClient, mall: Mall) -> int:
    e = s.provider_events.c
    with engine(client).connect() as conn:
        return int(
            conn.execute(
                select(func.count()).where(e.tenant_id == tenant_id(client, mall))
            ).scalar_one()
        )


# ----------------------------------------------------------------------------- signatures


@pytest.mark.parametrize(
    "tamper",
    ["signature", "body", "timestamp", "missing-header", "garbage", "empty"],
)
def test_a_notification_that_fails_verification_is_refused_and_changes_nothing(
    client: TestClient, mall: Mall, tamper: str
) -> None:
    ref, delivery = pending_delivery(client, mall)
    headers = dict(delivery["headers"])
    body: bytes = delivery["body"].encode()
    if tamper == "signature":
        headers["Sandbox-Signature"] = "0" * 64
    elif tamper == "body":
        body = body.replace(b'"amount_fen":10000', b'"amount_fen":1')
    elif tamper == "timestamp":
        headers["Sandbox-Timestamp"] = str(int(headers["Sandbox-Timestamp"]) + 1)
    elif tamper == "missing-header":
        del headers["Sandbox-Signature"]
    elif tamper == "garbage":
        body = b"\x00\xff not json"
    else:
        headers, body = {}, b""
    r = client.post(mall.url("/payments/sandbox/notify"), content=body, headers=headers)
    assert_error(r, 400)
    assert read_order(client, mall, ref)["status"] == "pending_payment"
    assert event_count(client, mall) == 0
    # the genuine delivery still works afterwards
    assert ok(notify(client, mall, delivery))["outcome"] == "applied"


def test_a_stale_notification_is_refused(client: TestClient, mall: Mall) -> None:
    ref, delivery = pending_delivery(client, mall)
    gateway = service(client).hub.sandbox(mall.code).gateway
    old = datetime.now(UTC) - timedelta(minutes=30)
    # the same body, signed (with the right key) 30 minutes ago: the tolerance is 5
    ts = str(int(old.timestamp()))
    headers = dict(delivery["headers"])
    headers["Sandbox-Timestamp"] = ts
    headers["Sandbox-Signature"] = sign_sandbox(
        gateway.secret, ts, headers["Sandbox-Nonce"], delivery["body"].encode()
    )
    r = client.post(
        mall.url("/payments/sandbox/notify"), content=delivery["body"].encode(), headers=headers
    )
    assert_error(r, 400, "stale_notification")
    assert read_order(client, mall, ref)["status"] == "pending_payment"


def test_another_tenants_notification_is_refused_at_this_tenants_callback(
    client: TestClient, mall: Mall
) -> None:
    other = make_mall(client)
    ref, delivery = pending_delivery(client, mall)
    # signed with this tenant's secret, posted to the other's callback: its key does not verify
    assert_error(notify(client, other, delivery), 400, "invalid_signature")
    assert_error(notify(client, other, delivery, provider="wechat"), 409, "provider_not_configured")
    r = client.post(
        "/v1/tenants/no-such-tenant/payments/sandbox/notify",
        content=delivery["body"].encode(),
        headers=delivery["headers"],
    )
    assert_error(r, 404, "not_found")
    assert read_order(client, mall, ref)["status"] == "pending_payment"
    assert ok(notify(client, mall, delivery))["outcome"] == "applied"


def test_callbacks_need_no_credential_but_other_routes_do(client: TestClient, mall: Mall) -> None:
    ref, delivery = pending_delivery(client, mall)
    headers = {**delivery["headers"], "Authorization": "Bearer nonsense"}
    r = client.post(
        mall.url("/payments/sandbox/notify"), content=delivery["body"].encode(), headers=headers
    )
    assert ok(r)["outcome"] == "applied"
    assert_error(client.get(mall.url(f"/orders/{ref}")), 401, "unauthenticated")


# ----------------------------------------------------------------------------- late, out of order


def test_a_payment_for_an_expired_order_is_voided_and_refunded(
    client: TestClient, mall: Mall
) -> None:
    order = create_order(client, mall, qty=2)
    ref = order["ref"]
    pay = start_payment(client, mall, ref)
    assert sku_stock(client, mall) == 8
    # the order expires (the job) before the customer pays
    assert run_expiry(client, mall, 3600) == 1
    assert sku_stock(client, mall) == 10
    done = complete(client, mall, pay["intent_id"])  # delivered in-process
    assert [r["outcome"] for r in done["results"]] == ["voided", "refund_succeeded"]
    after = read_order(client, mall, ref)
    assert after["status"] == "expired"
    [payment] = after["payments"]
    assert (payment["status"], payment["refund_status"]) == ("voided", "succeeded")
    assert "expired" in payment["note"]
    assert sku_stock(client, mall) == 10  # not released twice
    eco = economy(client, mall)
    assert (eco["escrow"], eco["world"]) == (Decimal(0), Decimal(0))  # no money kept
    assert run_expiry(client, mall, 7200) == 0


def test_paid_before_expiry_but_notified_after_it_counts(client: TestClient, mall: Mall) -> None:
    ref, delivery = pending_delivery(client, mall)
    svc = service(client)
    real = svc.clock
    svc.clock = lambda: real() + 3600  # the notification arrives an hour later
    try:
        assert ok(notify(client, mall, delivery))["outcome"] == "applied"
    finally:
        svc.clock = real
    assert read_order(client, mall, ref)["status"] == "paid"


def test_lazy_expiry_when_an_overdue_order_is_read(client: TestClient, mall: Mall) -> None:
    order = create_order(client, mall, qty=4)
    assert sku_stock(client, mall) == 6
    svc = service(client)
    real = svc.clock
    svc.clock = lambda: real() + 16 * 60
    try:
        assert read_order(client, mall, order["ref"])["status"] == "expired"
        r = client.post(
            mall.url(f"/orders/{order['ref']}/payments"), json={}, headers=mall.operator
        )
        assert_error(r, 409, "order_state")
    finally:
        svc.clock = real
    assert sku_stock(client, mall) == 10
    assert run_expiry(client, mall, 3600) == 0


def test_a_second_attempt_paid_after_the_first_is_voided(client: TestClient, mall: Mall) -> None:
    order = create_order(client, mall)
    ref = order["ref"]
    first = start_payment(client, mall, ref)
    # a second attempt with another split (some SP) is a second intent
    seed_sp(client, mall, "bob", Decimal("20"))
    second = start_payment(client, mall, ref, sp="10.00")
    assert second["intent_id"] != first["intent_id"]
    assert second["cny"] == "90.00"
    # the customer pays both; the notifications come back to us to deliver
    d1 = complete(client, mall, first["intent_id"], deliver=False)["deliveries"][0]
    d2 = complete(client, mall, second["intent_id"], deliver=False)["deliveries"][0]
    assert ok(notify(client, mall, d1))["outcome"] == "applied"
    # the other attempt's money arrives after the order is paid: given back, not applied
    assert ok(notify(client, mall, d2))["outcome"] == "voided"
    paid = read_order(client, mall, ref)
    assert paid["paid_cny"] == "100.00"
    assert [(p["attempt"], p["status"]) for p in paid["payments"]] == [(1, "paid"), (2, "voided")]
    # the refund went through the sandbox, whose confirmation the service took in
    assert paid["payments"][1]["refund_status"] == "succeeded"
    assert figures(client, mall, "bob")["stable"] >= Decimal(20)  # the SP part never moved
    assert economy(client, mall)["escrow"] == Decimal(100)
    # redelivered, in either order, nothing changes
    assert ok(notify(client, mall, d2))["duplicate"] is True
    assert ok(notify(client, mall, d1))["duplicate"] is True
    assert economy(client, mall)["escrow"] == Decimal(100)


def test_chaotic_delivery_pays_each_order_once(client: TestClient, mall: Mall) -> None:
    """The sandbox's own misbehaviour: every notification duplicated, some held back for
    later rounds, each round shuffled."""
    gateway = service(client).hub.sandbox(mall.code).gateway
    gateway.chaos = DeliveryChaos(
        duplicate_probability=1.0, max_extra_copies=3, delay_probability=0.5, shuffle=True
    )
    refs = []
    for _ in range(5):
        o = create_order(client, mall)
        pay = start_payment(client, mall, o["ref"])
        complete(client, mall, pay["intent_id"], deliver=False)
        refs.append(o["ref"])
    service(client).pump_sandbox(tenant_id(client, mall), mall.code)
    assert gateway.pending_event_ids == ()
    assert {read_order(client, mall, r)["status"] for r in refs} == {"paid"}
    assert event_count(client, mall) == 5
    assert economy(client, mall)["escrow"] == Decimal(500)
    assert len(gateway.deliveries) > 10  # many more deliveries than events


def test_a_failed_payment_leaves_the_order_open_for_another_attempt(
    client: TestClient, mall: Mall
) -> None:
    order = create_order(client, mall)
    ref = order["ref"]
    pay = start_payment(client, mall, ref)
    done = complete(client, mall, pay["intent_id"], result="failed")
    assert [r["outcome"] for r in done["results"]] == ["payment_failed"]
    assert read_order(client, mall, ref)["status"] == "pending_payment"
    again = start_payment(client, mall, ref)
    assert again["attempt"] == 2
    complete(client, mall, again["intent_id"])
    assert read_order(client, mall, ref)["status"] == "paid"
    r = client.post(
        mall.url(f"/payments/sandbox/intents/{pay['intent_id']}/complete"),
        json={},
        headers=mall.operator,
    )
    assert_error(r, 409, "order_state")  # a failed intent cannot be paid


# ----------------------------------------------------------------------------- SP


def seed_sp(client: TestClient, mall: Mall, member: str, amount: Decimal) -> None:
    """Give ``member`` SP the way the economy does: a purchase, then a sale of all its EP."""
    ledger = Ledger(engine(client))
    tid = tenant_id(client, mall)
    ledger.submit(tid, [(f"seed:{member}", Purchase(f"seed-{member}", member, amount * 10))])
    points = Decimal(ledger.members(tid, [member])[member]["points"])
    ledger.submit(tid, [(f"seed-sell:{member}", Sell(member, points))])
    # top up or trim to exactly ``amount`` is not needed: tests ask for less than they hold
    assert Decimal(ledger.members(tid, [member])[member]["stable"]) >= amount


def test_cny_and_sp_move_together_when_the_notification_arrives(
    client: TestClient, mall: Mall
) -> None:
    seed_sp(client, mall, "bob", Decimal("30"))
    before = figures(client, mall, "bob")["stable"]
    order = create_order(client, mall)
    pay = start_payment(client, mall, order["ref"], sp="30.00")
    assert (pay["cny"], pay["sp"]) == ("70.00", "30.00")
    assert figures(client, mall, "bob")["stable"] == before  # nothing taken yet
    complete(client, mall, pay["intent_id"])
    paid = read_order(client, mall, order["ref"])
    assert (paid["status"], paid["paid_cny"], paid["paid_sp"]) == ("paid", "70.00", "30.00")
    assert figures(client, mall, "bob")["stable"] == before - 30

    # a refund returns the mix: 35 CNY through the provider, 15 as SP
    refund = ok(
        client.post(
            mall.url(f"/orders/{order['ref']}/refunds"),
            json={"refund_id": "mix-1", "amount": "50.00"},
            headers=mall.operator,
        ),
        201,
    )
    assert (refund["cny"], refund["sp"]) == ("35.00", "15.00")
    assert figures(client, mall, "bob")["stable"] == before - 15


def test_sp_spent_elsewhere_before_the_notification_fails_the_order(
    client: TestClient, mall: Mall
) -> None:
    seed_sp(client, mall, "bob", Decimal("100"))
    held = figures(client, mall, "bob")["stable"]
    units = int(held // 100)  # what the wallet alone can pay for
    order = create_order(client, mall, qty=1)
    pay = start_payment(client, mall, order["ref"], sp="99.99")
    # the wallet pays another order in full meanwhile
    other = create_order(client, mall, qty=units)
    wallet = start_payment(client, mall, other["ref"], sp=f"{units * 100}.00")
    assert wallet["provider"] == "wallet"
    assert read_order(client, mall, other["ref"])["status"] == "paid"
    assert figures(client, mall, "bob")["stable"] < Decimal("99.99")
    done = complete(client, mall, pay["intent_id"])
    assert done["results"][0]["outcome"] == "voided"
    failed = read_order(client, mall, order["ref"])
    assert failed["status"] == "failed"
    assert "insufficient" in failed["close_reason"].lower() or "holds" in failed["close_reason"]
    assert failed["payments"][0]["refund_status"] == "succeeded"
    assert sku_stock(client, mall) == 10 - units  # the failed order's unit is back


def test_sp_only_payment_is_immediate_and_checked(client: TestClient, mall: Mall) -> None:
    order = create_order(client, mall)
    r = client.post(
        mall.url(f"/orders/{order['ref']}/payments"), json={"sp": "100.00"}, headers=mall.operator
    )
    assert_error(r, 409, "insufficient_balance")
    r = client.post(
        mall.url(f"/orders/{order['ref']}/payments"), json={"sp": "100.01"}, headers=mall.operator
    )
    assert_error(r, 422)
    assert read_order(client, mall, order["ref"])["status"] == "pending_payment"


def test_merchant_that_refuses_sp(client: TestClient, mall: Mall) -> None:
    ok(
        client.patch(
            mall.url(f"/merchants/{mall.merchant_id}"),
            json={"accepts_sp": False},
            headers=mall.operator,
        )
    )
    seed_sp(client, mall, "bob", Decimal("10"))
    order = create_order(client, mall)
    r = client.post(
        mall.url(f"/orders/{order['ref']}/payments"), json={"sp": "10.00"}, headers=mall.operator
    )
    assert_error(r, 422)
    assert "does not accept SP" in r.json()["error"]["message"]


# ----------------------------------------------------------------------------- WeChat Pay v3


def configure_wechat(client: TestClient, mall: Mall) -> tuple[rsa.RSAPrivateKey, str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    serial, api_key = "PUB_KEY_ID_0001", "0123456789abcdef0123456789abcdef"
    body = {"api_v3_key": api_key, "platform_keys": {serial: pem}, "mch_id": "1900000109"}
    cfg = ok(client.put(mall.url("/payments/wechat/config"), json=body, headers=mall.operator))
    assert cfg["configured"] is True
    assert cfg["platform_key_serials"] == [serial]
    assert "api_v3_key" not in json.dumps(cfg)
    return key, serial, api_key


def test_wechat_notifications_verified_and_applied_once(client: TestClient, mall: Mall) -> None:
    cfg = ok(client.get(mall.url("/payments/wechat/config"), headers=mall.operator))
    assert cfg["configured"] is False
    order = create_order(client, mall)
    r = client.post(
        mall.url(f"/orders/{order['ref']}/payments"),
        json={"provider": "wechat"},
        headers=mall.operator,
    )
    assert_error(r, 409, "provider_not_configured")
    key, serial, api_key = configure_wechat(client, mall)
    pay = start_payment(client, mall, order["ref"], provider="wechat")
    assert pay["intent_id"] == pay["provider_order_id"]

    def delivery(**kw: Any) -> Any:
        resource = transaction_resource(
            order_id=pay["provider_order_id"],
            amount=Decimal(pay["cny"]),
            transaction_id="4200000000202611250000000001",
            success_time=datetime.now(UTC),
        )
        return build_notification(
            private_key=kw.get("key", key),
            serial=serial,
            api_v3_key=api_key,
            resource=resource,
            sent_at=datetime.now(UTC),
        )

    url = mall.url("/payments/wechat/notify")
    # a different platform key: the signature does not verify
    forged = delivery(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    assert_error(
        client.post(url, content=forged.body, headers=dict(forged.headers)),
        400,
        "invalid_signature",
    )
    assert read_order(client, mall, order["ref"])["status"] == "pending_payment"
    # three deliveries (each with its own envelope id, nonce and signature): applied once
    answers = []
    for _ in range(3):
        d = delivery()
        answers.append(ok(client.post(url, content=d.body, headers=dict(d.headers))))
    assert [a["duplicate"] for a in answers] == [False, True, True]
    assert answers[0]["outcome"] == "applied"
    paid = read_order(client, mall, order["ref"])
    assert (paid["status"], paid["payments"][0]["provider"]) == ("paid", "wechat")
    # no outbound WeChat API yet: a refund's CNY part is marked for the operator
    refund = ok(
        client.post(
            mall.url(f"/orders/{order['ref']}/refunds"),
            json={"refund_id": "wx-1"},
            headers=mall.operator,
        ),
        201,
    )
    assert refund["provider_status"] == "manual"


def test_wechat_config_is_validated(client: TestClient, mall: Mall) -> None:
    url = mall.url("/payments/wechat/config")
    body = {"api_v3_key": "0" * 32, "platform_keys": {"s": "not a pem"}}
    assert_error(client.put(url, json=body, headers=mall.operator), 422)
    assert_error(client.put(url, json={**body, "api_v3_key": "short"}, headers=mall.operator), 422)
    assert_error(client.put(url, json=body, headers=mall.member), 403)


# ----------------------------------------------------------------------------- nesting depth

# Arrays nested this deep once made the JSON parser raise RecursionError (a 500); the body is
# well under the 64 KiB a notification may be, so it gets past the size check
DEEP = 30_000


def _deep(inner: bytes = b"1", depth: int = DEEP) -> bytes:
    return b"[" * depth + inner + b"]" * depth


def _signed_sandbox(client: TestClient, mall: Mall, body: bytes) -> dict[str, str]:
    secret = service(client).hub.sandbox(mall.code).gateway.secret
    ts, nonce = str(int(datetime.now(UTC).timestamp())), "deep-nonce"
    return {
        "Sandbox-Timestamp": ts,
        "Sandbox-Nonce": nonce,
        "Sandbox-Signature": sign_sandbox(secret, ts, nonce, body),
        "Content-Type": "application/json",
    }


@pytest.mark.parametrize(
    "body",
    [
        _deep(),
        b'{"tenant": ' + _deep() + b"}",
        b'{"data": {"x": ' + b'{"a":' * 10_000 + b"1" + b"}" * 10_000 + b"}}",
    ],
    ids=["array", "in-object", "objects"],
)
@pytest.mark.usefixtures("default_recursion_limit")
def test_a_signed_sandbox_notification_nested_too_deep_is_refused_400(
    client: TestClient, mall: Mall, body: bytes
) -> None:
    assert len(body) <= 64 * 1024  # within the size cap: the depth is what is refused
    r = client.post(
        mall.url("/payments/sandbox/notify"),
        content=body,
        headers=_signed_sandbox(client, mall, body),
    )
    error = assert_error(r, 400, "malformed_notification")
    assert error["message"] == "body is not valid JSON: nested deeper than 64 levels"
    assert event_count(client, mall) == 0


def test_brackets_inside_strings_do_not_count_as_nesting(client: TestClient, mall: Mall) -> None:
    body = b'{"tenant": "x", "note": "' + b"[{" * 20_000 + b'"}'
    r = client.post(
        mall.url("/payments/sandbox/notify"),
        content=body,
        headers=_signed_sandbox(client, mall, body),
    )
    assert_error(r, 400, "foreign_notification")  # parsed, then refused for what it says


@pytest.mark.usefixtures("default_recursion_limit")
def test_a_signed_wechat_notification_nested_too_deep_is_refused_400(
    client: TestClient, mall: Mall
) -> None:
    key, serial, api_key = configure_wechat(client, mall)
    url = mall.url("/payments/wechat/notify")

    def post(body: bytes) -> Any:
        ts, nonce = str(int(datetime.now(UTC).timestamp())), "deep-nonce"
        headers = {
            "Wechatpay-Timestamp": ts,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Serial": serial,
            "Wechatpay-Signature": sign_message(key, ts, nonce, body),
            "Content-Type": "application/json",
        }
        return client.post(url, content=body, headers=headers)

    # the envelope itself
    error = assert_error(post(_deep()), 400, "malformed_notification")
    assert error["message"] == "body is not valid JSON: nested deeper than 64 levels"
    # a well-formed envelope whose encrypted resource decrypts to deep JSON
    plain = b'{"mchid": ' + _deep(depth=5_000) + b"}"  # encrypted and base64: under 64 KiB
    envelope = {
        "id": "EV-deep",
        "create_time": wechat_time(datetime.now(UTC)),
        "resource_type": "encrypt-resource",
        "event_type": "TRANSACTION.SUCCESS",
        "summary": "支付成功",
        "resource": {
            "original_type": "transaction",
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": encrypt_resource(
                api_key, plain, nonce="000000000001", associated_data="transaction"
            ),
            "associated_data": "transaction",
            "nonce": "000000000001",
        },
    }
    error = assert_error(post(json.dumps(envelope).encode()), 400, "malformed_notification")
    assert error["message"] == "resource is not valid JSON: nested deeper than 64 levels"
    assert event_count(client, mall) == 0


@pytest.mark.parametrize("depth", [100, 900, 5_000, DEEP])
@pytest.mark.usefixtures("default_recursion_limit")
def test_a_deeply_nested_request_body_answers_4xx(
    client: TestClient, mall: Mall, depth: int
) -> None:
    # FastAPI parses these bodies itself: too deep for its parser is 400, within it the
    # request models refuse the shape (422); neither is a 500
    nested = b"[" * depth + b"]" * depth
    for url, body in (
        (mall.url("/members"), b'{"code": "deep", "extra": ' + nested + b"}"),
        (mall.url("/param-changes"), b'{"params": {"pool_rate": ' + nested + b"}}"),
        (mall.url("/orders"), nested),
    ):
        r = client.post(
            url, content=body, headers={**mall.operator, "content-type": "application/json"}
        )
        assert 400 <= r.status_code < 500, (url, r.status_code, r.text[:200])
        assert_error(r, r.status_code)
