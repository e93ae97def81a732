"""The member's EP history and the paged withdrawal lists, in headless Chromium on SQLite and
PostgreSQL: the EP page shows, page after page, exactly the JSON API's points history (each
movement named in the page's language, with the price at the time); the member's withdrawals
and the console's review list page through every withdrawal on the list's own cursor, newest
or oldest first, filtered by member; a bad cursor or filter is refused with a message and
shown as text; times are the mall's wall clock in its own time zone."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from console_helpers import Served, Shop, Watch, login, make_shop
from playwright.sync_api import Page

from tokenmall.domain.economy import Purchase, Sell
from tokenmall.service import credentials, reads, wallet
from tokenmall.store.db import read_only
from tokenmall.web.i18n import format_datetime, format_points, format_price, translations
from tokenmall.web.member_points import POINTS_LABELS

zh = translations("zh_CN").gettext
MANY = 55  # more than a console page (50) and two member pages (20)


def _token(served: Served, shop: Shop, member: str) -> str:
    secret = served.services.settings.secret_key.get_secret_value()
    token, _ = credentials.issue_member_token(secret, shop.tenant_id, member, ttl_seconds=600)
    return token


def _open_as(page: Page, served: Served, shop: Shop, member: str) -> str:
    token = _token(served, shop, member)
    page.goto(f"{served.base}/m/{shop.code}/login?token={token}")
    return token


def _api_pages(page: Page, url: str, token: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        got = page.request.get(
            url + (f"?cursor={cursor}" if cursor else ""),
            headers={"Authorization": f"Bearer {token}"},
        )
        assert got.status == 200, got.text()
        body = got.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def _no_errors(watch: Watch, *allowed: int) -> None:
    bad = [e for e in watch.errors if not any(f"status of {s}" in e for s in allowed)]
    assert bad == [], bad


def test_the_ep_history_page_is_the_apis_points_history(
    served: Served, page: Page, watch: Watch
) -> None:
    shop = make_shop(served.services)
    svc = served.services
    tid = shop.tenant_id
    svc.orders.settle_order(tid, shop.order_ref)  # bob's points, and alice's for referring him
    buys = [(f"h:{i}", Purchase(f"h-{i}", "alice", Decimal(10))) for i in range(22)]
    out = svc.store.ledger.submit(tid, [*buys, ("h:sell", Sell("alice", Decimal("1.5")))])
    assert all(o.status == "applied" for o in out), out
    token = _open_as(page, served, shop, "alice")
    page.click("#points-link")
    assert page.url == f"{served.base}/m/{shop.code}/points"
    assert page.locator("title").inner_text() == zh("EP history")
    with read_only(svc.engine).connect() as conn:
        held = reads.holdings(conn, tid, "alice")
    assert page.locator("#m-points").inner_text() == format_points(held.points)
    api = _api_pages(
        page, f"{served.base}/v1/tenants/{shop.code}/members/alice/points/history", token
    )
    shown: list[dict[str, str]] = []
    while True:
        shown += page.eval_on_selector_all(
            "#points-history li",
            """rows => rows.map(li => ({
                seq: li.dataset.seq,
                what: li.querySelector('span').firstChild.textContent.trim(),
                price: li.querySelector('.move-price').textContent,
                amount: li.querySelector('b').textContent,
            }))""",
        )
        if page.locator("#points-next").count() == 0:
            break
        page.click("#points-next")
        assert page.locator("#points-first").count() == 1
    assert len(shown) == len(api) > 20  # more than one page
    for row, item in zip(shown, api, strict=True):
        assert int(row["seq"]) == item["seq"]
        assert row["what"] == zh(POINTS_LABELS[item["category"]])
        sign = "+" if item["direction"] == "in" else "-"
        assert row["amount"] == sign + format_points(Decimal(item["amount"]))
        assert row["price"] == format_price(item["price_before"])
    kinds = {item["category"] for item in api}
    assert {"purchase_points", "referral_points", "sold_points"} <= kinds
    # in English, and back to the first page
    page.click("#points-first")
    page.goto(f"{served.base}/m/{shop.code}/points?lang=en")
    assert page.locator("#points-history li").first.inner_text().startswith("Sold to the pool")
    # a cursor that is not one the list handed out: a message, not a crash
    response = page.goto(f"{served.base}/m/{shop.code}/points?lang=zh_CN&cursor=%3Cscript%3E")
    assert response is not None
    assert response.status == 400
    assert page.locator(".error").inner_text() == zh("This page of the history does not exist.")
    # another mall's page, and no session: refused
    other = make_shop(svc)
    response = page.goto(f"{served.base}/m/{other.code}/points")
    assert response is not None
    assert response.status == 404
    page.context.clear_cookies()
    response = page.goto(f"{served.base}/m/{shop.code}/points")
    assert response is not None
    assert response.status == 401
    _no_errors(watch, 400, 401, 404)


def _many_withdrawals(served: Served, shop: Shop) -> list[str]:
    """alice buys and sells enough for MANY more withdrawals of ¥1.00; all her ids, oldest
    first."""
    svc = served.services
    tid = shop.tenant_id
    out = svc.store.ledger.submit(
        tid,
        [
            ("many:buy", Purchase("many", "alice", Decimal(1000))),
            ("many:sell", Sell("alice", Decimal(100))),
        ],
    )
    assert all(o.status == "applied" for o in out), out
    for i in range(MANY):
        wallet.request_withdrawal(
            svc.store.ledger, tid, "alice", amount=Decimal("1.00"), account="oid-a", key=f"m{i}"
        )
    with read_only(svc.engine).connect() as conn:
        found = wallet.list_withdrawals(conn, tid, member="alice", limit=500, cursor=None)
    assert len(found.items) == MANY + 1
    return [w.id for w in found.items]


def test_withdrawal_lists_page_through_every_withdrawal(
    served: Served, page: Page, watch: Watch
) -> None:
    shop = make_shop(served.services)
    svc = served.services
    ids = _many_withdrawals(served, shop)
    newest = ids[::-1]
    # the member's page: newest first, twenty a page
    _open_as(page, served, shop, "alice")
    page.goto(f"{served.base}/m/{shop.code}/withdrawals")
    pages: list[list[str]] = []
    while True:
        pages.append(
            page.eval_on_selector_all("#withdrawals > li", "ls => ls.map(l => l.id.slice(3))")
        )
        if page.locator("#withdrawals-next").count() == 0:
            break
        page.click("#withdrawals-next")
    assert pages == [newest[0:20], newest[20:40], newest[40:]]
    # the oldest, on the last page, is still cancellable from there
    page.locator(f"#wd-{ids[0]} .cancel-form button").click()
    assert page.locator(".notice").is_visible()
    with read_only(svc.engine).connect() as conn:
        assert wallet.get_withdrawal(conn, shop.tenant_id, ids[0]).status == "cancelled"
    response = page.goto(f"{served.base}/m/{shop.code}/withdrawals?cursor=garbage")
    assert response is not None
    assert response.status == 400
    assert page.locator(".error").inner_text() == zh("This page of the list does not exist.")
    # the console's review queue: oldest first, fifty a page; by member; newest first
    login(page, served.base, shop.code, shop.operator_key)
    page.goto(f"{served.base}/console/{shop.code}/withdrawals")
    rows = "#withdrawals tbody tr td:first-child a"
    first = page.eval_on_selector_all(rows, "as => as.map(a => a.textContent)")
    assert first == ids[1:51]  # ids[0] was cancelled: not in the queue
    page.click("#withdrawals-next")
    assert page.eval_on_selector_all(rows, "as => as.map(a => a.textContent)") == ids[51:]
    page.click("#withdrawals-first")
    assert page.eval_on_selector_all(rows, "as => as.map(a => a.textContent)") == first
    page.select_option("#withdrawal-filters select[name=status]", "all")
    page.fill("#withdrawal-filters input[name=member]", "alice")
    page.select_option("#withdrawal-filters select[name=order]", "newest")
    page.click("#withdrawal-filters button")
    assert page.eval_on_selector_all(rows, "as => as.map(a => a.textContent)") == newest[:50]
    page.click("#withdrawals-next")
    assert page.eval_on_selector_all(rows, "as => as.map(a => a.textContent)") == newest[50:]
    assert "member=alice" in page.url
    page.fill("#withdrawal-filters input[name=member]", "bob")
    page.click("#withdrawal-filters button")
    assert page.locator(rows).count() == 0
    # one withdrawal: the member's newest twenty beside it, and a link to all of them
    page.goto(f"{served.base}/console/{shop.code}/withdrawals/{ids[-1]}")
    page.click("#earlier-all")
    assert page.eval_on_selector_all(rows, "as => as.map(a => a.textContent)") == newest[:50]
    # a member filter with markup is text; a too long one is refused with a message
    page.goto(f"{served.base}/console/{shop.code}/withdrawals?member=%3Cb%3Ex%3C%2Fb%3E")
    assert page.locator("#withdrawal-filters input[name=member]").input_value() == "<b>x</b>"
    assert page.locator("main b").count() == 0
    response = page.goto(f"{served.base}/console/{shop.code}/withdrawals?member={'x' * 65}")
    assert response is not None
    assert response.status == 400
    assert page.locator(".error").inner_text() == "最多 64 个字符。"
    response = page.goto(f"{served.base}/console/{shop.code}/withdrawals?cursor=%00")
    assert response is not None
    assert response.status == 400
    assert zh("Not done: %(reason)s").split("%")[0] in page.locator(".error").inner_text()
    _no_errors(watch, 400)


def test_times_are_the_malls_wall_clock_in_its_time_zone(
    served: Served, page: Page, watch: Watch
) -> None:
    """A mall in Los Angeles: its pages show times 15 or 16 hours behind Shanghai's."""
    shop = make_shop(served.services, timezone="America/Los_Angeles")
    svc = served.services
    with read_only(svc.engine).connect() as conn:
        wd = wallet.get_withdrawal(conn, shop.tenant_id, shop.withdrawal_id)
        moves = reads.points_history(conn, shop.tenant_id, "alice", limit=1, cursor=None).items
    here = ZoneInfo("America/Los_Angeles")
    assert format_datetime(wd.requested_at, here) != format_datetime(
        wd.requested_at, ZoneInfo("Asia/Shanghai")
    )
    login(page, served.base, shop.code, shop.operator_key)
    page.goto(f"{served.base}/console/{shop.code}/withdrawals")
    row = page.locator("#withdrawals tbody tr").first.inner_text()
    assert format_datetime(wd.requested_at, here) in row
    _open_as(page, served, shop, "alice")
    page.goto(f"{served.base}/m/{shop.code}/withdrawals")
    assert format_datetime(wd.requested_at, here) in page.locator(f"#wd-{wd.id}").inner_text()
    page.goto(f"{served.base}/m/{shop.code}/points")
    first = page.locator("#points-history li").first.inner_text()
    assert format_datetime(moves[0].entry.at, here) in first
    _no_errors(watch)
