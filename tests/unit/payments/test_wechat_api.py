"""WeChatPayApi against FakeWeChatPay over real HTTP, with real RSA keys and AES-GCM."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tokenmall.payments import (
    ManualClock,
    NotificationKind,
    PayoutRequest,
    PayoutStatus,
    RefundStatus,
    SignedDelivery,
)
from tokenmall.payments.errors import (
    ForeignNotification,
    InvalidPaymentRequest,
    PaymentError,
    ProviderConfigError,
    ProviderRefused,
    ProviderUnavailable,
    UnsupportedNotification,
)
from tokenmall.payments.wechat import (
    WeChatPayNotifications,
    build_notification,
    transfer_resource,
)
from tokenmall.payments.wechat_api import ORDER_NOT_EXIST, WeChatPayApi

from .conftest import START
from .wechat_fake import (
    API_V3_KEY,
    APP_ID,
    MCH_ID,
    MERCHANT_SERIAL,
    OPENID,
    PLATFORM_SERIAL,
    FakeWeChatPay,
    Fault,
)

NOTIFY_URL = "https://tokenmall.example/wechat/notify"


@pytest.fixture(scope="module")
def wrong_merchant_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def fake(
    clock: ManualClock,
    other_private_key: rsa.RSAPrivateKey,
    platform_private_key: rsa.RSAPrivateKey,
) -> Iterator[FakeWeChatPay]:
    server = FakeWeChatPay(
        merchant_public_key=other_private_key.public_key(),
        platform_key=platform_private_key,
        clock=clock,
    )
    with server:
        yield server


def make_api(
    fake: FakeWeChatPay,
    clock: ManualClock,
    merchant_key: rsa.RSAPrivateKey,
    platform_key: rsa.RSAPrivateKey,
) -> WeChatPayApi:
    return WeChatPayApi(
        mch_id=MCH_ID,
        app_id=APP_ID,
        merchant_key=merchant_key,
        merchant_serial=MERCHANT_SERIAL,
        platform_keys={PLATFORM_SERIAL: platform_key.public_key()},
        notify_url=NOTIFY_URL,
        base_url=fake.base_url,
        clock=clock,
        timeout=5.0,
    )


@pytest.fixture
def api(
    fake: FakeWeChatPay,
    clock: ManualClock,
    other_private_key: rsa.RSAPrivateKey,
    platform_private_key: rsa.RSAPrivateKey,
) -> Iterator[WeChatPayApi]:
    client = make_api(fake, clock, other_private_key, platform_private_key)
    yield client
    client.close()


@pytest.fixture
def verifier(clock: ManualClock, platform_private_key: rsa.RSAPrivateKey) -> WeChatPayNotifications:
    return WeChatPayNotifications(
        platform_keys={PLATFORM_SERIAL: platform_private_key.public_key()},
        api_v3_key=API_V3_KEY,
        mch_id=MCH_ID,
        clock=clock,
    )


def paid_order(api: WeChatPayApi, fake: FakeWeChatPay, out_trade_no: str, amount: Decimal) -> None:
    api.jsapi_prepay(out_trade_no=out_trade_no, amount=amount, description="order", openid=OPENID)
    fake.pay(out_trade_no)


def refunded_order(
    api: WeChatPayApi, fake: FakeWeChatPay, no: str, total: str, *, refund_no: str, refund: str
) -> None:
    """A paid order ``no`` of ``total`` CNY with a refund ``refund_no`` of ``refund`` asked."""
    paid_order(api, fake, no, Decimal(total))
    api.refund(
        out_trade_no=no, out_refund_no=refund_no, amount=Decimal(refund), total=Decimal(total)
    )


# -- requests on the wire ---------------------------------------------------------------------


def test_requests_are_signed_with_wechat_headers_and_fen_amounts(
    api: WeChatPayApi, fake: FakeWeChatPay
) -> None:
    api.jsapi_prepay(
        out_trade_no="TM2024052000001",
        amount=Decimal("1234.56"),
        description="tokenmall order 1",
        openid=OPENID,
        expires_at=START + timedelta(minutes=30),
    )
    (seen,) = fake.requests
    assert seen.status == 200
    assert seen.method == "POST"
    assert seen.path == "/v3/pay/transactions/jsapi"
    auth = seen.headers["Authorization"]
    assert auth.startswith('WECHATPAY2-SHA256-RSA2048 mchid="1900000109",nonce_str="')
    assert f'serial_no="{MERCHANT_SERIAL}"' in auth
    assert f'timestamp="{int(START.timestamp())}"' in auth
    assert seen.headers["Accept"] == "application/json"
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["User-Agent"].startswith("tokenmall")
    body = seen.json()
    assert body["amount"] == {"total": 123456, "currency": "CNY"}
    assert isinstance(body["amount"]["total"], int)
    assert body["payer"] == {"openid": OPENID}
    assert body["notify_url"] == NOTIFY_URL
    assert body["time_expire"] == "2024-05-20T12:30:00+08:00"
    assert (body["appid"], body["mchid"]) == (APP_ID, MCH_ID)


# -- JSAPI prepay -------------------------------------------------------------------------------


def test_prepay_round_trip_and_pay_sign_verifies_with_merchant_key(
    api: WeChatPayApi, fake: FakeWeChatPay, other_private_key: rsa.RSAPrivateKey
) -> None:
    prepay_id = api.jsapi_prepay(
        out_trade_no="TM2024052000002", amount=Decimal("88.88"), description="d", openid=OPENID
    )
    assert prepay_id.startswith("wx")
    assert fake.transaction("TM2024052000002") == {
        "state": "NOTPAY",
        "amount_fen": 8888,
        "refunded_fen": 0,
    }
    params = api.jsapi_pay_params(prepay_id)
    assert params["appId"] == APP_ID
    assert params["package"] == f"prepay_id={prepay_id}"
    assert params["signType"] == "RSA"
    assert params["timeStamp"] == str(int(START.timestamp()))
    message = (
        f"{APP_ID}\n{params['timeStamp']}\n{params['nonceStr']}\n{params['package']}\n".encode()
    )
    other_private_key.public_key().verify(
        base64.b64decode(params["paySign"]), message, padding.PKCS1v15(), hashes.SHA256()
    )
    with pytest.raises(InvalidSignature):
        other_private_key.public_key().verify(
            base64.b64decode(params["paySign"]),
            message.replace(b"prepay_id", b"prepay_ix"),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )


def test_repeating_a_prepay_is_idempotent_and_a_changed_amount_is_refused(
    api: WeChatPayApi, fake: FakeWeChatPay
) -> None:
    args = {"out_trade_no": "TM2024052000003", "description": "d", "openid": OPENID}
    first = api.jsapi_prepay(amount=Decimal("10.00"), **args)
    again = api.jsapi_prepay(amount=Decimal("10.00"), **args)
    assert again == first
    with pytest.raises(ProviderRefused) as refused:
        api.jsapi_prepay(amount=Decimal("10.01"), **args)
    assert refused.value.provider_code == "INVALID_REQUEST"
    assert refused.value.code == "provider_refused"
    assert fake.transaction("TM2024052000003")["amount_fen"] == 1000


def test_payment_notification_from_the_fake_parses(
    api: WeChatPayApi, fake: FakeWeChatPay, verifier: WeChatPayNotifications
) -> None:
    api.jsapi_prepay(
        out_trade_no="TM2024052000004", amount=Decimal("0.01"), description="d", openid=OPENID
    )
    delivery = fake.pay("TM2024052000004")
    note = verifier.parse_notification(delivery.headers, delivery.body)
    assert note.kind is NotificationKind.PAYMENT_SUCCEEDED
    assert note.order_id == "TM2024052000004"
    assert note.amount == Decimal("0.01")


# -- order query and close -----------------------------------------------------------------------


def test_query_follows_the_order_from_open_to_paid_with_the_notifications_event_id(
    api: WeChatPayApi, fake: FakeWeChatPay, verifier: WeChatPayNotifications
) -> None:
    no = "TM2024052000030"
    api.jsapi_prepay(out_trade_no=no, amount=Decimal("12.34"), description="d", openid=OPENID)
    open_ = api.query_order(no)
    assert (open_.trade_state, open_.is_open, open_.notification) == ("NOTPAY", True, None)
    query = fake.requests[-1]
    assert (query.method, query.path) == (
        "GET",
        f"/v3/pay/transactions/out-trade-no/{no}?mchid={MCH_ID}",
    )
    assert query.body == b""
    delivery = fake.pay(no)
    paid = api.query_order(no)
    assert (paid.trade_state, paid.is_open) == ("SUCCESS", False)
    assert paid.notification is not None
    assert paid.notification.kind is NotificationKind.PAYMENT_SUCCEEDED
    assert paid.notification.amount == Decimal("12.34")
    # the same event as the notification WeChat sends: applying both applies it once
    assert paid.notification == verifier.parse_notification(delivery.headers, delivery.body)


def test_query_of_an_order_wechat_does_not_have_is_an_answer(api: WeChatPayApi) -> None:
    absent = api.query_order("TM2024052000031")
    assert (absent.trade_state, absent.is_open, absent.notification) == (
        ORDER_NOT_EXIST,
        False,
        None,
    )


def test_close_makes_the_order_unpayable_and_the_query_says_closed(
    api: WeChatPayApi, fake: FakeWeChatPay
) -> None:
    no = "TM2024052000032"
    api.jsapi_prepay(out_trade_no=no, amount=Decimal("5.00"), description="d", openid=OPENID)
    api.close_order(no)
    close = fake.requests[-1]
    assert (close.method, close.path, close.status) == (
        "POST",
        f"/v3/pay/transactions/out-trade-no/{no}/close",
        204,
    )
    assert close.json() == {"mchid": MCH_ID}
    api.close_order(no)  # closing again is accepted
    closed = api.query_order(no)
    assert closed.trade_state == "CLOSED"
    assert closed.notification is not None
    assert closed.notification.kind is NotificationKind.PAYMENT_FAILED
    assert closed.notification.provider_transaction_id is None
    with pytest.raises(ValueError, match="closed"):
        fake.pay(no)


def test_closing_a_paid_order_is_refused_and_an_unknown_one_is_not_found(
    api: WeChatPayApi, fake: FakeWeChatPay
) -> None:
    paid_order(api, fake, "TM2024052000033", Decimal("5.00"))
    with pytest.raises(ProviderRefused) as refused:
        api.close_order("TM2024052000033")
    assert refused.value.provider_code == "ORDERPAID"
    with pytest.raises(ProviderRefused) as absent:
        api.close_order("TM2024052000034")
    assert absent.value.provider_code == ORDER_NOT_EXIST


def test_an_unsigned_204_is_accepted_but_an_unsigned_query_answer_is_not(
    api: WeChatPayApi, fake: FakeWeChatPay
) -> None:
    no = "TM2024052000035"
    api.jsapi_prepay(out_trade_no=no, amount=Decimal("5.00"), description="d", openid=OPENID)
    fake.fail_next(1, Fault.UNSIGNED)
    api.close_order(no)  # nothing in a bodiless 204 is acted on: the query confirms
    fake.fail_next(1, Fault.UNSIGNED)
    with pytest.raises(ProviderUnavailable, match="does not verify"):
        api.query_order(no)
    fake.fail_next(1, Fault.TAMPER)
    with pytest.raises(ProviderUnavailable):
        api.query_order(no)
    assert api.query_order(no).trade_state == "CLOSED"


def test_a_query_answer_about_another_merchant_is_no_answer(
    fake: FakeWeChatPay,
    clock: ManualClock,
    other_private_key: rsa.RSAPrivateKey,
    platform_private_key: rsa.RSAPrivateKey,
) -> None:
    no = "TM2024052000036"
    with make_api(fake, clock, other_private_key, platform_private_key) as api:
        api.jsapi_prepay(out_trade_no=no, amount=Decimal("5.00"), description="d", openid=OPENID)
        fake.answer_mch_id = "1900000999"  # signed, but about another merchant's order
        with pytest.raises(ProviderUnavailable, match="1900000999"):
            api.query_order(no)
        fake.answer_mch_id = None
        assert api.query_order(no).trade_state == "NOTPAY"


def test_a_refunded_order_queries_as_paid(api: WeChatPayApi, fake: FakeWeChatPay) -> None:
    refunded_order(api, fake, "TM2024052000037", "8.00", refund_no="RF37", refund="3.00")
    refunded = api.query_order("TM2024052000037")
    assert refunded.trade_state == "REFUND"
    assert refunded.notification is not None
    assert refunded.notification.kind is NotificationKind.PAYMENT_SUCCEEDED


def test_query_and_close_refuse_an_id_wechat_would_reject(api: WeChatPayApi) -> None:
    for bad in ("", "has space", "x" * 33):
        with pytest.raises(InvalidPaymentRequest):
            api.query_order(bad)
        with pytest.raises(InvalidPaymentRequest):
            api.close_order(bad)


# -- refunds ------------------------------------------------------------------------------------


def test_refund_round_trip_and_its_notification(
    api: WeChatPayApi, fake: FakeWeChatPay, verifier: WeChatPayNotifications, clock: ManualClock
) -> None:
    paid_order(api, fake, "TM2024052000010", Decimal("100.00"))
    result = api.refund(
        out_trade_no="TM2024052000010",
        out_refund_no="RF2024052000010",
        amount=Decimal("33.33"),
        total=Decimal("100.00"),
        reason="customer returned item",
    )
    assert result.provider == "wechat"
    assert result.status is RefundStatus.PENDING
    assert (result.refund_id, result.intent_id, result.order_id) == (
        "RF2024052000010",
        "TM2024052000010",
        "TM2024052000010",
    )
    assert result.amount == Decimal("33.33")
    assert result.provider_refund_id.startswith("50300")
    body = fake.requests[-1].json()
    assert body["amount"] == {"refund": 3333, "total": 10000, "currency": "CNY"}
    assert body["reason"] == "customer returned item"
    assert body["notify_url"] == NOTIFY_URL

    clock.advance(timedelta(seconds=30))
    delivery = fake.finish_refund("RF2024052000010")
    note = verifier.parse_notification(delivery.headers, delivery.body)
    assert note.kind is NotificationKind.REFUND_SUCCEEDED
    assert note.refund_id == "RF2024052000010"
    assert note.order_id == note.intent_id == "TM2024052000010"
    assert note.amount == Decimal("33.33")
    assert note.provider_transaction_id == result.provider_refund_id
    assert note.event_id == f"wechat:refund_succeeded:{result.provider_refund_id}"
    assert note.occurred_at == START + timedelta(seconds=30)


def test_refund_query_follows_the_refund_with_the_notifications_event_id(
    api: WeChatPayApi, fake: FakeWeChatPay, verifier: WeChatPayNotifications
) -> None:
    refunded_order(api, fake, "TM2024052000040", "30.00", refund_no="RF40", refund="10.00")
    waiting = api.query_refund("RF40")
    assert (waiting.status, waiting.notification) == ("PROCESSING", None)
    assert (fake.requests[-1].method, fake.requests[-1].path) == (
        "GET",
        "/v3/refund/domestic/refunds/RF40",
    )
    delivery = fake.finish_refund("RF40")
    done = api.query_refund("RF40")
    assert done.status == "SUCCESS"
    assert done.notification == verifier.parse_notification(delivery.headers, delivery.body)
    assert done.notification is not None
    assert done.notification.kind is NotificationKind.REFUND_SUCCEEDED
    assert done.notification.amount == Decimal("10.00")


def test_refund_query_of_an_abnormal_refund_and_of_an_unknown_one(
    api: WeChatPayApi, fake: FakeWeChatPay
) -> None:
    refunded_order(api, fake, "TM2024052000041", "30.00", refund_no="RF41", refund="30.00")
    fake.finish_refund("RF41", success=False)
    abnormal = api.query_refund("RF41")
    assert abnormal.status == "ABNORMAL"
    assert abnormal.notification is not None
    assert abnormal.notification.kind is NotificationKind.REFUND_FAILED
    with pytest.raises(ProviderRefused) as unknown:
        api.query_refund("RF42")
    assert unknown.value.provider_code == "RESOURCE_NOT_EXISTS"
    fake.fail_next(1, Fault.TAMPER)
    with pytest.raises(ProviderUnavailable):
        api.query_refund("RF41")


def test_over_refund_is_refused_with_wechats_code(api: WeChatPayApi, fake: FakeWeChatPay) -> None:
    refunded_order(api, fake, "TM2024052000011", "50.00", refund_no="RF1", refund="40.00")
    with pytest.raises(ProviderRefused) as refused:
        api.refund(
            out_trade_no="TM2024052000011",
            out_refund_no="RF2",
            amount=Decimal("10.01"),
            total=Decimal("50.00"),
        )
    assert refused.value.provider_code == "INVALID_REQUEST"
    assert "可退金额" in refused.value.message
    assert fake.refund_count() == 1
    assert fake.transaction("TM2024052000011")["refunded_fen"] == 4000


def test_refund_of_an_unknown_order_is_refused(api: WeChatPayApi) -> None:
    with pytest.raises(ProviderRefused) as refused:
        api.refund(
            out_trade_no="TM-NOPE",
            out_refund_no="RF3",
            amount=Decimal("1.00"),
            total=Decimal("1.00"),
        )
    assert refused.value.provider_code == "RESOURCE_NOT_EXISTS"


def test_500_is_unavailable_and_the_retry_with_the_same_id_holds_one_refund(
    api: WeChatPayApi, fake: FakeWeChatPay
) -> None:
    paid_order(api, fake, "TM2024052000012", Decimal("20.00"))
    args = {
        "out_trade_no": "TM2024052000012",
        "out_refund_no": "RF2024052000012",
        "amount": Decimal("20.00"),
        "total": Decimal("20.00"),
    }
    fake.fail_next(1, Fault.ERROR_500)  # WeChat did the refund, the answer was a 500
    with pytest.raises(ProviderUnavailable) as unavailable:
        api.refund(**args)  # type: ignore[arg-type]
    assert "500" in str(unavailable.value)
    assert fake.refund_count() == 1
    result = api.refund(**args)  # type: ignore[arg-type]
    assert result.status is RefundStatus.PENDING
    assert fake.refund_count() == 1
    assert fake.transaction("TM2024052000012")["refunded_fen"] == 2000
    assert [r.status for r in fake.requests[-2:]] == [500, 200]


def test_a_dropped_connection_is_unavailable(api: WeChatPayApi, fake: FakeWeChatPay) -> None:
    fake.fail_next(1, Fault.DROP, after_processing=False)
    with pytest.raises(ProviderUnavailable):
        api.jsapi_prepay(
            out_trade_no="TM2024052000013", amount=Decimal("1.00"), description="d", openid=OPENID
        )
    prepay_id = api.jsapi_prepay(
        out_trade_no="TM2024052000013", amount=Decimal("1.00"), description="d", openid=OPENID
    )
    assert prepay_id.startswith("wx")


@pytest.mark.parametrize(
    "fault", [Fault.TAMPER, Fault.WRONG_KEY, Fault.UNKNOWN_SERIAL, Fault.UNSIGNED]
)
def test_an_answer_that_does_not_verify_is_unavailable(
    api: WeChatPayApi, fake: FakeWeChatPay, fault: Fault
) -> None:
    paid_order(api, fake, "TM2024052000014", Decimal("9.99"))
    fake.fail_next(1, fault)
    with pytest.raises(ProviderUnavailable) as unavailable:
        api.refund(
            out_trade_no="TM2024052000014",
            out_refund_no="RF14",
            amount=Decimal("9.99"),
            total=Decimal("9.99"),
        )
    assert "does not verify" in str(unavailable.value)
    assert fake.requests[-1].status == 200  # the refund was made; only its answer was bad
    again = api.refund(
        out_trade_no="TM2024052000014",
        out_refund_no="RF14",
        amount=Decimal("9.99"),
        total=Decimal("9.99"),
    )
    assert again.amount == Decimal("9.99")
    assert fake.refund_count() == 1


@pytest.mark.usefixtures("default_recursion_limit")
def test_a_signed_answer_nested_too_deep_is_unavailable_or_refused_never_a_crash(
    api: WeChatPayApi, fake: FakeWeChatPay
) -> None:
    # a 200 whose body is arrays nested 30,000 deep: signed, but no answer WeChat would give
    paid_order(api, fake, "TM2024052000016", Decimal("5.00"))
    fake.fail_next(1, Fault.DEEP_JSON)
    with pytest.raises(ProviderUnavailable) as unavailable:
        api.query_order("TM2024052000016")
    assert "nested deeper than 64 levels" in str(unavailable.value)
    # the same body on a 500 and on a 4xx, whose error bodies are read for WeChat's code
    fake.fail_next(1, Fault.DEEP_JSON, after_processing=False)
    with pytest.raises(ProviderUnavailable):
        api.query_order("TM2024052000016")
    fake.fail_next(1, Fault.DEEP_JSON)
    with pytest.raises(ProviderRefused) as refused:
        api.query_order("TM2024052000099")  # unknown: 404
    assert refused.value.provider_code == "HTTP_404"
    assert api.query_order("TM2024052000016").trade_state == "SUCCESS"


def test_a_stale_answer_is_unavailable(
    fake: FakeWeChatPay,
    other_private_key: rsa.RSAPrivateKey,
    platform_private_key: rsa.RSAPrivateKey,
) -> None:
    skewed = ManualClock(START + timedelta(minutes=6))
    client = make_api(fake, skewed, other_private_key, platform_private_key)
    try:
        with pytest.raises(ProviderUnavailable) as unavailable:
            client.jsapi_prepay(
                out_trade_no="TM2024052000015", amount=Decimal("1"), description="d", openid=OPENID
            )
    finally:
        client.close()
    # WeChat refused the skewed request (401) and its answer is stale to the skewed clock
    assert fake.requests[-1].status == 401
    assert "does not verify" in str(unavailable.value)


def test_a_wrong_merchant_key_gets_401_sign_error(
    fake: FakeWeChatPay,
    clock: ManualClock,
    wrong_merchant_key: rsa.RSAPrivateKey,
    platform_private_key: rsa.RSAPrivateKey,
) -> None:
    client = make_api(fake, clock, wrong_merchant_key, platform_private_key)
    try:
        with pytest.raises(ProviderRefused) as refused:
            client.jsapi_prepay(
                out_trade_no="TM2024052000016", amount=Decimal("1"), description="d", openid=OPENID
            )
    finally:
        client.close()
    assert refused.value.provider_code == "SIGN_ERROR"
    assert fake.requests[-1].status == 401


# -- transfers ----------------------------------------------------------------------------------


def test_transfer_round_trip_and_its_notification(
    api: WeChatPayApi, fake: FakeWeChatPay, verifier: WeChatPayNotifications, clock: ManualClock
) -> None:
    request = PayoutRequest("WD2024052000001", OPENID, Decimal("12.34"), "积分提现 May")
    result = api.transfer(request)
    assert result.status is PayoutStatus.PENDING
    assert (result.provider, result.payout_id, result.account) == (
        "wechat",
        request.payout_id,
        OPENID,
    )
    assert result.amount == Decimal("12.34")
    assert result.confirm_package is None
    body = fake.requests[-1].json()
    assert body["transfer_amount"] == 1234
    assert body["transfer_scene_id"] == "1000"
    assert body["transfer_remark"] == "积分提现 May"
    assert [i["info_type"] for i in body["transfer_scene_report_infos"]] == ["活动名称", "奖励说明"]
    assert api.transfer(request) == result  # same out_bill_no, same content: same bill
    assert fake.transfer_count() == 1

    clock.advance(timedelta(minutes=2))
    delivery = fake.finish_transfer("WD2024052000001")
    note = verifier.parse_notification(delivery.headers, delivery.body)
    assert note.kind is NotificationKind.PAYOUT_SUCCEEDED
    assert note.payout_id == "WD2024052000001"
    assert note.amount == Decimal("12.34")
    assert note.provider_transaction_id == result.provider_payout_id
    assert note.event_id == f"wechat:payout_succeeded:{result.provider_payout_id}"
    assert note.occurred_at == START + timedelta(minutes=2)
    redelivered = fake.finish_transfer("WD2024052000001")
    assert verifier.parse_notification(redelivered.headers, redelivered.body) == note


def test_failed_transfer_notification_is_payout_failed(
    api: WeChatPayApi, fake: FakeWeChatPay, verifier: WeChatPayNotifications
) -> None:
    api.transfer(PayoutRequest("WD2024052000002", OPENID, Decimal("0.30")))
    body = fake.requests[-1].json()
    assert body["transfer_remark"] == "积分提现"  # the default when there is no description
    delivery = fake.finish_transfer("WD2024052000002", success=False)
    note = verifier.parse_notification(delivery.headers, delivery.body)
    assert note.kind is NotificationKind.PAYOUT_FAILED
    assert note.amount == Decimal("0.30")


def test_transfer_waiting_for_the_payee_returns_the_confirm_package(
    api: WeChatPayApi, fake: FakeWeChatPay
) -> None:
    fake.transfers_need_confirmation = True
    result = api.transfer(PayoutRequest("WD2024052000003", OPENID, Decimal("5.00")))
    assert result.status is PayoutStatus.PENDING
    assert result.confirm_package is not None
    assert result.confirm_package.startswith("ABBQO")


def test_a_transfer_from_2000_cny_carries_the_payee_name_sealed_for_wechat(
    api: WeChatPayApi, fake: FakeWeChatPay
) -> None:
    name = api.encrypt("张三")
    assert name.serial == PLATFORM_SERIAL
    assert "张三" not in name.ciphertext
    assert api.encrypt("张三").ciphertext != name.ciphertext  # OAEP is randomised
    request = PayoutRequest("WD0000000000000000000000000002", OPENID, Decimal("2500.00"), "x")
    result = api.transfer(request, user_name=name)
    assert result.status is PayoutStatus.PENDING
    sent = fake.requests[-1]
    assert sent.headers["Wechatpay-Serial"] == PLATFORM_SERIAL
    assert sent.json()["user_name"] == name.ciphertext
    assert fake.transfer_payee_name("WD0000000000000000000000000002") == "张三"
    # the same sealed name again: the same bill, no second transfer
    assert api.transfer(request, user_name=name).payout_id == result.payout_id
    assert fake.transfer_count() == 1


def test_a_name_sealed_with_an_unknown_key_is_refused_by_wechat(
    api: WeChatPayApi, fake: FakeWeChatPay
) -> None:
    name = api.encrypt("李四")
    forged = type(name)("PUB_KEY_ID_RETIRED", name.ciphertext)
    request = PayoutRequest("WD0000000000000000000000000003", OPENID, Decimal("2000.00"), "x")
    with pytest.raises(ProviderRefused) as refused:
        api.transfer(request, user_name=forged)
    assert refused.value.provider_code == "PARAM_ERROR"
    assert fake.transfer_count() == 0
    for bad in ("", " ", "x" * 65):
        with pytest.raises(InvalidPaymentRequest):
            api.encrypt(bad)


def test_a_reused_payout_id_with_another_amount_is_refused(
    api: WeChatPayApi, fake: FakeWeChatPay
) -> None:
    api.transfer(PayoutRequest("WD2024052000004", OPENID, Decimal("5.00")))
    with pytest.raises(ProviderRefused) as refused:
        api.transfer(PayoutRequest("WD2024052000004", OPENID, Decimal("5.01")))
    assert refused.value.provider_code == "INVALID_REQUEST"
    assert fake.transfer_count() == 1


@pytest.mark.parametrize(
    "request_",
    [
        PayoutRequest("WD-with-dash", OPENID, Decimal("1.00")),  # out_bill_no: letters, digits
        PayoutRequest("WD2024052000005", OPENID, Decimal("2000.00")),  # needs the payee's name
    ],
)
def test_transfers_wechat_would_refuse_never_leave(
    api: WeChatPayApi, fake: FakeWeChatPay, request_: PayoutRequest
) -> None:
    with pytest.raises(InvalidPaymentRequest):
        api.transfer(request_)
    assert fake.requests == []


def test_refund_above_total_never_leaves(api: WeChatPayApi, fake: FakeWeChatPay) -> None:
    with pytest.raises(PaymentError):
        api.refund(out_trade_no="TM1", out_refund_no="RF1", amount=Decimal("2"), total=Decimal("1"))
    with pytest.raises(PaymentError):
        api.refund(
            out_trade_no="TM1", out_refund_no="RF1", amount=Decimal("0.001"), total=Decimal("1")
        )
    assert fake.requests == []


def test_configuration_is_checked(
    other_private_key: rsa.RSAPrivateKey, platform_private_key: rsa.RSAPrivateKey
) -> None:
    good = {
        "mch_id": MCH_ID,
        "app_id": APP_ID,
        "merchant_key": other_private_key,
        "merchant_serial": MERCHANT_SERIAL,
        "platform_keys": {PLATFORM_SERIAL: platform_private_key.public_key()},
        "notify_url": NOTIFY_URL,
    }
    WeChatPayApi(**good).close()  # type: ignore[arg-type]
    for change in (
        {"notify_url": "http://tokenmall.example/notify"},
        {"notify_url": NOTIFY_URL + "?tenant=1"},
        {"platform_keys": {}},
        {"mch_id": ""},
    ):
        with pytest.raises(ProviderConfigError):
            WeChatPayApi(**{**good, **change})  # type: ignore[arg-type]


# -- transfer notifications, directly ---------------------------------------------------------


def _transfer_delivery(
    key: rsa.RSAPrivateKey, event_type: str, **overrides: object
) -> SignedDelivery:
    fields: dict[str, object] = {
        "out_bill_no": "WD1",
        "transfer_bill_no": "1330000071100999991182020050700019480001",
        "amount": Decimal("20.00"),
        "openid": OPENID,
        "created_at": START - timedelta(minutes=5),
        "updated_at": START - timedelta(minutes=1),
        "mch_id": MCH_ID,
    }
    fields.update(overrides)
    return build_notification(
        private_key=key,
        serial=PLATFORM_SERIAL,
        api_v3_key=API_V3_KEY,
        resource=transfer_resource(**fields),  # type: ignore[arg-type]
        sent_at=START,
        event_type=event_type,
    )


def test_transfer_notification_envelope_is_mch_payment(
    platform_private_key: rsa.RSAPrivateKey,
) -> None:
    body = _transfer_delivery(platform_private_key, "MCHTRANSFER.BILL.FINISHED").body
    assert b'"original_type":"mch_payment"' in body
    assert b'"associated_data":"mch_payment"' in body


def test_transfer_notification_for_another_merchant_is_foreign(
    verifier: WeChatPayNotifications, platform_private_key: rsa.RSAPrivateKey
) -> None:
    delivery = _transfer_delivery(
        platform_private_key, "MCHTRANSFER.BILL.FINISHED", mch_id="1900000999"
    )
    with pytest.raises(ForeignNotification):
        verifier.parse_notification(delivery.headers, delivery.body)


@pytest.mark.parametrize(
    ("event_type", "state"),
    [("MCHTRANSFER.BATCH.FINISHED", "SUCCESS"), ("MCHTRANSFER.BILL.FINISHED", "PROCESSING")],
)
def test_transfer_events_that_are_not_final_bills_are_unsupported(
    verifier: WeChatPayNotifications,
    platform_private_key: rsa.RSAPrivateKey,
    event_type: str,
    state: str,
) -> None:
    delivery = _transfer_delivery(platform_private_key, event_type, state=state)
    with pytest.raises(UnsupportedNotification):
        verifier.parse_notification(delivery.headers, delivery.body)


# -- public-key mode ------------------------------------------------------------------------------


def _client(
    fake: FakeWeChatPay,
    clock: ManualClock,
    merchant_key: rsa.RSAPrivateKey,
    platform_keys: dict[str, rsa.RSAPublicKey],
) -> WeChatPayApi:
    return WeChatPayApi(
        mch_id=MCH_ID,
        app_id=APP_ID,
        merchant_key=merchant_key,
        merchant_serial=MERCHANT_SERIAL,
        platform_keys=platform_keys,
        notify_url=NOTIFY_URL,
        base_url=fake.base_url,
        clock=clock,
        timeout=5.0,
    )


def _every_call(api: WeChatPayApi, fake: FakeWeChatPay, n: int) -> None:
    """One call of each kind the client makes."""
    no, refund_no = f"TM20240520001{n:02d}", f"RF20240520001{n:02d}"
    api.jsapi_prepay(out_trade_no=no, amount=Decimal("3.00"), description="d", openid=OPENID)
    assert api.query_order(no).trade_state == "NOTPAY"
    fake.pay(no)
    api.refund(out_trade_no=no, out_refund_no=refund_no, amount=Decimal("1"), total=Decimal("3"))
    assert api.query_refund(refund_no).out_refund_no == refund_no
    closable = f"TM20240520002{n:02d}"
    api.jsapi_prepay(out_trade_no=closable, amount=Decimal("1"), description="d", openid=OPENID)
    api.close_order(closable)
    api.transfer(PayoutRequest(f"WD20240520001{n:02d}", OPENID, Decimal("5.00")))
    api.download_certificates(API_V3_KEY)


def test_in_public_key_mode_every_call_names_the_public_key(
    api: WeChatPayApi, fake: FakeWeChatPay
) -> None:
    # The merchant also has a platform certificate, so WeChat signs with it unless a request
    # names the public key (WeChat's guide to switching to the WeChat Pay public key): a
    # client configured with the public key only must name it on every call, or it cannot
    # verify a single answer.
    fake.rotate_certificate()
    _every_call(api, fake, 1)
    assert fake.requests
    for sent in fake.requests:
        assert sent.headers.get("Wechatpay-Serial") == PLATFORM_SERIAL, (sent.method, sent.path)
        assert 200 <= sent.status < 300


def test_a_client_with_certificates_only_names_no_key_and_is_answered_with_the_certificate(
    fake: FakeWeChatPay, clock: ManualClock, other_private_key: rsa.RSAPrivateKey
) -> None:
    serial = fake.rotate_certificate()
    client = _client(fake, clock, other_private_key, {serial: fake.platform_key.public_key()})
    try:
        _every_call(client, fake, 2)
    finally:
        client.close()
    assert all("Wechatpay-Serial" not in r.headers for r in fake.requests)


def test_with_both_kinds_of_key_configured_calls_name_the_public_key(
    fake: FakeWeChatPay,
    clock: ManualClock,
    other_private_key: rsa.RSAPrivateKey,
    platform_private_key: rsa.RSAPrivateKey,
) -> None:
    # during the switch a merchant configures both; WeChat then answers with the public key
    serial = fake.rotate_certificate()
    keys = {
        serial: fake.platform_key.public_key(),
        PLATFORM_SERIAL: platform_private_key.public_key(),
    }
    client = _client(fake, clock, other_private_key, keys)
    try:
        _every_call(client, fake, 3)
        # a payee name sealed with the certificate (the first key) names that key instead
        name = client.encrypt("张三")
        assert name.serial == serial
        request = PayoutRequest("WD0000000000000000000000000009", OPENID, Decimal("2500"), "x")
        client.transfer(request, user_name=name)
    finally:
        client.close()
    *calls, transfer = fake.requests
    assert {r.headers.get("Wechatpay-Serial") for r in calls} == {PLATFORM_SERIAL}
    assert transfer.headers["Wechatpay-Serial"] == serial
    assert fake.transfer_payee_name("WD0000000000000000000000000009") == "张三"


def test_the_fake_signs_with_the_key_a_request_names_else_with_the_certificate(
    fake: FakeWeChatPay,
) -> None:
    """The fake itself (unauthenticated requests are refused 401, signed like any answer)."""
    serial = fake.rotate_certificate()
    with httpx.Client(base_url=fake.base_url) as http:
        for named, signer in (
            (None, serial),  # what a public-key client that forgot the header gets
            (PLATFORM_SERIAL, PLATFORM_SERIAL),
            (serial, serial),
            ("PUB_KEY_ID_NOBODY", serial),  # not a key of WeChat's: the default signs
        ):
            headers = {} if named is None else {"Wechatpay-Serial": named}
            answer = http.get("/v3/certificates", headers=headers)
            assert answer.status_code == 401
            assert answer.headers["Wechatpay-Serial"] == signer


# -- platform certificates ------------------------------------------------------------------------


def test_certificates_download_trusts_a_rotated_key_through_the_apiv3_key(
    api: WeChatPayApi, fake: FakeWeChatPay, clock: ManualClock, other_private_key: rsa.RSAPrivateKey
) -> None:
    first = fake.rotate_certificate()
    # a merchant in certificate mode, which knows the first certificate only
    client = _client(fake, clock, other_private_key, {first: fake.platform_key.public_key()})
    serial = fake.rotate_certificate()
    no = "TM2024052000050"
    try:
        # the client does not know the new key yet: WeChat's answer signed with it is refused
        with pytest.raises(ProviderUnavailable, match="does not verify"):
            client.jsapi_prepay(
                out_trade_no=no, amount=Decimal("1.00"), description="d", openid=OPENID
            )
        certificates = client.download_certificates(API_V3_KEY)
    finally:
        client.close()
    assert (fake.requests[-1].path, fake.requests[-1].status) == ("/v3/certificates", 200)
    assert [c.serial for c in certificates] == [first, serial]
    cert = certificates[1]
    assert cert.pem.startswith("-----BEGIN CERTIFICATE-----")
    assert cert.expires > cert.effective
    # a client in public-key mode names its key, so the rotation does not concern its calls
    api.jsapi_prepay(out_trade_no=no, amount=Decimal("1.00"), description="d", openid=OPENID)
    # the downloaded key is the one WeChat now signs its notifications with
    delivery = fake.pay(no)
    verifier = WeChatPayNotifications(
        platform_keys={cert.serial: cert.public_key},
        api_v3_key=API_V3_KEY,
        mch_id=MCH_ID,
        clock=clock,
    )
    note = verifier.parse_notification(delivery.headers, delivery.body)
    assert note.kind is NotificationKind.PAYMENT_SUCCEEDED


def test_certificates_that_do_not_decrypt_with_our_apiv3_key_are_refused(
    api: WeChatPayApi, fake: FakeWeChatPay
) -> None:
    fake.rotate_certificate()
    with pytest.raises(ProviderUnavailable, match="decrypt"):
        api.download_certificates("x" * 32)
    fake.fail_next(1, Fault.TAMPER)
    with pytest.raises(ProviderUnavailable):
        api.download_certificates(API_V3_KEY)
