"""WeChat Pay outbound calls through the service, against a fake WeChat Pay over real HTTP.

The fake (tests/unit/payments/wechat_fake.py) checks every request's merchant signature and
signs every answer with its platform key; its notifications are posted to the service's
``/payments/wechat/notify`` route, verified and applied like WeChat's.  On each backend.
"""

from __future__ import annotations

import base64
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from api_helpers import Mall, assert_error, ok
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi.testclient import TestClient
from orders_helpers import (
    create_order,
    engine,
    figures,
    read_order,
    run_expiry,
    service,
    tenant_id,
)

from tokenmall.api.routes.wallet import payout_providers_of
from tokenmall.domain.economy import Purchase, Sell
from tokenmall.payments import SignedDelivery, system_clock
from tokenmall.service.wallet import retry_payouts

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from payments.wechat_fake import (
    API_V3_KEY,
    APP_ID,
    MCH_ID,
    MERCHANT_SERIAL,
    OPENID,
    PLATFORM_SERIAL,
    FakeWeChatPay,
    Fault,
)


@pytest.fixture(scope="module")
def merchant_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def platform_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_private(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _pem_public(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _config(
    merchant_key: rsa.RSAPrivateKey, platform_key: rsa.RSAPrivateKey, base_url: str
) -> dict[str, Any]:
    return {
        "api_v3_key": API_V3_KEY,
        "platform_keys": {PLATFORM_SERIAL: _pem_public(platform_key)},
        "mch_id": MCH_ID,
        "app_id": APP_ID,
        "merchant_serial": MERCHANT_SERIAL,
        "merchant_private_key": _pem_private(merchant_key),
        "notify_url": "https://mall.example/v1/tenants/t/payments/wechat/notify",
        "api_base_url": base_url,
    }


@pytest.fixture
def wechat(
    client: TestClient,
    mall: Mall,
    merchant_key: rsa.RSAPrivateKey,
    platform_key: rsa.RSAPrivateKey,
) -> Iterator[FakeWeChatPay]:
    fake = FakeWeChatPay(
        merchant_public_key=merchant_key.public_key(),
        platform_key=platform_key,
        clock=system_clock,
    )
    with fake:
        body = _config(merchant_key, platform_key, fake.base_url)
        cfg = ok(client.put(mall.url("/payments/wechat/config"), json=body, headers=mall.operator))
        assert cfg["outbound"] is True
        yield fake


def _deliver(client: TestClient, mall: Mall, d: SignedDelivery) -> Any:
    return ok(
        client.post(mall.url("/payments/wechat/notify"), content=d.body, headers=dict(d.headers))
    )


def _prepay(client: TestClient, mall: Mall, ref: str, **body: Any) -> Any:
    """The operator starts a WeChat JSAPI payment of order ``ref`` (placed at the fake)."""
    body = {"provider": "wechat", "payer": OPENID, **body}
    return ok(
        client.post(mall.url(f"/orders/{ref}/payments"), json=body, headers=mall.operator), 201
    )


def _payment(client: TestClient, mall: Mall, ref: str) -> Any:
    [payment] = read_order(client, mall, ref)["payments"]
    return payment


def _prepaid_then_cancelled(client: TestClient, mall: Mall) -> tuple[Any, Any]:
    """An order whose WeChat payment was placed, then cancelled before anyone paid."""
    order = create_order(client, mall)
    pay = _prepay(client, mall, order["ref"])
    ok(client.post(mall.url(f"/orders/{order['ref']}/cancel"), headers=mall.operator))
    return order, pay


def _wechat_paid_order(client: TestClient, mall: Mall, fake: FakeWeChatPay) -> tuple[Any, Any]:
    order = create_order(client, mall, qty=2)
    pay = _prepay(client, mall, order["ref"])
    got = _deliver(client, mall, fake.pay(pay["provider_order_id"]))
    assert (got["outcome"], got["duplicate"]) == ("applied", False)
    return order, pay


def test_jsapi_payment_placed_at_wechat_and_paid_by_its_notification(
    client: TestClient, mall: Mall, wechat: FakeWeChatPay, merchant_key: rsa.RSAPrivateKey
) -> None:
    order = create_order(client, mall, qty=2)
    url = mall.url(f"/orders/{order['ref']}/payments")
    pay = ok(
        client.post(url, json={"provider": "wechat", "payer": OPENID}, headers=mall.operator), 201
    )
    params = pay["pay_params"]
    assert params["appId"] == APP_ID
    assert params["signType"] == "RSA"
    assert params["package"].startswith("prepay_id=")
    # the mini-program's wx.requestPayment checks paySign with the merchant's public key
    fields = ("appId", "timeStamp", "nonceStr", "package")
    message = "".join(f"{params[f]}\n" for f in fields)
    merchant_key.public_key().verify(
        base64.b64decode(params["paySign"]),
        message.encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    # WeChat holds the order for the CNY part, in fen
    placed = wechat.transaction(pay["provider_order_id"])
    assert placed["state"] == "NOTPAY"
    assert placed["amount_fen"] == int(Decimal(order["total"]) * 100)
    # asking again answers the same attempt, with pay parameters for the same WeChat order
    again = ok(
        client.post(url, json={"provider": "wechat", "payer": OPENID}, headers=mall.operator), 201
    )
    assert again["provider_order_id"] == pay["provider_order_id"]
    assert again["pay_params"]["package"] == params["package"]
    # the payment notification, delivered twice, pays once
    d = wechat.pay(pay["provider_order_id"])
    assert _deliver(client, mall, d)["outcome"] == "applied"
    assert _deliver(client, mall, wechat.pay(pay["provider_order_id"]))["duplicate"] is True
    assert read_order(client, mall, order["ref"])["status"] == "paid"
    # a read of the order carries no pay parameters: they are made by the call that asks
    assert read_order(client, mall, order["ref"])["payments"][0]["pay_params"] is None


def test_refund_goes_through_wechat_and_its_notification_settles_it(
    client: TestClient, mall: Mall, wechat: FakeWeChatPay
) -> None:
    order, pay = _wechat_paid_order(client, mall, wechat)
    half = Decimal(order["total"]) / 2
    refunds = mall.url(f"/orders/{order['ref']}/refunds")
    body = {"refund_id": "rf-1", "amount": str(half)}
    refund = ok(client.post(refunds, json=body, headers=mall.operator), 201)
    assert refund["provider_status"] == "submitted"
    assert wechat.refund_count() == 1
    assert wechat.transaction(pay["provider_order_id"])["refunded_fen"] == int(half * 100)
    # the same refund id again: the first refund, nothing more asked of WeChat
    assert ok(client.post(refunds, json=body, headers=mall.operator))["refund_id"] == "rf-1"
    assert wechat.refund_count() == 1
    got = _deliver(client, mall, wechat.finish_refund(refund["provider_refund_id"]))
    assert got["outcome"] == "refund_succeeded"
    listed = ok(client.get(refunds, headers=mall.operator))
    assert [(r["refund_id"], r["provider_status"]) for r in listed] == [("rf-1", "succeeded")]


def test_refund_wechat_could_not_take_stays_pending_and_is_sent_again_once(
    client: TestClient, mall: Mall, wechat: FakeWeChatPay
) -> None:
    order, pay = _wechat_paid_order(client, mall, wechat)
    # WeChat takes the refund but its answer is lost (a 500 after processing)
    wechat.fail_next(1, Fault.ERROR_500, after_processing=True)
    refunds = mall.url(f"/orders/{order['ref']}/refunds")
    refund = ok(client.post(refunds, json={"refund_id": "rf-1"}, headers=mall.operator), 201)
    assert refund["provider_status"] == "pending"
    assert wechat.refund_count() == 1
    svc = service(client)
    # not yet due for a retry
    assert svc.retry_refunds(now=time.time()) == 0
    # the scheduler's retry, later: the same out_refund_no, so WeChat still holds one refund
    assert svc.retry_refunds(now=time.time() + 600) == 1
    listed = ok(client.get(refunds, headers=mall.operator))
    assert listed[0]["provider_status"] == "submitted"
    assert wechat.refund_count() == 1
    assert wechat.transaction(pay["provider_order_id"])["refunded_fen"] == int(
        Decimal(order["total"]) * 100
    )
    assert svc.retry_refunds(now=time.time() + 1200) == 0


def test_withdrawal_paid_by_wechat_transfer(
    client: TestClient, mall: Mall, wechat: FakeWeChatPay
) -> None:
    _alice_with_sp(client, mall, Decimal(100))
    wechat.transfers_need_confirmation = True
    body = {"amount": "10.00", "account": OPENID}
    headers = {**mall.member, "Idempotency-Key": "w1"}
    wd = ok(client.post(mall.url("/members/alice/withdrawals"), json=body, headers=headers), 201)
    approved = ok(client.post(mall.url(f"/withdrawals/{wd['id']}/approve"), headers=mall.operator))
    # WeChat accepted the bill and waits for alice to confirm it in the mini-program
    assert approved["status"] == "approved"
    assert approved["payout_package"]
    assert wechat.transfer_count() == 1
    bill_no = wd["id"].replace("_", "")
    assert bill_no.isalnum()
    assert len(bill_no) <= 32
    got = _deliver(client, mall, wechat.finish_transfer(bill_no))
    assert (got["kind"], got["outcome"]) == ("payout_succeeded", "applied")
    done = ok(client.get(mall.url(f"/withdrawals/{wd['id']}"), headers=mall.operator))
    assert done["status"] == "paid"
    w = ok(client.get(mall.url("/members/alice/wallet"), headers=mall.member))
    assert w["pending_withdrawals"] == "0.00"


def test_outbound_configuration_is_checked_and_never_shown(
    client: TestClient,
    mall: Mall,
    merchant_key: rsa.RSAPrivateKey,
    platform_key: rsa.RSAPrivateKey,
) -> None:
    url = mall.url("/payments/wechat/config")
    full = _config(merchant_key, platform_key, "https://api.mch.weixin.qq.com")
    partial = {k: v for k, v in full.items() if k != "merchant_serial"}
    r = client.put(url, json=partial, headers=mall.operator)
    assert_error(r, 422)
    assert "merchant_serial" in r.json()["error"]["message"]
    for name, value in (
        ("merchant_private_key", "not a key"),
        ("notify_url", "http://mall.example/notify"),
        ("api_base_url", "ftp://api.mch.weixin.qq.com"),
    ):
        assert_error(client.put(url, json={**full, name: value}, headers=mall.operator), 422)
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    bad = {**full, "merchant_private_key": _pem_private(small)}
    assert_error(client.put(url, json=bad, headers=mall.operator), 422)
    # nothing of the refused attempts was stored
    assert ok(client.get(url, headers=mall.operator))["configured"] is False
    cfg = ok(client.put(url, json=full, headers=mall.operator))
    assert (cfg["outbound"], cfg["app_id"], cfg["merchant_serial"]) == (
        True,
        APP_ID,
        MERCHANT_SERIAL,
    )
    shown = client.get(url, headers=mall.operator).text
    assert "PRIVATE KEY" not in shown
    assert API_V3_KEY not in shown


def test_payer_needs_wechat_and_its_outbound_configuration(
    client: TestClient, mall: Mall, platform_key: rsa.RSAPrivateKey
) -> None:
    order = create_order(client, mall)
    url = mall.url(f"/orders/{order['ref']}/payments")
    r = client.post(url, json={"provider": "sandbox", "payer": OPENID}, headers=mall.operator)
    assert_error(r, 422)
    # notifications only: a payer cannot be placed at WeChat, and a refund is manual
    body = {
        "api_v3_key": API_V3_KEY,
        "platform_keys": {PLATFORM_SERIAL: _pem_public(platform_key)},
        "mch_id": MCH_ID,
    }
    cfg = ok(client.put(mall.url("/payments/wechat/config"), json=body, headers=mall.operator))
    assert cfg["outbound"] is False
    r = client.post(url, json={"provider": "wechat", "payer": OPENID}, headers=mall.operator)
    assert_error(r, 409, "provider_not_configured")
    pay = ok(client.post(url, json={"provider": "wechat"}, headers=mall.operator), 201)
    assert pay["pay_params"] is None


def test_a_wechat_payment_for_a_cancelled_order_is_voided_and_refunded_at_wechat(
    client: TestClient, mall: Mall, wechat: FakeWeChatPay
) -> None:
    order, pay = _prepaid_then_cancelled(client, mall)
    # the customer paid anyway: the money goes back through WeChat, once
    got = _deliver(client, mall, wechat.pay(pay["provider_order_id"]))
    assert got["outcome"] == "voided"
    [payment] = read_order(client, mall, order["ref"])["payments"]
    assert (payment["status"], payment["refund_status"]) == ("voided", "submitted")
    assert wechat.refund_count() == 1
    placed = wechat.transaction(pay["provider_order_id"])
    assert placed["refunded_fen"] == placed["amount_fen"]
    done = _deliver(client, mall, wechat.finish_refund(f"{pay['provider_order_id']}-void"))
    assert done["outcome"] == "refund_succeeded"
    [payment] = read_order(client, mall, order["ref"])["payments"]
    assert payment["refund_status"] == "succeeded"
    assert _deliver(client, mall, wechat.pay(pay["provider_order_id"]))["duplicate"] is True
    assert wechat.refund_count() == 1


# -- reconciliation: asking WeChat when a notification does not come ---------------------------


def test_a_lost_payment_notification_is_found_by_query_and_applied_once(
    client: TestClient, mall: Mall, wechat: FakeWeChatPay
) -> None:
    svc = service(client)
    order = create_order(client, mall, qty=2)
    pay = _prepay(client, mall, order["ref"])
    late = wechat.pay(pay["provider_order_id"])  # the customer paid; the delivery is lost
    assert svc.reconcile_payments(now=time.time()) == 0  # too young to ask about
    assert read_order(client, mall, order["ref"])["status"] == "pending_payment"
    assert svc.reconcile_payments(now=time.time() + 120) == 1
    assert read_order(client, mall, order["ref"])["status"] == "paid"
    assert _payment(client, mall, order["ref"])["status"] == "paid"
    queries = [r for r in wechat.requests if r.method == "GET"]
    assert len(queries) == 1
    # nothing left to ask about; the deadline passing changes nothing
    assert svc.reconcile_payments(now=time.time() + 300) == 0
    assert len([r for r in wechat.requests if r.method == "GET"]) == 1
    assert run_expiry(client, mall, 16 * 60) == 0
    # WeChat's late delivery is the same event: a replay
    got = _deliver(client, mall, late)
    assert (got["outcome"], got["duplicate"]) == ("applied", True)
    assert read_order(client, mall, order["ref"])["status"] == "paid"


def test_an_order_paid_in_time_waits_for_its_notification_past_the_deadline(
    client: TestClient, mall: Mall, wechat: FakeWeChatPay
) -> None:
    svc = service(client)
    paid = create_order(client, mall)
    late = wechat.pay(_prepay(client, mall, paid["ref"])["provider_order_id"])
    unpaid = create_order(client, mall)
    _prepay(client, mall, unpaid["ref"])
    plain = create_order(client, mall)  # no WeChat payment: expires at its deadline
    # past the deadline, within PAYMENT_GRACE: only the order without a WeChat payment expires
    assert run_expiry(client, mall, 16 * 60) == 1
    assert read_order(client, mall, plain["ref"])["status"] == "expired"
    assert read_order(client, mall, paid["ref"])["status"] == "pending_payment"
    # nor does a lazy expiry, and no new payment attempt starts
    real = svc.clock
    svc.clock = lambda: real() + 16 * 60
    try:
        assert read_order(client, mall, unpaid["ref"])["status"] == "pending_payment"
        r = client.post(
            mall.url(f"/orders/{unpaid['ref']}/payments"),
            json={"provider": "wechat", "payer": OPENID},
            headers=mall.operator,
        )
        assert_error(r, 409)
        assert "being confirmed" in r.json()["error"]["message"]
        # nor does paying it from the wallet
        r = client.post(
            mall.url(f"/orders/{unpaid['ref']}/payments"),
            json={"sp": unpaid["total"]},
            headers=mall.operator,
        )
        assert_error(r, 409)
        assert "being confirmed" in r.json()["error"]["message"]
    finally:
        svc.clock = real
    # the notification arrives late: the customer paid in time, so the order is paid
    assert _deliver(client, mall, late)["outcome"] == "applied"
    assert read_order(client, mall, paid["ref"])["status"] == "paid"
    # past the grace, the unpaid one expires anyway
    assert run_expiry(client, mall, 16 * 60 + 901) == 1
    assert read_order(client, mall, unpaid["ref"])["status"] == "expired"
    assert read_order(client, mall, paid["ref"])["status"] == "paid"


def test_the_wechat_order_of_a_cancelled_order_is_closed_and_cannot_be_paid(
    client: TestClient, mall: Mall, wechat: FakeWeChatPay
) -> None:
    svc = service(client)
    order, pay = _prepaid_then_cancelled(client, mall)
    assert svc.reconcile_payments(now=time.time() + 120) == 1
    assert wechat.transaction(pay["provider_order_id"])["state"] == "CLOSED"
    assert _payment(client, mall, order["ref"])["status"] == "failed"
    with pytest.raises(ValueError, match="closed"):
        wechat.pay(pay["provider_order_id"])
    closes = [r for r in wechat.requests if r.path.endswith("/close")]
    assert len(closes) == 1
    assert svc.reconcile_payments(now=time.time() + 600) == 0
    assert len([r for r in wechat.requests if r.path.endswith("/close")]) == 1
    assert read_order(client, mall, order["ref"])["status"] == "cancelled"


def test_a_payment_made_as_its_order_was_closed_is_voided_and_refunded_once(
    client: TestClient, mall: Mall, wechat: FakeWeChatPay
) -> None:
    svc = service(client)
    order, pay = _prepaid_then_cancelled(client, mall)
    no = pay["provider_order_id"]
    with engine(client).connect() as conn:
        api = svc.hub.wechat_api(conn, tenant_id(client, mall))
    assert api is not None
    close = api.close_order

    def customer_pays_first(out_trade_no: str) -> None:
        wechat.pay(out_trade_no)  # between the query (NOTPAY) and the close
        close(out_trade_no)

    api.close_order = customer_pays_first  # type: ignore[method-assign]
    try:
        assert svc.reconcile_payments(now=time.time() + 120) == 1
    finally:
        del api.close_order
    assert [r.status for r in wechat.requests if r.path.endswith("/close")] == [403]
    payment = _payment(client, mall, order["ref"])
    assert (payment["status"], payment["refund_status"]) == ("voided", "submitted")
    assert wechat.refund_count() == 1
    assert wechat.transaction(no)["refunded_fen"] == wechat.transaction(no)["amount_fen"]
    assert svc.reconcile_payments(now=time.time() + 600) == 0
    assert wechat.refund_count() == 1


def test_a_payment_wechat_never_received_fails_once_its_order_ended(
    client: TestClient, mall: Mall, wechat: FakeWeChatPay
) -> None:
    svc = service(client)
    order = create_order(client, mall)
    # without payer the integrator places the order at WeChat itself; here it never did
    ok(
        client.post(
            mall.url(f"/orders/{order['ref']}/payments"),
            json={"provider": "wechat"},
            headers=mall.operator,
        ),
        201,
    )
    assert svc.reconcile_payments(now=time.time() + 120) == 0
    assert _payment(client, mall, order["ref"])["status"] == "requires_payment"
    ok(client.post(mall.url(f"/orders/{order['ref']}/cancel"), headers=mall.operator))
    assert svc.reconcile_payments(now=time.time() + 240) == 1
    payment = _payment(client, mall, order["ref"])
    assert payment["status"] == "failed"
    assert "no order" in payment["note"]
    assert not [r for r in wechat.requests if r.path.endswith("/close")]


def test_wechat_unreachable_changes_nothing_and_is_asked_again_later(
    client: TestClient, mall: Mall, wechat: FakeWeChatPay
) -> None:
    svc = service(client)
    order = create_order(client, mall)
    wechat.pay(_prepay(client, mall, order["ref"])["provider_order_id"])
    wechat.fail_next(1, Fault.UNSIGNED)
    t0 = time.time()
    assert svc.reconcile_payments(now=t0 + 120) == 0
    assert read_order(client, mall, order["ref"])["status"] == "pending_payment"
    # asked a moment ago: not asked again until `recheck` (60 s) has passed
    assert svc.reconcile_payments(now=t0 + 150) == 0
    assert len([r for r in wechat.requests if r.method == "GET"]) == 1
    assert svc.reconcile_payments(now=t0 + 190) == 1
    assert read_order(client, mall, order["ref"])["status"] == "paid"


def test_the_mini_program_syncs_its_payment_after_wx_request_payment(
    client: TestClient, mall: Mall, wechat: FakeWeChatPay
) -> None:
    order = create_order(client, mall, member=mall.member_code, headers=mall.member)
    url = mall.url(f"/orders/{order['ref']}/payments")
    pay = ok(
        client.post(url, json={"provider": "wechat", "payer": OPENID}, headers=mall.member), 201
    )
    sync = mall.url(f"/orders/{order['ref']}/payments/sync")
    # not paid yet: the order as it is
    assert ok(client.post(sync, headers=mall.member))["status"] == "pending_payment"
    late = wechat.pay(pay["provider_order_id"])
    wechat.fail_next(1, Fault.ERROR_500, after_processing=False)
    assert_error(client.post(sync, headers=mall.member), 502, "provider_unavailable")
    assert read_order(client, mall, order["ref"])["status"] == "pending_payment"
    synced = ok(client.post(sync, headers=mall.member))
    assert (synced["status"], synced["payments"][0]["status"]) == ("paid", "paid")
    assert _deliver(client, mall, late)["duplicate"] is True
    # another member's order is not there
    other = create_order(client, mall, member=mall.other_member)
    r = client.post(mall.url(f"/orders/{other['ref']}/payments/sync"), headers=mall.member)
    assert_error(r, 404)


def test_sync_needs_the_outbound_configuration(client: TestClient, mall: Mall) -> None:
    order = create_order(client, mall)
    r = client.post(mall.url(f"/orders/{order['ref']}/payments/sync"), headers=mall.operator)
    assert_error(r, 409, "provider_not_configured")


def _refund_queries(fake: FakeWeChatPay) -> int:
    return len([r for r in fake.requests if r.method == "GET" and r.path.startswith("/v3/refund/")])


def test_a_refund_whose_notification_is_lost_is_settled_by_query(
    client: TestClient, mall: Mall, wechat: FakeWeChatPay
) -> None:
    svc = service(client)
    order, _ = _wechat_paid_order(client, mall, wechat)
    refunds = mall.url(f"/orders/{order['ref']}/refunds")
    refund = ok(client.post(refunds, json={"refund_id": "rf-1"}, headers=mall.operator), 201)
    assert refund["provider_status"] == "submitted"
    lost = wechat.finish_refund(refund["provider_refund_id"])  # WeChat refunded; never told us
    t0 = time.time()
    assert svc.reconcile_payments(now=t0 + 60) == 0  # a notification may still come
    assert _refund_queries(wechat) == 0
    assert svc.reconcile_payments(now=t0 + 700) == 1
    listed = ok(client.get(refunds, headers=mall.operator))
    assert listed[0]["provider_status"] == "succeeded"
    assert _deliver(client, mall, lost)["duplicate"] is True
    assert svc.reconcile_payments(now=t0 + 2000) == 0
    assert _refund_queries(wechat) == 1


def test_a_refund_still_processing_is_asked_again_each_ten_minutes(
    client: TestClient, mall: Mall, wechat: FakeWeChatPay
) -> None:
    svc = service(client)
    order, _ = _wechat_paid_order(client, mall, wechat)
    refunds = mall.url(f"/orders/{order['ref']}/refunds")
    refund = ok(client.post(refunds, json={"refund_id": "rf-1"}, headers=mall.operator), 201)
    t0 = time.time()
    assert svc.reconcile_payments(now=t0 + 700) == 0  # PROCESSING
    assert svc.reconcile_payments(now=t0 + 800) == 0
    assert _refund_queries(wechat) == 1
    wechat.finish_refund(refund["provider_refund_id"], success=False)  # to a closed card
    assert svc.reconcile_payments(now=t0 + 1400) == 1
    assert _refund_queries(wechat) == 2
    listed = ok(client.get(refunds, headers=mall.operator))
    assert listed[0]["provider_status"] == "failed"


def test_the_refund_of_a_voided_payment_is_settled_by_query(
    client: TestClient, mall: Mall, wechat: FakeWeChatPay
) -> None:
    svc = service(client)
    order, pay = _prepaid_then_cancelled(client, mall)
    assert _deliver(client, mall, wechat.pay(pay["provider_order_id"]))["outcome"] == "voided"
    assert _payment(client, mall, order["ref"])["refund_status"] == "submitted"
    wechat.finish_refund(f"{pay['provider_order_id']}-void")  # its notification is lost
    assert svc.reconcile_payments(now=time.time() + 700) == 1
    assert _payment(client, mall, order["ref"])["refund_status"] == "succeeded"
    assert svc.reconcile_payments(now=time.time() + 1400) == 0
    assert _refund_queries(wechat) == 1


def test_a_transfer_whose_notification_is_lost_finishes_by_the_resend(
    client: TestClient, mall: Mall, wechat: FakeWeChatPay
) -> None:
    _alice_with_sp(client, mall, Decimal(100))
    headers = {**mall.member, "Idempotency-Key": "w1"}
    body = {"amount": "10.00", "account": OPENID}
    wd = ok(client.post(mall.url("/members/alice/withdrawals"), json=body, headers=headers), 201)
    ok(client.post(mall.url(f"/withdrawals/{wd['id']}/approve"), headers=mall.operator))
    wechat.finish_transfer(wd["id"].replace("_", ""))  # paid; the notification is lost
    assert _resend_payouts(client, later=0) == 0  # sent just now
    # the resend, 5 minutes on, names the same bill: WeChat answers its state, nothing new
    assert _resend_payouts(client, later=400) == 1
    assert wechat.transfer_count() == 1
    done = ok(client.get(mall.url(f"/withdrawals/{wd['id']}"), headers=mall.operator))
    assert done["status"] == "paid"
    assert _resend_payouts(client, later=800) == 0


def _resend_payouts(client: TestClient, *, later: float) -> int:
    """The scheduler's payout resend, ``later`` seconds from now."""
    app: Any = client.app
    ledger = app.state.tokenmall.ledger
    return retry_payouts(ledger, payout_providers_of(app), now=time.time() + later)


def test_wechat_down_ends_the_tenants_run_after_one_call(
    client: TestClient, mall: Mall, wechat: FakeWeChatPay
) -> None:
    svc = service(client)
    first, second = create_order(client, mall), create_order(client, mall)
    for order in (first, second):
        wechat.pay(_prepay(client, mall, order["ref"])["provider_order_id"])
    wechat.fail_next(1, Fault.DROP, after_processing=False)
    t0 = time.time()
    # the first query gets no answer: the rest would wait out their timeouts too
    assert svc.reconcile_payments(now=t0 + 120) == 0
    assert [r.status for r in wechat.requests if r.method == "GET"] == [0]  # one, dropped
    statuses = {read_order(client, mall, o["ref"])["status"] for o in (first, second)}
    assert statuses == {"pending_payment"}
    # the next run asks the one not asked yet; the dropped one waits its interval
    assert svc.reconcile_payments(now=t0 + 130) == 1
    assert svc.reconcile_payments(now=t0 + 200) == 1
    statuses = {read_order(client, mall, o["ref"])["status"] for o in (first, second)}
    assert statuses == {"paid"}


def _alice_with_sp(client: TestClient, mall: Mall, spend: Decimal) -> Decimal:
    """alice buys for ``spend`` CNY and sells every point; returns the SP in her wallet."""
    app: Any = client.app
    ledger = app.state.tokenmall.ledger
    tid = tenant_id(client, mall)
    assert ledger.submit(tid, [("buy", Purchase("o-alice", "alice", spend))])[0].status == (
        "applied"
    )
    points = figures(client, mall, "alice")["points"]
    assert ledger.submit(tid, [("sell", Sell("alice", points))])[0].status == "applied"
    return figures(client, mall, "alice")["stable"]


def test_a_withdrawal_from_2000_cny_needs_the_payee_name_and_carries_it_sealed(
    client: TestClient, mall: Mall, wechat: FakeWeChatPay
) -> None:
    assert _alice_with_sp(client, mall, Decimal(20000)) > Decimal(2100)
    url = mall.url("/members/alice/withdrawals")
    big = {"amount": "2100.00", "account": OPENID}
    r = client.post(url, json=big, headers={**mall.member, "Idempotency-Key": "w0"})
    assert_error(r, 422)
    assert "payee_name" in r.json()["error"]["message"]
    assert figures(client, mall, "alice")["stable"] > Decimal(2100)  # nothing was taken
    headers = {**mall.member, "Idempotency-Key": "w1"}
    wd = ok(client.post(url, json={**big, "payee_name": "王小明"}, headers=headers), 201)
    assert wd["payee_named"] is True
    assert (
        "王小明" not in client.get(mall.url(f"/withdrawals/{wd['id']}"), headers=mall.operator).text
    )
    with engine(client).connect() as conn:
        stored = conn.exec_driver_sql(
            "SELECT payee_name_cipher, payee_name_serial FROM withdrawals WHERE ref = ?"
            if conn.dialect.name == "sqlite"
            else "SELECT payee_name_cipher, payee_name_serial FROM withdrawals WHERE ref = %s",
            (wd["id"],),
        ).one()
    assert stored[1] == PLATFORM_SERIAL
    assert "王小明" not in stored[0]
    ok(client.post(mall.url(f"/withdrawals/{wd['id']}/approve"), headers=mall.operator))
    bill_no = wd["id"].replace("_", "")
    # WeChat read the name with its platform key; the resend sends the same sealed bytes
    assert wechat.transfer_payee_name(bill_no) == "王小明"
    assert _resend_payouts(client, later=400) == 1
    assert wechat.transfer_count() == 1
    got = _deliver(client, mall, wechat.finish_transfer(bill_no))
    assert got["outcome"] == "applied"
    done = ok(client.get(mall.url(f"/withdrawals/{wd['id']}"), headers=mall.operator))
    assert done["status"] == "paid"
    # under 2,000 CNY paid out the name is optional
    small = {"amount": "100.00", "account": OPENID}
    h2 = {**mall.member, "Idempotency-Key": "w2"}
    assert ok(client.post(url, json=small, headers=h2), 201)["payee_named"] is False


def test_payee_name_without_wechat_transfers_is_refused(client: TestClient, mall: Mall) -> None:
    assert _alice_with_sp(client, mall, Decimal(20000)) > Decimal(2100)
    body = {"amount": "2100.00", "account": OPENID, "payee_name": "王小明"}
    headers = {**mall.member, "Idempotency-Key": "w1"}
    r = client.post(mall.url("/members/alice/withdrawals"), json=body, headers=headers)
    assert_error(r, 409, "provider_not_configured")
    # the sandbox pays any amount without a name
    del body["payee_name"]
    wd = ok(client.post(mall.url("/members/alice/withdrawals"), json=body, headers=headers), 201)
    assert wd["payee_named"] is False


# -- the payments desk: what an operator must look at -------------------------------------------


def _all_pages(client: TestClient, url: str, headers: dict[str, str]) -> list[Any]:
    """Every item of a list, one item per page, following next_cursor."""
    items: list[Any] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1}
        if cursor is not None:
            params["cursor"] = cursor
        page = ok(client.get(url, params=params, headers=headers))
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def test_the_payments_desk_lists_what_needs_an_operator(
    client: TestClient, mall: Mall, wechat: FakeWeChatPay
) -> None:
    paid, _ = _wechat_paid_order(client, mall, wechat)
    cancelled, pay = _prepaid_then_cancelled(client, mall)
    assert _deliver(client, mall, wechat.pay(pay["provider_order_id"]))["outcome"] == "voided"
    # money at WeChat for an out_trade_no tokenmall never issued
    with engine(client).connect() as conn:
        api = service(client).hub.wechat_api(conn, tenant_id(client, mall))
    assert api is not None
    api.jsapi_prepay(
        out_trade_no="stranger-1", amount=Decimal("3.00"), description="d", openid=OPENID
    )
    assert _deliver(client, mall, wechat.pay("stranger-1"))["outcome"] == "unknown_payment"
    refunds = mall.url(f"/orders/{paid['ref']}/refunds")
    ok(client.post(refunds, json={"refund_id": "rf-1"}, headers=mall.operator), 201)

    events = mall.url("/payments/events")
    every = ok(client.get(events, headers=mall.operator))["items"]
    assert [e["outcome"] for e in every] == ["applied", "voided", "unknown_payment"]
    assert _all_pages(client, events, mall.operator) == every
    [odd] = ok(client.get(events, params={"outcome": "unknown_payment"}, headers=mall.operator))[
        "items"
    ]
    assert (odd["provider_order_id"], odd["amount"], odd["kind"]) == (
        "stranger-1",
        "3.00",
        "payment_succeeded",
    )
    r = client.get(events, params={"cursor": "not-a-cursor"}, headers=mall.operator)
    assert_error(r, 422, "invalid_cursor")

    payments = mall.url("/payments")
    [voided] = ok(client.get(payments, params={"status": "voided"}, headers=mall.operator))["items"]
    assert (voided["order_ref"], voided["refund_status"]) == (cancelled["ref"], "submitted")
    assert len(_all_pages(client, payments, mall.operator)) == 2
    [refund] = ok(
        client.get(
            mall.url("/refunds"), params={"provider_status": "submitted"}, headers=mall.operator
        )
    )["items"]
    assert (refund["order_ref"], refund["refund_id"]) == (paid["ref"], "rf-1")
    # the desk is the operator's: a member's token is refused
    for url in (events, payments, mall.url("/refunds")):
        assert_error(client.get(url, headers=mall.member), 403)


# -- platform certificates -------------------------------------------------------------------------


def _certificate_downloads(fake: FakeWeChatPay) -> int:
    return len([r for r in fake.requests if r.path == "/v3/certificates"])


def test_a_rotated_platform_certificate_is_downloaded_and_payments_flow_again(
    client: TestClient, mall: Mall, wechat: FakeWeChatPay
) -> None:
    svc = service(client)
    t0 = time.time()
    # public-key mode (PUB_KEY_ID_...): the scheduler has no certificate to download
    assert svc.reconcile_payments(now=t0) == 0
    assert _certificate_downloads(wechat) == 0
    order = create_order(client, mall)
    pay = _prepay(client, mall, order["ref"])
    serial = wechat.rotate_certificate()
    late = wechat.pay(pay["provider_order_id"])  # signed with a key the tenant lacks
    r = client.post(mall.url("/payments/wechat/notify"), content=late.body, headers=late.headers)
    assert_error(r, 400, "unknown_key")
    assert read_order(client, mall, order["ref"])["status"] == "pending_payment"
    certificates = mall.url("/payments/wechat/certificates")
    got = ok(client.post(certificates, headers=mall.operator))
    assert got["added"] == [serial]
    # added, the old one kept (it verifies what WeChat signed before); the new one seals names
    assert set(got["config"]["platform_key_serials"]) == {serial, PLATFORM_SERIAL}
    with engine(client).connect() as conn:
        api = svc.hub.wechat_api(conn, tenant_id(client, mall))
    assert api is not None
    assert api.encrypt("王小明").serial == serial
    assert _deliver(client, mall, late)["outcome"] == "applied"  # WeChat's retry
    assert read_order(client, mall, order["ref"])["status"] == "paid"
    assert ok(client.post(certificates, headers=mall.operator))["added"] == []
    # certificate mode now: the scheduler downloads once a day
    again = wechat.rotate_certificate()
    svc.reconcile_payments(now=t0 + 60)
    serials = ok(client.get(mall.url("/payments/wechat/config"), headers=mall.operator))[
        "platform_key_serials"
    ]
    assert again in serials
    third = wechat.rotate_certificate()
    downloads = _certificate_downloads(wechat)
    svc.reconcile_payments(now=t0 + 3600)
    assert _certificate_downloads(wechat) == downloads  # not again within the day
    svc.reconcile_payments(now=t0 + 60 + 86_400)
    serials = ok(client.get(mall.url("/payments/wechat/config"), headers=mall.operator))[
        "platform_key_serials"
    ]
    assert third in serials


def test_certificate_download_needs_the_outbound_configuration(
    client: TestClient, mall: Mall
) -> None:
    r = client.post(mall.url("/payments/wechat/certificates"), headers=mall.operator)
    assert_error(r, 409, "provider_not_configured")
    assert_error(client.post(mall.url("/payments/wechat/certificates"), headers=mall.member), 403)


def test_a_rotation_on_the_day_of_a_lost_notification_does_not_stop_its_reconciliation(
    client: TestClient, mall: Mall, wechat: FakeWeChatPay
) -> None:
    svc = service(client)
    wechat.rotate_certificate()
    ok(client.post(mall.url("/payments/wechat/certificates"), headers=mall.operator))
    order = create_order(client, mall)
    pay = _prepay(client, mall, order["ref"])
    wechat.rotate_certificate()  # WeChat signs with a key the tenant lacks from now on
    wechat.pay(pay["provider_order_id"])  # and the notification is lost
    # the run downloads the new certificate first (WeChat's retry of the notification will
    # be signed with it); the query names the public key, so WeChat answers with that one
    assert svc.reconcile_payments(now=time.time() + 120) == 1
    assert read_order(client, mall, order["ref"])["status"] == "paid"
