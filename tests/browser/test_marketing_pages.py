"""The marketing models' pages in a real browser, on SQLite and PostgreSQL: a model switched
on from the console pays its reward when an order settles, and the console and the member's
"my rewards" page show what the services and the ledger hold; the compliance guard's refusal
is shown with its rule and changes nothing; bad parameters are refused, shown and escaped;
a merchant cannot reach the pages."""

from __future__ import annotations

import re
import time
from decimal import Decimal
from typing import Any

from console_helpers import Served, Shop, Watch, assert_ledger_balanced, login, make_shop
from playwright.sync_api import Browser, Page

from tokenmall.service import credentials, dayclose, marketing
from tokenmall.store.db import read_only
from tokenmall.web.i18n import format_datetime, format_money, translations

PAGES = ("/models", "/rewards", "/models/chain21/moves")
zh = translations("zh_CN").gettext


def _state(served: Served, shop: Shop) -> tuple[dict[str, Any], int]:
    """The models on (with their parameters) and the number of audited changes."""
    with read_only(served.services.engine).connect() as conn:
        config = marketing.get_config(conn, shop.tenant_id)
        changes = marketing.list_changes(conn, shop.tenant_id, limit=100, cursor=None).items
    return config.models, len(changes)


def _errors(watch: Watch, *allowed: int) -> list[str]:
    """Console errors other than the answers the test provoked (400: a refused form)."""
    return [e for e in watch.errors if not any(f"status of {s} " in e for s in (400, *allowed))]


def test_a_model_switched_on_from_the_page_pays_and_shows_everywhere(
    served: Served, page: Page, browser: Browser, watch: Watch
) -> None:
    shop = make_shop(served.services)
    svc = served.services
    tid = shop.tenant_id
    login(page, served.base, shop.code, shop.operator_key)
    for path in PAGES:
        response = page.goto(f"{served.base}/console/{shop.code}{path}")
        assert response is not None
        assert response.status == 200, path
    page.goto(f"{served.base}/console/{shop.code}/models?lang=en")
    assert page.locator("h1").inner_text() == "Marketing models"
    page.goto(f"{served.base}/console/{shop.code}/models?lang=zh_CN")
    assert page.locator("#model-distribution .state").inner_text() == zh("off")
    # distribution on, with rewards frozen for 7 days
    page.check("input[name='on:distribution']")
    page.fill("input[name='p:distribution:freeze_days']", "7")
    page.fill("#models-form input[name=reason]", "春季活动")
    page.click("#models-form button[type=submit]")
    assert page.locator(".notice").inner_text() == zh("Saved. Models on: %(names)s.") % {
        "names": "distribution"
    }
    models, changes = _state(served, shop)
    assert models == {"distribution": {"ratios": ["0.10", "0.05"], "freeze_days": 7}}
    assert changes == 1
    assert page.locator("#model-distribution .state").inner_text() == zh("on")
    audit = page.locator("#model-changes tbody tr").first.inner_text()
    assert "春季活动" in audit
    assert "operator-key:" in audit
    # bob's order (2 x 100.00) settles: alice, his referrer, gets 10% = 20.00, frozen 7 days
    svc.orders.settle_order(tid, shop.order_ref)
    with read_only(svc.engine).connect() as conn:
        rewards = marketing.list_rewards(conn, tid, limit=10, cursor=None).items
        totals = marketing.tenant_totals(conn, tid, time.time())
        zone = dayclose.tenant_clock(conn, tid).zone
    assert [(r.member, r.model, r.amount) for r in rewards] == [
        ("alice", "distribution", Decimal("20.00"))
    ]
    (reward,) = rewards
    assert reward.withdrawable_at is not None
    assert reward.withdrawable_at > time.time() + 6 * 86400
    assert_ledger_balanced(svc, tid)
    page.goto(f"{served.base}/console/{shop.code}/rewards")
    (total,) = totals
    assert page.locator("#total-distribution .net").inner_text() == format_money(total.net)
    assert page.locator("#total-distribution .frozen").inner_text() == format_money(total.frozen)
    assert page.locator("#total-net").inner_text() == "¥20.00"
    row = page.locator("#rewards tbody tr").first.inner_text()
    assert "alice" in row
    assert shop.order_ref in row
    assert format_money(reward.amount) in row
    assert format_datetime(reward.withdrawable_at, zone) in row
    # the filters (htmx swaps the list in place): bob got nothing; alice's by model and order
    page.fill("#reward-filters input[name=member]", "bob")
    page.click("#reward-filters button")
    page.wait_for_url(re.compile(r"member=bob"))
    assert page.locator("#rewards tbody tr").inner_text() == zh("No rewards match.")
    page.fill("#reward-filters input[name=member]", "alice")
    page.select_option("#reward-filters select[name=model]", "distribution")
    page.fill("#reward-filters input[name=order]", shop.order_ref)
    page.click("#reward-filters button")
    page.wait_for_function(
        "(ref) => document.querySelector('#rewards').innerText.includes(ref)", arg=shop.order_ref
    )
    assert page.locator("#rewards tbody tr").count() == 1
    # a filter with markup matches nothing and is shown as typed, as text
    page.goto(f"{served.base}/console/{shop.code}/rewards?member=%3Cscript%3Ealert(1)%3C/script%3E")
    assert page.locator("#rewards tbody tr").inner_text() == zh("No rewards match.")
    assert page.locator("#reward-filters input[name=member]").input_value() == (
        "<script>alert(1)</script>"
    )
    assert page.locator("script:not([src])").count() == 0
    assert _errors(watch) == []
    # alice's "my rewards" page on a phone
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN")
    try:
        context.route(
            "**/*",
            lambda route: (
                route.continue_()
                if route.request.url.startswith(served.base)
                else (watch.outside.append(route.request.url), route.abort())
            ),
        )
        phone = context.new_page()
        phone.on("console", lambda m: watch.errors.append(m.text) if m.type == "error" else None)
        phone.on("pageerror", lambda exc: watch.errors.append(str(exc)))
        phone.on("dialog", lambda d: (watch.dialogs.append(d.message), d.dismiss()))
        secret = svc.settings.secret_key.get_secret_value()
        token, _ = credentials.issue_member_token(secret, tid, "alice", ttl_seconds=600)
        phone.goto(f"{served.base}/m/{shop.code}/login?token={token}")
        phone.click("#rewards-link")
        assert phone.url == f"{served.base}/m/{shop.code}/rewards"
        with read_only(svc.engine).connect() as conn:
            (mine,) = marketing.member_totals(conn, tid, "alice", time.time())
            frozen = marketing.frozen_sp(conn, tid, "alice", time.time())
        assert mine.net == Decimal("20.00")
        assert phone.locator("#m-rewards-net").inner_text() == format_money(mine.net)
        assert phone.locator("#m-rewards-frozen").inner_text() == format_money(frozen)
        assert phone.locator("#m-total-distribution .frozen").inner_text() == "¥20.00"
        assert phone.locator("#m-frozen .until").inner_text() == format_datetime(
            reward.withdrawable_at, zone
        )
        # bob's page: nothing from the models
        token, _ = credentials.issue_member_token(secret, tid, "bob", ttl_seconds=600)
        phone.goto(f"{served.base}/m/{shop.code}/login?token={token}")
        phone.goto(f"{served.base}/m/{shop.code}/rewards")
        assert phone.locator("#m-rewards-net").inner_text() == "¥0.00"
        # another mall's page: as if it did not exist
        other = make_shop(svc)
        response = phone.goto(f"{served.base}/m/{other.code}/rewards")
        assert response is not None
        assert response.status == 404
    finally:
        context.close()
    assert _errors(watch, 404) == []


NUMBER = "%(field)s: a number such as 0.05, at most %(places)s decimal places."
WHOLE = "%(field)s: a whole number of at most %(digits)s digits."
BAD = [
    ("p:distribution:ratios", "-0.1", NUMBER),
    ("p:distribution:ratios", "0.1234567", NUMBER),
    ("p:distribution:ratios", "99999999999999999999", NUMBER),
    ("p:distribution:ratios", "<script>alert(1)</script>", NUMBER),
    ("p:distribution:freeze_days", "1e3", WHOLE),
    ("p:distribution:ratios", "5", "service"),  # a ratio above 1: the service's own words
    ("p:distribution:freeze_days", "99999", "service"),  # more than ten years
    ("p:distribution:ratios", "0.6, 0.6", "service"),  # two levels adding up to more than 1
]


def test_the_guard_and_bad_input_change_nothing(served: Served, page: Page, watch: Watch) -> None:
    shop = make_shop(served.services)
    svc = served.services
    url = f"{served.base}/console/{shop.code}/models"
    # a merchant: none of these pages
    login(page, served.base, shop.code, shop.merchant_key)
    for path in PAGES:
        response = page.goto(f"{served.base}/console/{shop.code}{path}")
        assert response is not None
        assert response.status == 403, path
    assert page.request.post(url, form={"csrf": "x", "on:rebate": "1"}).status == 403
    login(page, served.base, shop.code, shop.operator_key)
    assert page.request.post(url, form={"csrf": "forged", "on:rebate": "1"}).status == 403
    # the guard: chain21 without an override is refused, naming the rule; the form keeps it
    page.goto(url)
    page.check("input[name='on:chain21']")
    page.click("#models-form button[type=submit]")
    error = page.locator(".error").inner_text()
    assert error.startswith("操作未完成")
    assert "rule max_levels" in error
    assert page.locator("input[name='on:chain21']").is_checked()
    assert _state(served, shop) == ({}, 0)
    # bad parameters: a message on the page, nothing changed, nothing run
    for name, typed, message in BAD:
        page.goto(url)
        page.check("input[name='on:distribution']")
        page.fill(f"input[name='{name}']", typed)
        page.click("#models-form button[type=submit]")
        shown = page.locator(".error").inner_text()
        if message == "service":
            assert shown.startswith("操作未完成"), typed
            assert "distribution" in shown, typed
        else:
            param = name.rpartition(":")[2]
            assert shown == zh(message) % {"field": param, "places": 6, "digits": 9}, typed
        assert page.locator(f"input[name='{name}']").input_value() == typed  # kept, as text
        assert page.locator("script:not([src])").count() == 0
        assert _state(served, shop) == ({}, 0), typed
    # an override with markup: accepted, recorded and shown as text
    override = "<script>alert(2)</script> 已获法务批准"
    page.goto(url)
    page.check("input[name='on:chain21']")
    page.fill("#models-form input[name=override]", override)
    page.click("#models-form button[type=submit]")
    assert page.locator(".notice").is_visible()
    assert page.locator("#override-reason").inner_text() == override
    assert page.locator("script:not([src])").count() == 0
    models, changes = _state(served, shop)
    assert list(models) == ["chain21"]
    assert changes == 1
    # chain21 runs on bob's order: its moves page shows what the service logged
    svc.orders.settle_order(shop.tenant_id, shop.order_ref)
    with read_only(svc.engine).connect() as conn:
        moves = marketing.list_moves(conn, shop.tenant_id, limit=100, cursor=None).items
    assert moves
    page.goto(f"{url}/chain21/moves")
    assert page.locator("#moves tbody tr").count() == len(moves)
    first = page.locator("#moves tbody tr").first.inner_text()
    assert moves[0].member in first
    assert moves[0].order in first
    assert_ledger_balanced(svc, shop.tenant_id)
    assert _errors(watch, 403) == []
