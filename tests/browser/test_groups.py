"""Group buys in a phone-sized Chromium, on SQLite and PostgreSQL: a member joins a group from
its shared link and pays through the sandbox, a full group refuses one more with the service's
message and no place, the public draw page shows the winners anyone recomputes from the
record, and the operator's page lists the offer and the group."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from console_helpers import Served, Watch, assert_ledger_balanced, login, make_shop
from playwright.sync_api import Browser, Page
from sqlalchemy import select

from tokenmall.domain import draw
from tokenmall.service import credentials, members
from tokenmall.store import schema as s
from tokenmall.store.db import read_only
from tokenmall.web.i18n import format_money, translations

PHONE = {"width": 390, "height": 844}
zh = translations("zh_CN").gettext


def _link(served: Served, tenant: str, tenant_id: int, member: str) -> str:
    secret = served.services.settings.secret_key.get_secret_value()
    token, _ = credentials.issue_member_token(secret, tenant_id, member, ttl_seconds=600)
    return f"{served.base}/m/{tenant}/login?token={token}"


def _phone(browser: Browser, watch: Watch, served: Served) -> tuple[Any, Page]:
    context = browser.new_context(viewport=PHONE, locale="zh-CN")

    def guard(route: Any) -> None:
        if route.request.url.startswith(served.base):
            route.continue_()
        else:
            watch.outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    # a refusal is answered 409 (the browser logs the status as an error): anything else fails
    page.on(
        "console",
        lambda m: (
            watch.errors.append(m.text)
            if m.type == "error" and "status of 409" not in m.text
            else None
        ),
    )
    page.on("pageerror", lambda exc: watch.errors.append(str(exc)))
    page.on("dialog", lambda d: (watch.dialogs.append(d.message), d.dismiss()))
    return context, page


def _places(served: Served, tenant_id: int, public_id: str) -> dict[str, str]:
    """member -> status of their latest place, read from the tables themselves."""
    g, p = s.group_buys.c, s.group_places.c
    with read_only(served.services.engine).connect() as conn:
        gid = conn.execute(
            select(g.id).where(g.tenant_id == tenant_id, g.public_id == public_id)
        ).scalar_one()
        found = conn.execute(
            select(p.member, p.status).where(p.tenant_id == tenant_id, p.group_id == gid)
        ).all()
    return {r.member: r.status for r in found}


def test_join_from_a_shared_link_pay_and_check_the_draw(
    served: Served, browser: Browser, watch: Watch, page: Page
) -> None:
    svc = served.services
    shop = make_shop(svc)
    tid = shop.tenant_id
    with svc.engine.begin() as conn:
        members.create_member(conn, tid, "carol")
    offer = svc.groupbuys.create_offer(
        tid,
        actor="test",
        code=f"o{uuid.uuid4().hex[:8]}",
        sku_id=shop.sku_id,
        mode="merchant",
        price=Decimal("70.00"),
        size=2,
        winners=1,
    )
    # alice opens the group and pays her place (as the API would)
    group = svc.groupbuys.open_group(tid, offer=offer.code, member="alice")
    pid = group.public_id
    pay = svc.orders.start_payment(tid, shop.code, group.places[0].order, member="alice")
    assert pay.intent_id is not None
    svc.orders.complete_sandbox(tid, shop.code, pay.intent_id, member="alice")
    assert _places(served, tid, pid) == {"alice": "held"}

    bob, bob_page = _phone(browser, watch, served)
    carol, carol_page = _phone(browser, watch, served)
    try:
        bob_page.goto(_link(served, shop.code, tid, "bob"))
        bob_page.goto(f"{served.base}/m/{shop.code}/groups/{pid}")
        assert bob_page.locator("#g-taken").inner_text() == "1/2"
        assert bob_page.locator("#g-price").inner_text() == format_money(Decimal("70.00"))
        assert bob_page.locator("#g-commitment").inner_text() == group.commitment
        bob_page.click("#join-form button")
        assert bob_page.locator(".notice").is_visible()
        assert bob_page.locator("#g-taken").inner_text() == "2/2"
        assert _places(served, tid, pid) == {"alice": "held", "bob": "pending"}

        # every place is taken (bob's still unpaid): carol is refused, with nothing taken
        carol_page.goto(_link(served, shop.code, tid, "carol"))
        carol_page.goto(f"{served.base}/m/{shop.code}/groups/{pid}")
        carol_page.click("#join-form button")
        refusal = carol_page.locator(".error").inner_text()
        assert f"every place of group {pid} is taken" in refusal
        assert refusal.startswith(zh("Not done: %(reason)s").split("%")[0])
        assert "carol" not in _places(served, tid, pid)

        # bob pays: the group fills and draws at once
        bob_page.click("#pay-form button")
        assert format_money(Decimal("70.00")) in bob_page.locator(".notice").inner_text()
        placed = _places(served, tid, pid)
        assert placed["bob"] in ("confirmed", "refunded")
        assert sorted(placed.values()) == ["confirmed", "refunded"]  # one winner of two
        assert bob_page.locator("#g-state").get_attribute("data-state") == "succeeded"
        assert bob_page.locator("#g-place").get_attribute("data-status") == placed["bob"]
        assert_ledger_balanced(svc, tid)

        # my groups lists bob's place and its state
        bob_page.goto(f"{served.base}/m/{shop.code}/groups")
        row = bob_page.locator(f"#my-groups tr[data-group='{pid}']")
        assert row.get_attribute("data-status") == placed["bob"]
    finally:
        bob.close()
        carol.close()

    # the draw record, with no login: what the page shows is what anyone recomputes
    page.goto(f"{served.base}/m/{shop.code}/groups/{pid}")
    assert page.locator("#g-login").is_visible()
    assert page.locator("#join-form").count() == 0
    page.click("#draw-link")
    record = svc.groupbuys.public_group(pid)
    recomputed = draw.verify(record)
    assert recomputed == record["winners"]
    assert len(recomputed) == 1
    assert page.locator("#d-winners li").all_inner_texts() == recomputed
    assert page.locator("#d-candidates li").all_inner_texts() == record["candidates"]
    assert page.locator("#d-seed").inner_text() == record["seed"]
    assert page.locator("#d-commitment").inner_text() == group.commitment
    assert page.locator("#d-k").inner_text() == "1"
    assert "tokenmall groupbuy verify" in page.locator("#d-commands").inner_text()

    # the operator's page lists the offer and the group with its state
    login(page, served.base, shop.code, shop.operator_key)
    page.goto(f"{served.base}/console/{shop.code}/groupbuys")
    assert page.locator(f"#gb-offers tr[data-offer='{offer.code}']").count() == 1
    grow = page.locator(f"#gb-groups tr[data-group='{pid}']")
    assert grow.get_attribute("data-state") == "succeeded"
    taken = svc.groupbuys.get_group(shop.tenant_id, pid).taken
    assert f"{taken}/2" in grow.inner_text()
    assert watch.errors == []
    assert watch.outside == []
    assert watch.dialogs == []


def test_group_pages_refuse_other_malls_and_merchants(served: Served, page: Page) -> None:
    svc = served.services
    shop = make_shop(svc)
    other = make_shop(svc)
    offer = svc.groupbuys.create_offer(
        shop.tenant_id,
        actor="test",
        code=f"o{uuid.uuid4().hex[:8]}",
        sku_id=shop.sku_id,
        mode="multi",
        price=Decimal("70.00"),
        size=3,
    )
    pid = svc.groupbuys.open_group(shop.tenant_id, offer=offer.code, member="alice").public_id
    for path in (
        f"/m/{other.code}/groups/{pid}",  # the group is another mall's
        f"/m/{other.code}/groups/{pid}/draw",
        f"/m/{shop.code}/groups/nosuchgroup",
        f"/m/{shop.code}/groups/BAD-ID",
        f"/m/nosuchmall/groups/{pid}",
    ):
        response = page.goto(served.base + path)
        assert response is not None
        assert response.status == 404, path
    # a merchant's console session does not see the group buys page
    login(page, served.base, shop.code, shop.merchant_key)
    response = page.goto(f"{served.base}/console/{shop.code}/groupbuys")
    assert response is not None
    assert response.status == 403
    # joining needs a member session: nothing is taken
    response = page.request.post(
        f"{served.base}/m/{shop.code}/groups/{pid}/join", form={"csrf": "x"}
    )
    assert response.status == 401
    assert [p.member for p in svc.groupbuys.get_group(shop.tenant_id, pid).places] == ["alice"]
