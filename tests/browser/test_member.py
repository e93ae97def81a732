"""The member's H5 home in a phone-sized headless Chromium (390 x 844), on SQLite and
PostgreSQL: a signed link opens a session, the figures are the services', another mall's page
is 404, a bad link is refused, and the console's and the member's sessions never stand in for
each other."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from console_helpers import SCREENSHOTS, Served, Watch, assert_ledger_balanced, login, make_shop
from playwright.sync_api import Browser, Page

from tokenmall.service import credentials, reads, wallet
from tokenmall.store.db import read_only
from tokenmall.web.i18n import format_money, format_points, format_price, translations

PHONE = {"width": 390, "height": 844}
POINTS_FORMAT = "Points are a positive number with at most 8 decimal places."
zh = translations("zh_CN").gettext


def _link(served: Served, tenant: str, tenant_id: int, member: str, ttl: int = 600) -> str:
    secret = served.services.settings.secret_key.get_secret_value()
    token, _ = credentials.issue_member_token(secret, tenant_id, member, ttl_seconds=ttl)
    return f"{served.base}/m/{tenant}/login?token={token}"


def test_member_home_from_a_signed_link(
    served: Served, browser: Browser, watch: Watch, request: pytest.FixtureRequest
) -> None:
    shop = make_shop(served.services)
    other = make_shop(served.services)
    svc = served.services
    svc.orders.settle_order(shop.tenant_id, shop.order_ref)  # bob's EP is granted
    context = browser.new_context(viewport=PHONE, locale="zh-CN", device_scale_factor=2)
    try:
        context.route(
            "**/*",
            lambda route: (
                route.continue_()
                if route.request.url.startswith(served.base)
                else (watch.outside.append(route.request.url), route.abort())
            ),
        )
        page = context.new_page()
        page.on("console", lambda m: watch.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: watch.errors.append(str(exc)))
        page.goto(_link(served, shop.code, shop.tenant_id, "bob"))
        assert page.url == f"{served.base}/m/{shop.code}/"  # the token left the address bar
        with read_only(svc.engine).connect() as conn:
            held = reads.holdings(conn, shop.tenant_id, "bob")
        assert held.points > 0
        assert page.locator("#m-points").inner_text() == format_points(held.points)
        assert page.locator("#m-value").inner_text() == format_money(held.value)
        assert page.locator("#m-price").inner_text() == format_price(held.price)
        assert page.locator("#m-quota").inner_text() == format_money(held.quota_remaining)
        page.wait_for_function(
            "() => window.echarts &&"
            " echarts.getInstanceByDom(document.getElementById('chart-price'))"
        )
        price = page.evaluate(
            "() => echarts.getInstanceByDom(document.getElementById('chart-price'))"
            ".getOption().series[0].data"
        )
        assert price[-1] == held.price
        if request.node.callspec.params.get("served") == "sqlite":
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "member-home.png"), full_page=True)
        assert watch.errors == []
        # another mall's page, a bad link, an expired one
        response = page.goto(f"{served.base}/m/{other.code}/")
        assert response is not None
        assert response.status == 404
        for link in (
            _link(served, other.code, shop.tenant_id, "bob"),  # a token of another mall
            _link(served, shop.code, shop.tenant_id, "nobody"),
            f"{served.base}/m/{shop.code}/login?token=tmt_forged.sig",
        ):
            response = page.goto(link)
            assert response is not None
            assert response.status == 401, link
        # the member's session does not open the console, nor the console's the member pages
        response = page.goto(f"{served.base}/console/{shop.code}/")
        assert page.url == f"{served.base}/console/login"
        cookie = next(c for c in context.cookies() if c["name"] == "tm_member")
        context.add_cookies(
            [{"name": "tm_console", "value": cookie["value"], "url": served.base + "/console"}]
        )
        page.goto(f"{served.base}/console/{shop.code}/")
        assert page.url == f"{served.base}/console/login"
    finally:
        context.close()
    assert watch.outside == []


def test_a_console_session_is_not_a_member_session(served: Served, page: Page) -> None:
    shop = make_shop(served.services)
    login(page, served.base, shop.code, shop.operator_key)
    cookie = next(c for c in page.context.cookies() if c["name"] == "tm_console")
    page.context.add_cookies(
        [{"name": "tm_member", "value": cookie["value"], "url": served.base + "/m"}]
    )
    response = page.goto(f"{served.base}/m/{shop.code}/")
    assert response is not None
    assert response.status == 401


def _member_page(browser: Browser, watch: Watch, served: Served) -> tuple[Any, Page]:
    context = browser.new_context(viewport=PHONE, locale="zh-CN")

    def guard(route: Any) -> None:
        if route.request.url.startswith(served.base):
            route.continue_()
        else:
            watch.outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.on("console", lambda m: watch.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: watch.errors.append(str(exc)))
    page.on("dialog", lambda d: (watch.dialogs.append(d.message), d.dismiss()))
    return context, page


def test_a_member_sells_points_with_an_exact_preview(
    served: Served, browser: Browser, watch: Watch
) -> None:
    shop = make_shop(served.services)
    svc = served.services
    tid = shop.tenant_id
    svc.orders.settle_order(tid, shop.order_ref)
    context, page = _member_page(browser, watch, served)
    try:
        page.goto(_link(served, shop.code, tid, "bob"))
        page.click("#sell-link")
        with read_only(svc.engine).connect() as conn:
            held_before = reads.holdings(conn, tid, "bob")
            sp_before = wallet.balance(conn, tid, "bob").stable
        # bad input: refused with a message, nothing sold
        for typed, message in [
            ("-1", POINTS_FORMAT),
            ("0", "The number of points must be above zero."),
            ("1.123456789", POINTS_FORMAT),
            ("99999999999", "You hold fewer points than that."),
            ("<script>alert(1)</script>", POINTS_FORMAT),
        ]:
            page.fill("#preview-form input[name=points]", typed)
            page.click("#preview-form button")
            assert page.locator(".error").inner_text() == zh(message), typed
            assert page.locator("#sell-form").count() == 0
        # the preview, then the sale: what arrives is what the preview said
        page.fill("#preview-form input[name=points]", "10.5")
        page.click("#preview-form button")
        shown = page.locator("#preview-amount").inner_text()
        with read_only(svc.engine).connect() as conn:
            expected = reads.sale_preview(conn, tid, Decimal("10.5"), exchange=False)
        assert shown == format_money(expected)
        assert expected > 0
        form = {
            name: page.eval_on_selector(f"#sell-form input[name={name}]", "e => e.value")
            for name in ("csrf", "key", "points")
        }
        page.click("#sell-form button")
        assert page.locator(".notice").is_visible()
        with read_only(svc.engine).connect() as conn:
            held_after = reads.holdings(conn, tid, "bob")
            sp_after = wallet.balance(conn, tid, "bob").stable
        assert held_before.points - held_after.points == Decimal("10.5")
        assert sp_after - sp_before == expected
        assert format_money(expected) in page.locator(".notice").inner_text()
        # the same confirmation posted again (a double tap): sold once
        again = page.request.post(f"{served.base}/m/{shop.code}/sell", form=form)
        assert again.status == 200
        with read_only(svc.engine).connect() as conn:
            assert reads.holdings(conn, tid, "bob").points == held_after.points
        assert_ledger_balanced(svc, tid)
        assert watch.errors == [] or all("status of 400" in e for e in watch.errors)
    finally:
        context.close()
    assert watch.outside == []
    assert watch.dialogs == []
