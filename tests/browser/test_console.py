"""The operator console in a real browser (Debian's Chromium, headless), on SQLite and
PostgreSQL: log in, the dashboard's charts carry the service's series, a withdrawal approved
and an order refunded from the pages (checked in the database and the ledger), roles and
tenants kept apart, CSRF, bad input refused and escaped, every page clean (no console error,
nothing fetched from outside 127.0.0.1)."""

from __future__ import annotations

import datetime as dt
import re
import time
from decimal import Decimal

import pytest
from console_helpers import (
    SCREENSHOTS,
    Served,
    Shop,
    Watch,
    assert_ledger_balanced,
    login,
    make_shop,
)
from playwright.sync_api import Page

from tokenmall.service import credentials, dayclose, reads, series, tenants, wallet
from tokenmall.service.codec import cny, dec
from tokenmall.service.orders import Viewer as AfterSalesViewer
from tokenmall.store.db import read_only
from tokenmall.web.dashboard import CHART_DAYS
from tokenmall.web.i18n import translations

PAGES = (
    "/",
    "/orders",
    "/withdrawals",
    "/members",
    "/members/alice",
    "/products",
    "/params",
    "/day-close",
    "/desk",
)


def _shop(served: Served) -> Shop:
    return make_shop(served.services)


def _chart(page: Page, element: str) -> dict:
    return page.evaluate(
        """(id) => {
            const o = echarts.getInstanceByDom(document.getElementById(id)).getOption();
            return {x: o.xAxis[0].data, y: o.series[0].data, type: o.series[0].type};
        }""",
        element,
    )


def _no_errors(watch: Watch, *allowed: int) -> None:
    statuses = "|".join(str(s) for s in allowed) or "none"
    bad = [e for e in watch.errors if not re.search(rf"status of ({statuses}) ", e)]
    assert bad == [], bad


def test_every_page_loads_clean_in_both_languages(served: Served, page: Page, watch: Watch) -> None:
    shop = _shop(served)
    login(page, served.base, shop.code, shop.operator_key)
    assert page.url == f"{served.base}/console/{shop.code}/"
    for path in PAGES:
        response = page.goto(f"{served.base}/console/{shop.code}{path}")
        assert response is not None
        assert response.status == 200, path
        assert response.headers["content-security-policy"].startswith("default-src 'self'")
        assert page.locator("html").get_attribute("lang") == "zh-CN"
    page.goto(f"{served.base}/console/{shop.code}/orders?lang=en")
    assert page.locator("h1").inner_text() == "Orders"
    page.goto(f"{served.base}/console/{shop.code}/orders")  # the cookie remembers English
    assert page.locator("h1").inner_text() == "Orders"
    page.goto(f"{served.base}/console/{shop.code}/orders?lang=zh_CN")
    assert page.locator("h1").inner_text() == "订单"
    # the order list, its filter and its CSV
    assert shop.order_ref in page.locator("#orders").inner_text()
    page.goto(f"{served.base}/console/{shop.code}/orders?status=refunded")
    assert shop.order_ref not in page.locator("#orders").inner_text()
    csv = page.request.get(f"{served.base}/console/{shop.code}/orders.csv?status=paid&member=bob")
    assert csv.status == 200
    lines = csv.text().lstrip("\ufeff").splitlines()
    assert lines[0].startswith("订单,会员,状态")
    assert [ln.split(",")[0] for ln in lines[1:]] == [shop.order_ref]
    assert lines[1].split(",")[3] == "200.00"
    assert lines[1].split(",")[2] == translations("zh_CN").gettext("Paid")  # the page's language
    english = page.request.get(f"{served.base}/console/{shop.code}/orders.csv?status=paid&lang=en")
    assert english.text().lstrip("\ufeff").splitlines()[1].split(",")[2] == "Paid"
    _no_errors(watch)


def test_dashboard_charts_carry_the_services_series(
    served: Served, page: Page, watch: Watch, request: pytest.FixtureRequest
) -> None:
    shop = _shop(served)
    svc = served.services
    # bob's order settles (he holds EP) and today closes early: the dividends chart has a bar
    svc.orders.settle_order(shop.tenant_id, shop.order_ref)
    with read_only(svc.engine).connect() as conn:
        clock = dayclose.tenant_clock(conn, shop.tenant_id)
    today = clock.today(time.time())
    closed = dayclose.close_requested(svc.store, clock, today, time.time())
    assert Decimal(closed.paid) > 0
    login(page, served.base, shop.code, shop.operator_key)
    page.wait_for_function(
        "() => window.echarts && echarts.getInstanceByDom(document.getElementById('chart-price'))"
    )
    with read_only(svc.engine).connect() as conn:
        rows = series.daily_series(
            conn, clock, today - dt.timedelta(days=CHART_DAYS - 1), today, time.time()
        )
    dates = [r.date.isoformat() for r in rows]
    price = _chart(page, "chart-price")
    assert price["x"] == dates
    assert price["y"] == [r.price for r in rows]
    pool = _chart(page, "chart-pool")
    assert pool["y"] == [str(r.pool) for r in rows]
    dividends = _chart(page, "chart-dividends")
    assert dividends["type"] == "bar"
    assert dividends["y"] == [r.dividends for r in rows]
    assert dividends["y"][-1] == closed.paid
    # the tiles: today's sales as ¥ with thousands, orders and members of the local day
    assert page.locator("#sales-today").inner_text() == "¥300.00"  # bob's 200 + alice's 100
    assert page.locator("#orders-today").inner_text() == "1"
    assert page.locator("#members-today").inner_text() == "2"
    # EP in the API's one format (no trailing zeros), CNY as the API's cny behind a ¥
    with read_only(svc.engine).connect() as conn:
        economy = reads.economy(conn, shop.tenant_id)
    circulating = page.locator("#circulating").inner_text()
    assert circulating.replace(",", "") == dec(economy.circulating)
    assert page.locator("#pool").inner_text().lstrip("¥").replace(",", "") == cny(economy.pool)
    if request.node.callspec.params.get("served") == "sqlite":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "console-dashboard.png"), full_page=True)
    _no_errors(watch)


def test_approve_and_reject_withdrawals_from_the_page(
    served: Served, page: Page, watch: Watch
) -> None:
    shop = _shop(served)
    svc = served.services
    login(page, served.base, shop.code, shop.operator_key)
    page.goto(f"{served.base}/console/{shop.code}/withdrawals")
    page.click(f"text={shop.withdrawal_id}")
    assert page.locator("#wd-amount").inner_text() == "¥5.00"
    page.fill("#approve-form input[name=note]", "核对无误")
    page.click("#approve-form button")
    assert page.locator(".notice").is_visible()
    with read_only(svc.engine).connect() as conn:
        wd = wallet.get_withdrawal(conn, shop.tenant_id, shop.withdrawal_id)
    assert wd.status == "paid"  # the sandbox pays at once
    assert wd.note == "核对无误"
    assert wd.reviewer is not None
    assert wd.reviewer.startswith("operator-key:")
    # a second one, rejected with a reason: the amount returns to the wallet
    with read_only(svc.engine).connect() as conn:
        before = wallet.balance(conn, shop.tenant_id, "alice").stable
    second, _ = wallet.request_withdrawal(
        svc.store.ledger, shop.tenant_id, "alice", amount=Decimal("3.00"), account="x", key="w2"
    )
    page.goto(f"{served.base}/console/{shop.code}/withdrawals/{second.id}")
    page.click("#reject-form button")  # no reason: the browser's own check stops it
    assert page.url.endswith(second.id)
    page.fill("#reject-form input[name=note]", "账户信息不符")
    page.click("#reject-form button")
    assert page.locator("#wd-status").inner_text() == "已驳回"
    with read_only(svc.engine).connect() as conn:
        assert wallet.get_withdrawal(conn, shop.tenant_id, second.id).status == "rejected"
        assert wallet.balance(conn, shop.tenant_id, "alice").stable == before
    assert_ledger_balanced(svc, shop.tenant_id)
    _no_errors(watch)


def test_refund_part_then_the_rest_from_the_page(served: Served, page: Page, watch: Watch) -> None:
    shop = _shop(served)
    svc = served.services
    login(page, served.base, shop.code, shop.operator_key)
    page.goto(f"{served.base}/console/{shop.code}/orders/{shop.order_ref}")
    assert page.locator("#order-total").inner_text() == "¥200.00"
    page.fill("#refund-form input[name=amount]", "50.5")
    page.fill("#refund-form input[name=reason]", "少发一件")
    page.click("#refund-form button")
    assert page.locator(".notice").inner_text() == "已退款 ¥50.50。"
    order = svc.orders.get_order(shop.tenant_id, shop.order_ref)
    assert order.refunded == Decimal("50.50")
    assert [r.reason for r in order.refunds] == ["少发一件"]
    assert_ledger_balanced(svc, shop.tenant_id)
    # the same form posted twice (a double click): one refund, the form's refund_id
    page.goto(f"{served.base}/console/{shop.code}/orders/{shop.order_ref}")
    form = {
        name: page.eval_on_selector(f"#refund-form input[name={name}]", "e => e.value")
        for name in ("csrf", "refund_id")
    }
    action = f"{served.base}/console/{shop.code}/orders/{shop.order_ref}/refund"
    for _ in range(2):
        again = page.request.post(action, form={**form, "amount": "10", "reason": ""})
        assert again.status == 200
    order = svc.orders.get_order(shop.tenant_id, shop.order_ref)
    assert order.refunded == Decimal("60.50")
    assert len(order.refunds) == 2
    # the rest, with the amount left empty
    page.goto(f"{served.base}/console/{shop.code}/orders/{shop.order_ref}")
    page.click("#refund-form button")
    order = svc.orders.get_order(shop.tenant_id, shop.order_ref)
    assert order.status == "refunded"
    assert order.refunded == Decimal("200.00")
    assert page.locator("#order-refunded").inner_text() == "¥200.00"
    assert_ledger_balanced(svc, shop.tenant_id)
    _no_errors(watch)


BAD_AMOUNTS = ["-1", "0", "1.001", "99999999999999999999", "1e3", "<script>alert(1)</script>"]


def test_bad_input_is_refused_shown_and_escaped(served: Served, page: Page, watch: Watch) -> None:
    shop = _shop(served)
    svc = served.services
    login(page, served.base, shop.code, shop.operator_key)
    url = f"{served.base}/console/{shop.code}/orders/{shop.order_ref}"
    for amount in BAD_AMOUNTS:
        page.goto(url)
        page.fill("#refund-form input[name=amount]", amount)
        page.click("#refund-form button")
        assert page.locator(".error").is_visible(), amount
        assert page.locator("script:not([src])").count() == 0
    # more than the order has left: the service refuses, the page says why
    page.goto(url)
    page.fill("#refund-form input[name=amount]", "200.01")
    page.click("#refund-form button")
    assert "操作未完成" in page.locator(".error").inner_text()
    # a script in the reason of a too-long refund reason; in a rejection's reason
    page.goto(url)
    page.fill("#refund-form input[name=amount]", "1")
    page.evaluate("document.querySelector('#refund-form input[name=reason]').maxLength = 9999")
    page.fill("#refund-form input[name=reason]", "<script>alert(1)</script>" * 10)
    page.click("#refund-form button")
    assert page.locator(".error").inner_text() == "最多 200 个字符。"
    assert svc.orders.get_order(shop.tenant_id, shop.order_ref).refunded == 0
    # a member search with markup is shown as text
    page.goto(f"{served.base}/console/{shop.code}/members?q=%3Cb%3Ex%3C%2Fb%3E")
    assert page.locator(".error").inner_text() == "没有会员 <b>x</b>。"
    assert page.locator("main b").count() == 0
    # a bad date in the order filter and in the day close
    page.goto(f"{served.base}/console/{shop.code}/orders?from=2026-13-01")
    assert page.locator(".error").inner_text() == "日期格式为 YYYY-MM-DD。"
    page.goto(f"{served.base}/console/{shop.code}/day-close")
    page.fill("#close-form input[name=date]", "")
    page.evaluate(
        "(() => { const i = document.querySelector('#close-form input[name=date]');"
        " i.type = 'text'; i.value = '<script>alert(2)</script>'; })()"
    )
    page.click("#close-form button")
    assert page.locator(".error").inner_text() == "日期格式为 YYYY-MM-DD。"
    # a withdrawal rejected with control characters only is refused
    page.goto(f"{served.base}/console/{shop.code}/withdrawals/{shop.withdrawal_id}")
    page.fill("#reject-form input[name=note]", "\u202e坏")
    page.click("#reject-form button")
    assert page.locator(".error").inner_text() == "不能包含控制字符。"
    with read_only(svc.engine).connect() as conn:
        assert wallet.get_withdrawal(conn, shop.tenant_id, shop.withdrawal_id).status == (
            "requested"
        )
    assert_ledger_balanced(svc, shop.tenant_id)
    _no_errors(watch, 400, 409)


def test_a_form_without_its_csrf_token_is_refused(served: Served, page: Page, watch: Watch) -> None:
    shop = _shop(served)
    svc = served.services
    login(page, served.base, shop.code, shop.operator_key)
    page.goto(f"{served.base}/console/{shop.code}/orders/{shop.order_ref}")
    page.eval_on_selector("#refund-form input[name=csrf]", "e => e.remove()")
    page.fill("#refund-form input[name=amount]", "10")
    with page.expect_navigation() as nav:
        page.click("#refund-form button")
    assert nav.value is not None
    assert nav.value.status == 403
    page.goto(f"{served.base}/console/{shop.code}/withdrawals/{shop.withdrawal_id}")
    page.eval_on_selector("#approve-form input[name=csrf]", "e => e.value = 'forged'")
    with page.expect_navigation() as nav:
        page.click("#approve-form button")
    assert nav.value is not None
    assert nav.value.status == 403
    assert svc.orders.get_order(shop.tenant_id, shop.order_ref).refunded == 0
    with read_only(svc.engine).connect() as conn:
        assert wallet.get_withdrawal(conn, shop.tenant_id, shop.withdrawal_id).status == (
            "requested"
        )
    # the login form too
    response = page.request.post(
        f"{served.base}/console/login",
        form={"tenant": shop.code, "key": shop.operator_key, "csrf": "x"},
    )
    assert response.status == 403
    _no_errors(watch, 403)


def test_roles_and_tenants_are_kept_apart(served: Served, page: Page, watch: Watch) -> None:
    shop = _shop(served)
    other = _shop(served)
    # a wrong key, and a key of another tenant, are refused alike
    page.goto(f"{served.base}/console/login")
    page.fill("input[name=tenant]", shop.code)
    page.fill("input[name=key]", other.operator_key)
    page.click("#login-form button")
    assert page.locator(".error").inner_text() == "商城代码或密钥错误。"
    # no session: the login page
    page.goto(f"{served.base}/console/{shop.code}/withdrawals")
    assert page.url == f"{served.base}/console/login"
    # a merchant: its orders and products, not the operator's pages
    login(page, served.base, shop.code, shop.merchant_key)
    response = page.goto(f"{served.base}/console/{shop.code}/orders")
    assert response is not None
    assert response.status == 200
    assert shop.order_ref in page.locator("#orders").inner_text()
    for path in ("/withdrawals", "/members", "/params", "/day-close", "/desk", "/orders.csv"):
        response = page.goto(f"{served.base}/console/{shop.code}{path}")
        assert response is not None
        assert response.status == 403, path
    refused = page.request.post(
        f"{served.base}/console/{shop.code}/withdrawals/{shop.withdrawal_id}/approve",
        form={"csrf": "x"},
    )
    assert refused.status == 403
    page.goto(f"{served.base}/console/{shop.code}/")
    assert page.locator("#orders-today").count() == 0
    assert page.locator("#price").is_visible()
    # the merchant ships its lines
    page.goto(f"{served.base}/console/{shop.code}/orders/{shop.order_ref}")
    page.fill("#ship-form input[name=carrier]", "顺丰")
    page.fill("#ship-form input[name=tracking_no]", "SF1234567890")
    page.click("#ship-form button")
    assert "SF1234567890" in page.content()
    # revoking the key ends its sessions at once
    with served.services.engine.begin() as conn:
        key_id = shop.merchant_key.removeprefix("tmk_").partition("_")[0]
        credentials.revoke_api_key(conn, shop.tenant_id, key_id)
    page.goto(f"{served.base}/console/{shop.code}/orders")
    assert page.url == f"{served.base}/console/login"
    # the operator of tenant A on tenant B's pages: as if B did not exist
    login(page, served.base, shop.code, shop.operator_key)
    for path in ("/", "/orders", f"/orders/{other.order_ref}", "/withdrawals"):
        response = page.goto(f"{served.base}/console/{other.code}{path}")
        assert response is not None
        assert response.status == 404, path
    # logging out ends the session
    page.goto(f"{served.base}/console/{shop.code}/")
    page.click("header form button")
    page.goto(f"{served.base}/console/{shop.code}/")
    assert page.url == f"{served.base}/console/login"
    with read_only(served.services.engine).connect() as conn:
        assert wallet.get_withdrawal(conn, shop.tenant_id, shop.withdrawal_id).status == (
            "requested"
        )
    _no_errors(watch, 401, 403, 404)


def test_filters_desk_parameters_and_day_close_from_the_pages(
    served: Served, page: Page, watch: Watch
) -> None:
    shop = _shop(served)
    svc = served.services
    tid = shop.tenant_id
    login(page, served.base, shop.code, shop.operator_key)
    # the order filters swap the results in place (htmx) and keep the URL
    page.goto(f"{served.base}/console/{shop.code}/orders")
    with read_only(svc.engine).connect() as conn:
        today = dayclose.tenant_clock(conn, tid).today(time.time())
    page.fill("#order-filters input[name=from]", (today + dt.timedelta(days=1)).isoformat())
    page.click("#order-filters button")
    page.wait_for_url(re.compile(r"from="))
    assert page.locator("#orders").inner_text().count(shop.order_ref) == 0
    page.fill("#order-filters input[name=from]", today.isoformat())
    page.fill("#order-filters input[name=to]", today.isoformat())
    page.click("#order-filters button")
    page.wait_for_function(
        "(ref) => document.querySelector('#orders').innerText.includes(ref)", arg=shop.order_ref
    )
    # an after-sales request accepted from the desk refunds the order by its amount
    svc.orders.aftersales.request_refund(
        tid,
        shop.order_ref,
        viewer=AfterSalesViewer(member="bob"),
        amount=Decimal("20.00"),
        reason="<b>破损</b>",
        actor="member:bob",
    )
    page.goto(f"{served.base}/console/{shop.code}/desk")
    assert "<b>破损</b>" in page.locator("#aftersales").inner_text()  # shown as text
    page.click("#aftersales .accept-form button")
    assert page.locator(".notice").inner_text() == "已同意并退款。"
    assert svc.orders.get_order(tid, shop.order_ref).refunded == Decimal("20.00")
    assert_ledger_balanced(svc, tid)
    # a parameter changed from the page: recorded with the key that did it; a bad one refused
    page.goto(f"{served.base}/console/{shop.code}/params")
    page.fill("#params-form input[name='p:withdraw_min']", "10")
    page.click("#params-form button")
    assert page.locator(".notice").inner_text() == "已修改：withdraw_min。"  # noqa: RUF001
    with read_only(svc.engine).connect() as conn:
        changes = tenants.list_param_changes(conn, tid, limit=10, cursor=None).items
    assert changes[-1].after["withdraw_min"] == "10"
    assert changes[-1].actor.startswith("operator-key:")
    page.fill("#params-form input[name='p:pool_rate']", "2")
    page.click("#params-form button")
    assert "操作未完成" in page.locator(".error").inner_text()
    with read_only(svc.engine).connect() as conn:
        assert len(tenants.list_param_changes(conn, tid, limit=10, cursor=None).items) == len(
            changes
        )
    # today closed by hand; closing it again pays nothing
    page.goto(f"{served.base}/console/{shop.code}/day-close")
    page.fill("#close-form input[name=date]", today.isoformat())
    page.click("#close-form button")
    assert page.locator("#last-closed").inner_text() == today.isoformat()
    page.fill("#close-form input[name=date]", today.isoformat())
    page.click("#close-form button")
    assert "未再分红" in page.locator(".notice").inner_text()
    with read_only(svc.engine).connect() as conn:
        assert (
            dayclose.day_status(conn, dayclose.tenant_clock(conn, tid), time.time()).last_closed
            == today
        )
    assert_ledger_balanced(svc, tid)
    _no_errors(watch, 400)


def test_bad_input_in_the_other_forms(served: Served, page: Page, watch: Watch) -> None:
    """Approve's note, the after-sales refusal, the merchant's shipment: refused with a
    message, shown as text, nothing changed."""
    shop = _shop(served)
    svc = served.services
    tid = shop.tenant_id
    login(page, served.base, shop.code, shop.operator_key)
    page.goto(f"{served.base}/console/{shop.code}/withdrawals/{shop.withdrawal_id}")
    page.fill("#approve-form input[name=note]", "ok\u0007")
    page.click("#approve-form button")
    assert page.locator(".error").inner_text() == "不能包含控制字符。"
    with read_only(svc.engine).connect() as conn:
        assert wallet.get_withdrawal(conn, tid, shop.withdrawal_id).status == "requested"
    # an after-sales refusal needs a reason of at most 200 characters
    asked = svc.orders.aftersales.request_refund(
        tid,
        shop.order_ref,
        viewer=AfterSalesViewer(member="bob"),
        amount=Decimal("20.00"),
        reason="破损",
        actor="member:bob",
    )
    unlock = (
        "(() => { const i = document.querySelector('.refuse-form input[name=reason]');"
        " i.required = false; i.maxLength = 9999; })()"
    )
    page.goto(f"{served.base}/console/{shop.code}/desk")
    page.evaluate(unlock)
    page.click(".refuse-form button")
    assert page.locator(".error").inner_text() == "请填写原因。"
    page.evaluate(unlock)
    page.fill(".refuse-form input[name=reason]", "<script>alert(3)</script>" * 9)
    page.click(".refuse-form button")
    assert page.locator(".error").inner_text() == "最多 200 个字符。"
    assert svc.orders.aftersales.get(tid, asked.ref, AfterSalesViewer()).status == "requested"
    # the merchant's shipment: a tracking number with markup is refused and shown as text
    login(page, served.base, shop.code, shop.merchant_key)
    page.goto(f"{served.base}/console/{shop.code}/orders/{shop.order_ref}")
    page.fill("#ship-form input[name=carrier]", "顺丰")
    page.fill("#ship-form input[name=tracking_no]", "<img src=x onerror=alert(4)>")
    page.click("#ship-form button")
    assert "tracking_no" in page.locator(".error").inner_text()
    assert page.locator("main img").count() == 0
    order = svc.orders.merchants.get_order(tid, shop.merchant_id, shop.order_ref)
    assert order.shipment is None
    assert_ledger_balanced(svc, tid)
    _no_errors(watch, 400)
