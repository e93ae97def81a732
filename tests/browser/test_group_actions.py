"""Opening and leaving groups from the member pages, and the console's lottery campaigns, in
Chromium on SQLite and PostgreSQL, each checked against the tables: a member opens a group of
an offer and pays, another joins, pays and leaves (refunded in full), the leader is refused
while someone is in and then leaves alone (the group fails); a closed offer is not offered.
The operator's campaign page lists the full groups waiting and, once drawn, the draw with a
link to its public record, which recomputes to the groups the tables confirmed."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
from console_helpers import Served, Watch, assert_ledger_balanced, login, make_shop
from playwright.sync_api import Browser, Page
from sqlalchemy import select
from test_groups import _link, _phone, _places

from tokenmall.domain import draw
from tokenmall.errors import TokenmallError
from tokenmall.service import members
from tokenmall.store import schema as s
from tokenmall.store.db import read_only
from tokenmall.web.i18n import format_money, translations

zh = translations("zh_CN").gettext


def _order_status(served: Served, tenant_id: int, ref: str) -> str:
    return served.services.orders.get_order(tenant_id, ref).status


def _group_state(served: Served, tenant_id: int, public_id: str) -> str:
    g = s.group_buys.c
    with read_only(served.services.engine).connect() as conn:
        return str(
            conn.execute(
                select(g.state).where(g.tenant_id == tenant_id, g.public_id == public_id)
            ).scalar_one()
        )


def test_open_a_group_from_an_offer_pay_and_leave(
    served: Served, browser: Browser, watch: Watch
) -> None:
    svc = served.services
    shop = make_shop(svc)
    tid = shop.tenant_id
    with svc.engine.begin() as conn:
        members.create_member(conn, tid, "carol")
    gb = svc.groupbuys
    offer = gb.create_offer(
        tid,
        actor="test",
        code=f"o{uuid.uuid4().hex[:8]}",
        sku_id=shop.sku_id,
        mode="multi",
        price=Decimal("70.00"),
        size=3,
    )
    closed = gb.create_offer(
        tid,
        actor="test",
        code=f"c{uuid.uuid4().hex[:8]}",
        sku_id=shop.sku_id,
        mode="multi",
        price=Decimal("60.00"),
        size=2,
    )
    gb.close_offer(tid, closed.code, actor="test")
    bob, bob_page = _phone(browser, watch, served)
    alice, alice_page = _phone(browser, watch, served)
    try:
        bob_page.goto(_link(served, shop.code, tid, "bob"))
        bob_page.goto(f"{served.base}/m/{shop.code}/groups")
        bob_page.click("#offers-link")
        assert bob_page.locator(f"#m-offers tr[data-offer='{closed.code}']").count() == 0
        row = bob_page.locator(f"#m-offers tr[data-offer='{offer.code}']")
        assert format_money(Decimal("70.00")) in row.inner_text()
        row.locator("button").click()
        assert bob_page.locator(".notice").is_visible()
        [group] = gb.list_groups(tid, limit=10, cursor=None, member="bob").items
        pid = group.public_id
        assert group.leader == "bob"
        assert _places(served, tid, pid) == {"bob": "pending"}
        assert bob_page.locator("#g-taken").inner_text() == "1/3"
        bob_page.click("#pay-form button")
        assert _places(served, tid, pid) == {"bob": "held"}

        # alice joins from the shared link, pays, and leaves: refunded in full at once
        alice_page.goto(_link(served, shop.code, tid, "alice"))
        alice_page.goto(f"{served.base}/m/{shop.code}/groups/{pid}")
        alice_page.click("#join-form button")
        alice_page.click("#pay-form button")
        assert _places(served, tid, pid) == {"bob": "held", "alice": "held"}
        alice_order = next(p.order for p in gb.get_group(tid, pid).places if p.member == "alice")
        alice_page.click("#leave-form button")
        notice = alice_page.locator(".notice").inner_text()
        assert format_money(Decimal("70.00")) in notice
        assert _places(served, tid, pid) == {"bob": "held", "alice": "refunded"}
        assert _order_status(served, tid, alice_order) == "refunded"
        assert alice_page.locator("#g-place").get_attribute("data-status") == "refunded"
        assert alice_page.locator("#join-form").count() == 1  # she may join again

        # carol takes a place (unpaid): the leader may not leave while she is in
        gb.join(tid, pid, member="carol")
        bob_page.reload()
        bob_page.click("#leave-form button")
        error = bob_page.locator(".error").inner_text()
        assert error.startswith(zh("Not done: %(reason)s").split("%")[0])
        assert "cannot cancel once others have joined" in error
        assert _places(served, tid, pid)["bob"] == "held"
        gb.cancel(tid, pid, member="carol")  # carol leaves: her order is cancelled

        # alone again, the leader leaves: refunded in full, the group has failed
        bob_page.goto(f"{served.base}/m/{shop.code}/groups/{pid}")
        bob_page.click("#leave-form button")
        assert bob_page.locator(".notice").is_visible()
        assert _places(served, tid, pid)["bob"] == "refunded"
        assert _group_state(served, tid, pid) == "failed"
        assert bob_page.locator("#g-state").get_attribute("data-state") == "failed"
        assert bob_page.locator("#leave-form").count() == 0
        assert_ledger_balanced(svc, tid)
    finally:
        bob.close()
        alice.close()
    assert watch.errors == []
    assert watch.outside == []


def test_the_console_lists_campaigns_their_waiting_groups_and_draws(
    served: Served, page: Page, watch: Watch
) -> None:
    svc = served.services
    shop = make_shop(svc)
    tid = shop.tenant_id
    with svc.engine.begin() as conn:
        for code in ("carol", "dave"):
            members.create_member(conn, tid, code)
    gb = svc.groupbuys
    camp = gb.create_campaign(tid, code="spring", winners=1, actor="test")
    offer = gb.create_offer(
        tid,
        actor="test",
        code=f"l{uuid.uuid4().hex[:8]}",
        sku_id=shop.sku_id,
        mode="lottery",
        price=Decimal("70.00"),
        size=2,
        campaign="spring",
        compensation=Decimal("5.00"),
    )

    def pay(member: str, public_id: str) -> None:
        place = next(p for p in gb.get_group(tid, public_id).places if p.member == member)
        intent = svc.orders.start_payment(tid, shop.code, place.order, member=member)
        assert intent.intent_id is not None
        svc.orders.complete_sandbox(tid, shop.code, intent.intent_id, member=member)

    pids = []
    for leader, other in (("alice", "bob"), ("carol", "dave")):
        pid = gb.open_group(tid, offer=offer.code, member=leader).public_id
        pay(leader, pid)
        gb.join(tid, pid, member=other)
        pay(other, pid)
        pids.append(pid)
    assert [_group_state(served, tid, p) for p in pids] == ["full", "full"]

    login(page, served.base, shop.code, shop.operator_key)
    page.goto(f"{served.base}/console/{shop.code}/campaigns")
    row = page.locator("#campaigns tr[data-campaign='spring']")
    assert row.locator(".c-waiting").inner_text() == "2"
    row.locator("a").click()
    assert page.locator("#c-commitment").inner_text() == camp.commitment
    waiting = page.locator("#c-waiting tr[data-group]")
    assert sorted(waiting.evaluate_all("rs => rs.map(r => r.dataset.group)")) == sorted(pids)
    assert page.locator("#c-draw-list tr[data-draw]").count() == 0

    gb.draw_campaign(tid, "spring")
    page.reload()
    assert page.locator("#c-waiting tr[data-group]").count() == 0
    assert page.locator("#c-draws").inner_text() == "1"
    drawn = page.locator("#c-draw-list tr[data-draw='1']")
    won = drawn.locator(".d-winners").inner_text()
    states = {p: _group_state(served, tid, p) for p in pids}
    assert states[won] == "succeeded"
    assert sorted(states.values()) == ["lost", "succeeded"]
    href = drawn.locator("a.d-record").get_attribute("href")
    assert href == f"/v1/groupbuys/campaigns/{camp.public_id}/draws/1"
    # the public record, without the console's session: anyone recomputes the winners
    response = page.request.get(served.base + href, headers={"Cookie": ""})
    assert response.status == 200
    record = json.loads(response.text())
    assert record["commitment"] == camp.commitment
    assert draw.verify(record) == [won]
    assert_ledger_balanced(svc, tid)
    assert watch.errors == []
    assert watch.outside == []


def test_campaign_pages_are_the_operators(served: Served, page: Page) -> None:
    svc = served.services
    shop = make_shop(svc)
    svc.groupbuys.create_campaign(shop.tenant_id, code="spring", winners=1, actor="test")
    login(page, served.base, shop.code, shop.merchant_key)
    for path in ("campaigns", "campaigns/spring"):
        response = page.goto(f"{served.base}/console/{shop.code}/{path}")
        assert response is not None
        assert response.status == 403, path
    login(page, served.base, shop.code, shop.operator_key)
    response = page.goto(f"{served.base}/console/{shop.code}/campaigns/nosuch")
    assert response is not None
    assert response.status == 404


def test_the_operator_closes_an_offer_from_the_console(served: Served, page: Page) -> None:
    svc = served.services
    shop = make_shop(svc)
    tid = shop.tenant_id
    gb = svc.groupbuys
    offer = gb.create_offer(
        tid,
        actor="test",
        code=f"o{uuid.uuid4().hex[:8]}",
        sku_id=shop.sku_id,
        mode="multi",
        price=Decimal("70.00"),
        size=2,
    )
    pid = gb.open_group(tid, offer=offer.code, member="alice").public_id
    login(page, served.base, shop.code, shop.operator_key)
    page.goto(f"{served.base}/console/{shop.code}/groupbuys")
    row = page.locator(f"#gb-offers tr[data-offer='{offer.code}']")
    assert row.locator(".o-active").get_attribute("data-active") == "true"
    row.locator(".close-offer button").click()
    assert offer.code in page.locator(".notice").inner_text()
    row = page.locator(f"#gb-offers tr[data-offer='{offer.code}']")
    assert row.locator(".o-active").get_attribute("data-active") == "false"
    assert row.locator(".close-offer").count() == 0
    f = s.group_offers.c
    with read_only(svc.engine).connect() as conn:
        stored = conn.execute(
            select(f.active, f.closed_by).where(f.tenant_id == tid, f.code == offer.code)
        ).one()
    assert not stored.active
    assert stored.closed_by is not None
    # no new group; the open one still takes bob
    with pytest.raises(TokenmallError, match="closed"):
        gb.open_group(tid, offer=offer.code, member="bob")
    gb.join(tid, pid, member="bob")
    assert _places(served, tid, pid) == {"alice": "pending", "bob": "pending"}
