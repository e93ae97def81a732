"""Bad input in the forms the other browser tests leave out, in headless Chromium on SQLite
and PostgreSQL: the parameters form (a negative number, too many decimals, a huge number, an
exponent, a script tag, a broken list) and the login form (a script tag as the mall's code)
each give a message on the page, change nothing, and show what was typed as text."""

from __future__ import annotations

from console_helpers import Served, Watch, login, make_shop
from playwright.sync_api import Page

from tokenmall.service import reads, tenants
from tokenmall.store.db import read_only
from tokenmall.web.i18n import translations

zh = translations("zh_CN").gettext
NUMBER = "%(name)s: a number with at most 12 digits before the point and 8 after."
BAD = [
    ("withdraw_min", "-1", NUMBER),
    ("withdraw_min", "1.123456789", NUMBER),
    ("initial_price", "99999999999999999999", NUMBER),
    ("board_size", "1e3", NUMBER),
    ("pool_rate", "<script>alert(1)</script>", NUMBER),
    ("level_thresholds", "0,<b>10</b>", "%(name)s: numbers separated by commas."),
]


def test_the_parameters_form_refuses_bad_numbers(served: Served, page: Page, watch: Watch) -> None:
    shop = make_shop(served.services)
    svc = served.services
    tid = shop.tenant_id
    with read_only(svc.engine).connect() as conn:
        params = reads.tenant_params(conn, tid)
        changes = len(tenants.list_param_changes(conn, tid, limit=100, cursor=None).items)
    login(page, served.base, shop.code, shop.operator_key)
    for name, typed, message in BAD:
        page.goto(f"{served.base}/console/{shop.code}/params")
        page.fill(f"#params-form input[name='p:{name}']", typed)
        page.click("#params-form button")
        assert page.locator(".error").inner_text() == zh(message) % {"name": name}, typed
        assert page.locator("main script, main b").count() == 0
    # a number the page accepts but the service refuses: its reason, nothing changed
    page.fill("#params-form input[name='p:sell_fee']", "1.5")
    page.click("#params-form button")
    assert "sell_fee" in page.locator(".error").inner_text()
    with read_only(svc.engine).connect() as conn:
        assert reads.tenant_params(conn, tid) == params
        assert len(tenants.list_param_changes(conn, tid, limit=100, cursor=None).items) == changes
    # and a good one goes through
    page.fill("#params-form input[name='p:withdraw_min']", "2.5")
    page.click("#params-form button")
    assert page.locator(".notice").is_visible()
    with read_only(svc.engine).connect() as conn:
        assert str(reads.tenant_params(conn, tid).withdraw_min) == "2.5"
    bad = [e for e in watch.errors if "status of 400" not in e]
    assert bad == [], bad


def test_the_login_form_shows_a_script_as_text(served: Served, page: Page, watch: Watch) -> None:
    shop = make_shop(served.services)
    page.goto(f"{served.base}/console/login")
    page.fill("input[name=tenant]", "<script>alert(1)</script>")
    page.fill("input[name=key]", shop.operator_key)
    page.click("#login-form button")
    assert page.locator(".error").inner_text() == "商城代码或密钥错误。"
    assert page.locator("main script").count() == 0
    assert page.url == f"{served.base}/console/login"
    page.goto(f"{served.base}/console/{shop.code}/")
    assert page.url == f"{served.base}/console/login"  # no session was made
    bad = [e for e in watch.errors if "status of 401" not in e and "status of 400" not in e]
    assert bad == [], bad
