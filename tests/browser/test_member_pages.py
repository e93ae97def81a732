"""The member's H5 pages beyond home and sell, in a phone-sized headless Chromium on SQLite and
PostgreSQL: every page loads clean in both languages; an exchange each way and a withdrawal
(requested, then cancelled) made from the pages land in the database and the ledger, once
even when posted twice; bad input in every form is refused with a message and changes nothing;
the referral QR code is segno's drawing of the referral link; one member's session cannot see
or act on another member's pages."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import segno
from console_helpers import (
    SCREENSHOTS,
    Served,
    Shop,
    Watch,
    assert_ledger_balanced,
    make_shop,
)
from playwright.sync_api import Browser, Page

from tokenmall.service import credentials, members, reads, wallet
from tokenmall.store.db import read_only
from tokenmall.web.i18n import format_money, format_points, translations
from tokenmall.web.member_more import qr_data_uri, referral_link
from tokenmall.web.session import open_session

PHONE = {"width": 390, "height": 844}
zh = translations("zh_CN").gettext
PAGES = (
    "/",
    "/wallet",
    "/exchange?dir=ep",
    "/exchange?dir=sp",
    "/withdrawals",
    "/orders",
    "/invite",
    "/board",
    "/points",
)


def _link(served: Served, shop: Shop, member: str) -> str:
    secret = served.services.settings.secret_key.get_secret_value()
    token, _ = credentials.issue_member_token(secret, shop.tenant_id, member, ttl_seconds=600)
    return f"{served.base}/m/{shop.code}/login?token={token}"


@pytest.fixture
def phone(browser: Browser, served: Served, watch: Watch) -> Iterator[Page]:
    """A phone-sized page whose requests must stay on the server and which runs no dialog."""
    context = browser.new_context(viewport=PHONE, locale="zh-CN")

    def guard(route: Any) -> None:
        url = route.request.url
        if url.startswith(served.base) or url.startswith("data:"):
            route.continue_()
        else:
            watch.outside.append(url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.on("console", lambda m: watch.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: watch.errors.append(str(exc)))
    page.on("dialog", lambda d: (watch.dialogs.append(d.message), d.dismiss()))
    yield page
    context.close()
    assert watch.outside == []
    assert watch.dialogs == [], f"a script ran: {watch.dialogs}"


def _only_refusals(watch: Watch) -> None:
    """Console errors allowed: the browser's note of a page answered 4xx on purpose."""
    bad = [e for e in watch.errors if not any(f"status of {s}" in e for s in (400, 401, 404, 409))]
    assert bad == [], bad


def _hidden(page: Page, form: str) -> dict[str, str]:
    names = page.eval_on_selector_all(f"{form} input[type=hidden]", "es => es.map(e => e.name)")
    return {n: page.eval_on_selector(f"{form} input[name={n}]", "e => e.value") for n in names}


def _state(served: Served, shop: Shop, member: str) -> tuple[Any, ...]:
    svc = served.services
    with read_only(svc.engine).connect() as conn:
        bal = wallet.balance(conn, shop.tenant_id, member)
        wds = wallet.list_withdrawals(
            conn, shop.tenant_id, member=member, limit=100, cursor=None
        ).items
    ledger = svc.store.ledger.balances(shop.tenant_id)
    return bal, tuple((w.id, w.status) for w in wds), tuple(sorted(ledger.items()))


def test_every_member_page_loads_clean_and_shows_the_services_figures(
    served: Served, phone: Page, watch: Watch, request: pytest.FixtureRequest
) -> None:
    shop = make_shop(served.services)
    svc = served.services
    tid = shop.tenant_id
    svc.orders.settle_order(tid, shop.order_ref)
    page = phone
    page.goto(_link(served, shop, "bob"))
    for lang in ("zh_CN", "en"):
        for path in (*PAGES, f"/orders/{shop.order_ref}"):
            sep = "&" if "?" in path else "?"
            response = page.goto(f"{served.base}/m/{shop.code}{path}{sep}lang={lang}")
            assert response is not None
            assert response.status == 200, path
            assert response.headers["content-security-policy"].startswith("default-src 'self'")
            assert page.locator("html").get_attribute("lang") == (
                "zh-CN" if lang == "zh_CN" else "en"
            )
    page.goto(f"{served.base}/m/{shop.code}/wallet?lang=zh_CN")
    assert page.locator("title").inner_text() == zh("SP wallet")
    with read_only(svc.engine).connect() as conn:
        bal = wallet.balance(conn, tid, "bob")
        history = reads.member_history(conn, tid, "bob", asset="SP", limit=20, cursor=None)
        profile = members.get_profile(conn, tid, "bob")
        board = reads.board(conn, tid, limit=100, cursor=None).items
    assert page.locator("#m-stable").inner_text() == format_money(bal.stable)
    assert page.locator("#history li").count() == len(history.items)
    # orders: the list and the detail
    page.goto(f"{served.base}/m/{shop.code}/orders")
    assert page.locator("#orders li").count() == 1
    page.click(f"text={shop.order_ref}")
    order = svc.orders.get_order(tid, shop.order_ref)
    assert page.locator("#order-total").inner_text() == format_money(order.total)
    assert page.locator("#order-status").inner_text() == zh("Settled")
    # the board, ranked as the service ranks, bob's line marked
    page.goto(f"{served.base}/m/{shop.code}/board")
    rows = page.locator("#board li")
    assert rows.count() == len(board) > 0
    for i, entry in enumerate(board):
        assert rows.nth(i).locator("b").inner_text() == format_points(entry.points)
    assert page.locator("#board li.me").count() == 1
    # the referral link and its QR code: segno's drawing of exactly that link
    page.goto(f"{served.base}/m/{shop.code}/invite")
    link = referral_link(served.base + "/", shop.code, profile.invite_code)
    assert page.locator("#invite-link").inner_text() == link
    src = page.locator("#invite-qr").get_attribute("src")
    assert src == qr_data_uri(link)
    assert src == segno.make(link, error="m").svg_data_uri(scale=4, border=2)
    assert src != qr_data_uri(link + "X")  # the drawing depends on the link
    assert page.evaluate("() => document.getElementById('invite-qr').naturalWidth") > 0
    if request.node.callspec.params.get("served") == "sqlite":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "member-invite.png"), full_page=True)
    # the link opens the mall's join page, with no session, showing the code
    fresh = page.context.browser.new_context()  # type: ignore[union-attr]
    try:
        anon = fresh.new_page()
        response = anon.goto(link)
        assert response is not None
        assert response.status == 200
        assert anon.locator("#join-code").inner_text() == profile.invite_code
        assert anon.locator("#join-mall").inner_text() == "测试商城"
    finally:
        fresh.close()
    assert watch.errors == []


def test_exchange_both_ways_from_the_pages(served: Served, phone: Page, watch: Watch) -> None:
    shop = make_shop(served.services)
    svc = served.services
    tid = shop.tenant_id
    svc.orders.settle_order(tid, shop.order_ref)
    page = phone
    page.goto(_link(served, shop, "bob"))
    page.click("#exchange-link")
    before, _, _ = _state(served, shop, "bob")
    page.fill("#preview-form input[name=amount]", "5.5")
    page.click("#preview-form button")
    with read_only(svc.engine).connect() as conn:
        expected = reads.sale_preview(conn, tid, Decimal("5.5"), exchange=True)
    assert expected > 0
    assert page.locator("#preview-amount").inner_text() == format_money(expected)
    form = _hidden(page, "#exchange-form")
    page.click("#exchange-form button")
    assert format_money(expected) in page.locator(".notice").inner_text()
    after, _, _ = _state(served, shop, "bob")
    assert before.points - after.points == Decimal("5.5")
    assert after.stable - before.stable == expected
    again = page.request.post(f"{served.base}/m/{shop.code}/exchange", form=form)  # double tap
    assert again.status == 200
    assert _state(served, shop, "bob")[0] == after
    assert_ledger_balanced(svc, tid)
    # SP -> EP: what the preview says arrives, once
    page.goto(f"{served.base}/m/{shop.code}/exchange?dir=sp")
    page.fill("#preview-form input[name=amount]", "1.25")
    page.click("#preview-form button")
    with read_only(svc.engine).connect() as conn:
        bought = reads.buy_preview(conn, tid, Decimal("1.25"))
    assert bought > 0
    assert page.locator("#preview-amount").inner_text() == format_points(bought)
    form = _hidden(page, "#exchange-form")
    page.click("#exchange-form button")
    assert page.locator(".notice").is_visible()
    final, _, _ = _state(served, shop, "bob")
    assert final.points - after.points == bought
    assert after.stable - final.stable == Decimal("1.25")
    page.request.post(f"{served.base}/m/{shop.code}/exchange", form=form)
    assert _state(served, shop, "bob")[0] == final
    assert_ledger_balanced(svc, tid)
    # the wallet's history shows both conversions
    page.goto(f"{served.base}/m/{shop.code}/wallet")
    history = page.locator("#history").inner_text()
    assert zh("Points exchanged") in history
    assert zh("Points bought") in history
    assert watch.errors == []


def test_a_withdrawal_requested_and_cancelled_from_the_pages(
    served: Served, phone: Page, watch: Watch
) -> None:
    shop = make_shop(served.services)
    svc = served.services
    tid = shop.tenant_id
    page = phone
    page.goto(_link(served, shop, "alice"))
    page.click("#withdrawals-link")
    with read_only(svc.engine).connect() as conn:
        params = reads.tenant_params(conn, tid)
    assert page.locator("#wd-min").inner_text() == format_money(params.withdraw_min)
    before, wds_before, _ = _state(served, shop, "alice")
    page.fill("#preview-form input[name=amount]", "2.50")
    page.fill("#preview-form input[name=account]", "oid-alice-2")
    page.click("#preview-form button")
    fee = wallet.withdrawal_fee(Decimal("2.50"), params.withdraw_fee_rate)
    assert page.locator("#preview-amount").inner_text() == format_money(Decimal("2.50") - fee)
    form = _hidden(page, "#withdraw-form")
    page.click("#withdraw-form button")
    assert page.locator(".notice").is_visible()
    after, wds_after, _ = _state(served, shop, "alice")
    assert len(wds_after) == len(wds_before) + 1
    new_id = next(w for w, _ in wds_after if w not in dict(wds_before))
    assert dict(wds_after)[new_id] == "requested"
    assert before.stable - after.stable == Decimal("2.50")
    assert after.pending_withdrawals - before.pending_withdrawals == Decimal("2.50")
    again = page.request.post(f"{served.base}/m/{shop.code}/withdrawals", form=form)
    assert again.status == 200
    assert _state(served, shop, "alice")[:2] == (after, wds_after)  # one request, not two
    assert_ledger_balanced(svc, tid)
    # the list shows its state; cancelling returns the amount
    row = page.locator(f"#wd-{new_id}")
    assert row.locator(".wd-status").inner_text() == zh("Awaiting review")
    row.locator(".cancel-form button").click()
    assert page.locator(".notice").is_visible()
    back, wds_back, _ = _state(served, shop, "alice")
    assert dict(wds_back)[new_id] == "cancelled"
    assert back.stable == before.stable
    assert page.locator(f"#wd-{new_id} .wd-status").inner_text() == zh("Cancelled")
    assert page.locator(f"#wd-{new_id} .cancel-form").count() == 0
    assert_ledger_balanced(svc, tid)
    assert watch.errors == []


BAD = [
    "-1",
    "1.123456789",
    "99999999999999999999",
    "1e3",
    "<script>alert(1)</script>",
    "0",
]


def test_bad_input_in_every_form_changes_nothing_and_is_escaped(
    served: Served, phone: Page, watch: Watch
) -> None:
    shop = make_shop(served.services)
    svc = served.services
    svc.orders.settle_order(shop.tenant_id, shop.order_ref)
    page = phone
    page.goto(_link(served, shop, "alice"))
    start = _state(served, shop, "alice")
    forms = [
        ("/exchange?dir=ep", {}),
        ("/exchange?dir=sp", {}),
        ("/withdrawals", {"account": "oid-alice"}),
    ]
    for path, extra in forms:
        for typed in BAD:
            page.goto(f"{served.base}/m/{shop.code}{path}")
            page.fill("#preview-form input[name=amount]", typed)
            for name, value in extra.items():
                page.fill(f"#preview-form input[name={name}]", value)
            page.click("#preview-form button")
            assert page.locator(".error").inner_text() != "", (path, typed)
            assert page.locator("#preview").count() == 0, (path, typed)
            assert page.locator("#preview-form input[name=amount]").input_value() == typed
    # the account field: a script, spaces, too long
    for account in ("<script>alert(1)</script>", "a b", "x" * 65, ""):
        page.goto(f"{served.base}/m/{shop.code}/withdrawals")
        page.fill("#preview-form input[name=amount]", "2")
        page.fill("#preview-form input[name=account]", account)
        page.click("#preview-form button")
        if account:
            assert page.locator(".error").inner_text() != "", account
            assert page.locator("#preview").count() == 0
    # posting straight past the preview, with a valid CSRF token: refused the same way
    form = {"csrf": _preview_csrf(page, served, shop)}
    for path, fields in [
        ("/exchange", {"dir": "ep", "amount": "-5"}),
        ("/exchange", {"dir": "sp", "amount": "1.001"}),
        ("/exchange", {"dir": "ep", "amount": "100000000000000"}),
        ("/withdrawals", {"amount": "<b>1</b>", "account": "oid-alice"}),
        ("/withdrawals", {"amount": "2", "account": "<script>alert(1)</script>"}),
        ("/withdrawals", {"amount": "999999999", "account": "oid-alice"}),
    ]:
        answer = page.request.post(
            f"{served.base}/m/{shop.code}{path}",
            form={**form, "key": "m-0123456789abcdef", **fields},
        )
        assert answer.status in (400, 409), (path, fields)
        assert "<script>alert" not in answer.text()
    # and without the CSRF token: 403
    answer = page.request.post(
        f"{served.base}/m/{shop.code}/exchange",
        form={"dir": "ep", "amount": "1", "key": "m-0123456789abcdef"},
    )
    assert answer.status == 403
    assert _state(served, shop, "alice") == start
    _only_refusals(watch)


def _preview_csrf(page: Page, served: Served, shop: Shop) -> str:
    """The CSRF token of the page's member session (what its forms carry)."""
    cookie = next(c for c in page.context.cookies() if c["name"] == "tm_member")
    secret = served.services.settings.secret_key.get_secret_value()
    session = open_session(secret, cookie["value"])
    assert session is not None
    assert session.tenant == shop.code
    return session.csrf


def test_a_member_cannot_see_or_act_on_another_members_pages(
    served: Served, phone: Page, watch: Watch
) -> None:
    shop = make_shop(served.services)
    other = make_shop(served.services)
    page = phone
    page.goto(_link(served, shop, "bob"))
    csrf = _preview_csrf(page, served, shop)
    # alice's withdrawal: bob cannot cancel it; bob's order: alice cannot read it
    start = _state(served, shop, "alice")
    answer = page.request.post(
        f"{served.base}/m/{shop.code}/withdrawals/{shop.withdrawal_id}/cancel",
        form={"csrf": csrf},
    )
    assert answer.status == 404
    assert _state(served, shop, "alice") == start
    for path in PAGES:  # another mall's pages
        response = page.goto(f"{served.base}/m/{other.code}{path}")
        assert response is not None
        assert response.status == 404, path
    page.goto(_link(served, shop, "alice"))
    response = page.goto(f"{served.base}/m/{shop.code}/orders/{shop.order_ref}")
    assert response is not None
    assert response.status == 404
    assert shop.order_ref not in page.content()
    page.goto(f"{served.base}/m/{shop.code}/orders")
    assert shop.order_ref not in page.locator("body").inner_text()
    # without a session every page is refused
    page.context.clear_cookies()
    for path in PAGES:
        response = page.goto(f"{served.base}/m/{shop.code}{path}")
        assert response is not None
        assert response.status == 401, path
    _only_refusals(watch)
