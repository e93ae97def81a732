"""NFG pages in headless Chromium, on SQLite and PostgreSQL: a member lists a token and another
buys it with SP from the market (the preview is what the ledger takes, the owner changes and
every asset still sums to zero); a primary purchase with SP and with EP costs what the page
showed; a gift the collection's policy refuses shows the rule and changes nothing; a redeem
marks one use; the console shows collections, tokens, provenance and anchors, creates a
collection and refuses bad input; other malls, roles and members get 404/403/409."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

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
from playwright.sync_api import Browser, Page

from tokenmall.domain.economy import Asset
from tokenmall.domain.nfg import Collection, Kind, MetadataTemplate, Mode
from tokenmall.service import credentials, members, wallet
from tokenmall.service.nfg import collections, log, market, reads, tokens
from tokenmall.store.db import read_only
from tokenmall.web.i18n import format_datetime, format_money, format_points, translations
from tokenmall.web.session import open_session

PHONE = {"width": 390, "height": 844}
zh = translations("zh_CN").gettext
BAD_PRICES = ("-5", "1.234", "99999999999", "1e3", "<script>alert(1)</script>")


def _link(served: Served, shop: Shop, member: str) -> str:
    secret = served.services.settings.secret_key.get_secret_value()
    token, _ = credentials.issue_member_token(secret, shop.tenant_id, member, ttl_seconds=600)
    return f"{served.base}/m/{shop.code}/login?token={token}"


def _allowed(text: str) -> bool:
    """The browser's note of a page answered 4xx on purpose."""
    return any(f"status of {s}" in text for s in (400, 401, 403, 404, 409))


def _context(browser: Browser, watch: Watch, served: Served) -> tuple[Any, Page]:
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
    page.on(
        "console",
        lambda m: (
            watch.errors.append(m.text) if m.type == "error" and not _allowed(m.text) else None
        ),
    )
    page.on("pageerror", lambda exc: watch.errors.append(str(exc)))
    page.on("dialog", lambda d: (watch.dialogs.append(d.message), d.dismiss()))
    return context, page


@pytest.fixture
def phones(browser: Browser, served: Served, watch: Watch) -> Iterator[Any]:
    made: list[Any] = []

    def make() -> Page:
        context, page = _context(browser, watch, served)
        made.append(context)
        return page

    yield make
    for c in made:
        c.close()
    assert watch.errors == []
    assert watch.outside == []
    assert watch.dialogs == []


def _collection(served: Served, shop: Shop, owners: list[str], **rules: Any) -> str:
    code = f"C{uuid.uuid4().hex[:8]}"
    base: dict[str, Any] = {
        "name": "黑卡",
        "max_supply": 10,
        "price": Decimal("10.00"),
        "accepted": frozenset({Asset.CNY, Asset.SP, Asset.EP}),
    }
    coll = Collection(code=code, **{**base, **rules})
    with served.services.store.tenant_tx(shop.tenant_id) as tx:
        collections.create_collection(tx, coll)
        if owners:
            tokens.airdrop(tx, code, owners)
    return code


def _token(served: Served, shop: Shop, code: str, serial: int) -> tokens.TokenView:
    with read_only(served.services.engine).connect() as conn:
        return tokens.get_token(conn, shop.tenant_id, code, serial)


def _sp(served: Served, shop: Shop, member: str) -> Decimal:
    with read_only(served.services.engine).connect() as conn:
        return wallet.balance(conn, shop.tenant_id, member).stable


def _events(served: Served, shop: Shop, code: str, serial: int) -> list[str]:
    with read_only(served.services.engine).connect() as conn:
        return [e["kind"] for e in tokens.provenance(conn, shop.tenant_id, code, serial)]


def _csrf(page: Page, served: Served) -> str:
    cookie = next(c for c in page.context.cookies() if c["name"] == "tm_member")
    session = open_session(served.services.settings.secret_key.get_secret_value(), cookie["value"])
    assert session is not None
    return session.csrf


def test_list_then_buy_with_sp_from_the_market(
    served: Served, phones: Any, request: pytest.FixtureRequest
) -> None:
    svc = served.services
    shop = make_shop(svc)
    tid = shop.tenant_id
    code = _collection(
        served,
        shop,
        ["bob"],
        transfer_policy=Mode.OPEN,
        fee_bps=500,
        royalty_bps=250,
        fee_to_pool_ratio=Decimal("0.5"),
    )
    bob, alice = phones(), phones()
    # bob lists his token at ¥8.00 from its page
    bob.goto(_link(served, shop, "bob"))
    bob.goto(f"{served.base}/m/{shop.code}/nfg")
    bob.click(f"#my-tokens li[data-token='{code}-1'] a")
    assert bob.locator("#t-owner").inner_text() == "bob"
    bob.fill("#list-form input[name=price]", "8")
    bob.click("#list-form button")
    assert bob.locator(".notice").inner_text() == zh("Listed on the market.")
    with read_only(svc.engine).connect() as conn:
        (listing,) = reads.listings_of(conn, tid, "bob")
    assert listing.price == Decimal("8.00")

    # alice finds it on the market; the preview is the settlement: 8.00 paid, 5 % fee, 2.5 %
    # royalty, the rest to bob
    alice.goto(_link(served, shop, "alice"))
    alice.goto(f"{served.base}/m/{shop.code}/nfg/market")
    alice.click(f"#market li[data-listing='{listing.id}'] a")
    assert alice.locator("#preview-amount").inner_text() == format_money(Decimal("8.00"))
    assert alice.locator("#preview-fee").inner_text() == format_money(Decimal("0.40"))
    assert alice.locator("#preview-royalty").inner_text() == format_money(Decimal("0.20"))
    assert alice.locator("#preview-pool").inner_text() == format_money(Decimal("0.20"))
    assert alice.locator("#preview-proceeds").inner_text() == format_money(Decimal("7.40"))
    if request.node.callspec.params.get("served") == "sqlite":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        alice.screenshot(path=str(SCREENSHOTS / "member-nfg-buy.png"), full_page=True)
    alice_before, bob_before = _sp(served, shop, "alice"), _sp(served, shop, "bob")
    alice.click("#buy-form button")
    assert format_money(Decimal("8.00")) in alice.locator(".notice").inner_text()
    assert alice.locator("#t-owner").inner_text() == "alice"
    # the database and the ledger: the new owner, exactly the money previewed, balanced
    assert _token(served, shop, code, 1).owner == "alice"
    assert _sp(served, shop, "alice") == alice_before - Decimal("8.00")
    assert _sp(served, shop, "bob") == bob_before + Decimal("7.40")
    assert _events(served, shop, code, 1) == ["mint", "sale"]
    assert alice.locator("#t-provenance li[data-kind=sale]").count() == 1
    assert_ledger_balanced(svc, tid)
    # a second tap on the same listing (the form posted again) finds it sold: nothing moves
    answer = alice.request.post(
        f"{served.base}/m/{shop.code}/nfg/market/{listing.id}/buy",
        form={"csrf": _csrf(alice, served)},
    )
    assert answer.status == 409
    assert _sp(served, shop, "alice") == alice_before - Decimal("8.00")
    # every member page of NFG loads in both languages
    for lang in ("zh_CN", "en"):
        for path in ("", "/market", f"/market/{listing.id}", f"/tokens/{code}/1", f"/shop/{code}"):
            response = alice.goto(f"{served.base}/m/{shop.code}/nfg{path}?lang={lang}")
            assert response is not None
            assert response.status == 200, path
            assert response.headers["content-security-policy"].startswith("default-src 'self'")


def test_buy_a_collections_token_with_sp_and_with_points(served: Served, phones: Any) -> None:
    svc = served.services
    shop = make_shop(svc)
    tid = shop.tenant_id
    code = _collection(served, shop, [], price=Decimal("2.50"))
    alice = phones()
    alice.goto(_link(served, shop, "alice"))
    alice.goto(f"{served.base}/m/{shop.code}/nfg")
    alice.click(f"#shop li[data-code='{code}'] a")
    assert alice.locator("#cost-sp").inner_text() == format_money(Decimal("2.50"))
    before = _sp(served, shop, "alice")
    sent = {
        name: alice.locator(f"#buy-sp-form input[name={name}]").get_attribute("value") or ""
        for name in ("csrf", "asset", "key")
    }
    alice.click("#buy-sp-form button")
    assert _token(served, shop, code, 1).owner == "alice"
    assert _sp(served, shop, "alice") == before - Decimal("2.50")
    assert alice.locator("#t-owner").inner_text() == "alice"
    # the same form sent again (a double tap, a resent form): the same token, nothing taken
    again = alice.request.post(f"{served.base}/m/{shop.code}/nfg/shop/{code}/buy", form=sent)
    assert again.status == 200
    assert _sp(served, shop, "alice") == before - Decimal("2.50")
    with read_only(svc.engine).connect() as conn:
        assert [t.serial for t in tokens.tokens_of(conn, tid, "alice")] == [1]

    # alice sold all her points: the page says so, and a tap is refused with nothing taken
    alice.goto(f"{served.base}/m/{shop.code}/nfg/shop/{code}")
    assert alice.locator("#buy-ep .error").is_visible()
    alice.click("#buy-ep-form button")
    assert alice.locator("p.error[role=alert]").inner_text() != ""
    assert _sp(served, shop, "alice") == before - Decimal("2.50")

    # bob pays with points: the fewest whose sale pays the price now, as previewed
    svc.orders.settle_order(tid, shop.order_ref)  # his order's points are his now
    bob = phones()
    bob.goto(_link(served, shop, "bob"))
    bob.goto(f"{served.base}/m/{shop.code}/nfg/shop/{code}")
    with read_only(svc.engine).connect() as conn:
        points = reads.mint_preview(conn, tid, code, Asset.EP)
        held = wallet.balance(conn, tid, "bob").points
    assert 0 < points < held
    assert bob.locator("#cost-ep").inner_text() == f"{format_points(points)} EP"
    bob.click("#buy-ep-form button")
    assert _token(served, shop, code, 2).owner == "bob"
    with read_only(svc.engine).connect() as conn:
        assert wallet.balance(conn, tid, "bob").points == held - points
    assert_ledger_balanced(svc, tid)


def test_a_gift_refused_by_policy_changes_nothing_and_a_redeem_marks_one_use(
    served: Served, phones: Any
) -> None:
    svc = served.services
    shop = make_shop(svc)
    with svc.engine.begin() as conn:
        members.create_member(conn, shop.tenant_id, "carol")
    held = _collection(
        served, shop, ["bob"], transfer_policy=Mode.GIFT_ONLY, min_holding_seconds=86_400
    )
    frozen = _collection(served, shop, ["bob"])  # transfer policy off: no gift form at all
    visits = _collection(
        served,
        shop,
        ["bob"],
        name="<script>alert(1)</script>",
        kind=Kind.RIGHT,
        uses=3,
        transfer_policy=Mode.GIFT_ONLY,
        metadata=MetadataTemplate(
            description="<script>alert(2)</script>",
            image="https://example.com/card.png",  # never fetched: shown as text
            attributes=(("Tier", "<b>gold</b>"),),
        ),
    )
    bob = phones()
    bob.goto(_link(served, shop, "bob"))

    # the holding time refuses the gift: the rule's message, the token stays bob's
    bob.goto(f"{served.base}/m/{shop.code}/nfg/tokens/{held}/1")
    bob.fill("#gift-form input[name=to]", "carol")
    bob.click("#gift-form button")
    refusal = bob.locator(".error").inner_text()
    assert refusal.startswith(zh("Not done: %(reason)s").split("%")[0])
    assert "held" in refusal
    assert _token(served, shop, held, 1).owner == "bob"
    assert _events(served, shop, held, 1) == ["mint"]
    # a collection whose tokens may not move offers no gift; posting one anyway is refused
    bob.goto(f"{served.base}/m/{shop.code}/nfg/tokens/{frozen}/1")
    assert bob.locator("#gift-form").count() == 0
    answer = bob.request.post(
        f"{served.base}/m/{shop.code}/nfg/tokens/{frozen}/1/gift",
        form={"csrf": _csrf(bob, served), "to": "carol"},
    )
    assert answer.status == 409
    assert _token(served, shop, frozen, 1).owner == "bob"
    # gifts to nobody in the mall, or a script, are refused before the service, escaped
    for to in ("nosuchmember", "<script>alert(1)</script>"):
        bob.goto(f"{served.base}/m/{shop.code}/nfg/tokens/{visits}/1")
        bob.fill("#gift-form input[name=to]", to)
        bob.click("#gift-form button")
        assert bob.locator(".error").inner_text() != ""
        assert bob.locator("#gift-form input[name=to]").input_value() == to
    assert _token(served, shop, visits, 1).owner == "bob"

    # a right of three uses: one redeemed from the page; what the operator typed is text
    bob.goto(f"{served.base}/m/{shop.code}/nfg/tokens/{visits}/1")
    assert bob.locator("#t-description").inner_text() == "<script>alert(2)</script>"
    assert bob.locator("#t-image").count() == 0
    assert "<b>gold</b>" in bob.locator("#t-attributes").inner_text()
    assert bob.locator("#t-expires").inner_text() == zh("no expiry")
    assert bob.locator("#t-uses").inner_text() == "3"
    bob.click("#redeem-form button")
    assert bob.locator(".notice").inner_text() == zh("One use redeemed.")
    assert bob.locator("#t-uses").inner_text() == "2"
    assert _token(served, shop, visits, 1).uses_left == 2
    assert _events(served, shop, visits, 1) == ["mint", "redeem"]
    # and the gift that the policy allows goes through
    bob.fill("#gift-form input[name=to]", "carol")
    bob.click("#gift-form button")
    assert _token(served, shop, visits, 1).owner == "carol"
    assert bob.locator("#t-owner").inner_text() == "carol"
    assert bob.locator("#redeem-form").count() == 0


def test_listing_prices_bad_input_changes_nothing_and_is_escaped(
    served: Served, phones: Any
) -> None:
    shop = make_shop(served.services)
    code = _collection(served, shop, ["bob"], transfer_policy=Mode.OPEN)
    bob = phones()
    bob.goto(_link(served, shop, "bob"))
    for typed in BAD_PRICES:
        bob.goto(f"{served.base}/m/{shop.code}/nfg/tokens/{code}/1")
        bob.fill("#list-form input[name=price]", typed)
        bob.click("#list-form button")
        assert bob.locator(".error").inner_text() != "", typed
        assert bob.locator("#list-form input[name=price]").input_value() == typed
        assert bob.locator("#t-listing").count() == 0
    with read_only(served.services.engine).connect() as conn:
        assert market.open_listings(conn, shop.tenant_id) == []
    # then list and cancel from the pages
    bob.fill("#list-form input[name=price]", "12.5")
    bob.click("#list-form button")
    assert format_money(Decimal("12.50")) in bob.locator("#t-listing").inner_text()
    bob.click("#cancel-form button")
    assert bob.locator(".notice").inner_text() == zh("The listing is cancelled.")
    with read_only(served.services.engine).connect() as conn:
        assert market.open_listings(conn, shop.tenant_id) == []


def test_the_console_shows_collections_tokens_provenance_and_anchors(
    served: Served, page: Page, watch: Watch
) -> None:
    svc = served.services
    shop = make_shop(svc, timezone="America/New_York")  # times in the mall's zone, not Beijing's
    code = _collection(served, shop, ["bob", "alice"], transfer_policy=Mode.GIFT_ONLY)
    with svc.store.tenant_tx(shop.tenant_id) as tx:
        tokens.transfer(tx, code, 1, caller="bob", from_="bob", to="alice")
    login(page, served.base, shop.code, shop.operator_key)
    page.goto(f"{served.base}/console/{shop.code}/nfg")
    row = page.locator(f"#nfg-collections tr[data-code='{code}']")
    assert "2/10" in row.inner_text()
    row.locator("a").click()
    assert page.locator("#c-price").inner_text() == format_money(Decimal("10.00"))
    assert page.locator("#c-policy").get_attribute("data-mode") == "gift_only"
    assert page.locator("#c-assets").inner_text() == "CNY, EP, SP"
    owners = page.eval_on_selector_all(
        "#nfg-tokens tr[data-serial]", "rs => rs.map(r => r.dataset.owner)"
    )
    assert owners == ["alice", "alice"]
    page.click("#nfg-tokens tr[data-serial='1'] a")
    kinds = page.eval_on_selector_all("#t-provenance tr", "rs => rs.map(r => r.dataset.kind)")
    assert kinds[1:] == ["mint", "transfer"]  # the first row is the header
    # anchor now: the table shows the service's root; a second one has nothing to publish
    page.goto(f"{served.base}/console/{shop.code}/nfg")
    page.click("#nfg-anchor button")
    with read_only(svc.engine).connect() as conn:
        (anchor,) = log.list_anchors(conn, shop.tenant_id)
    assert (
        page.locator(f"#nfg-anchors tr[data-anchor='{anchor.id}'] code").inner_text() == anchor.root
    )
    assert page.locator("#nfg-pending").inner_text().endswith("0")
    shown = page.locator(f"#nfg-anchors tr[data-anchor='{anchor.id}'] td").nth(3).inner_text()
    assert shown == format_datetime(anchor.created_at, ZoneInfo("America/New_York"))
    page.click("#nfg-anchor button")
    assert page.locator(".error").inner_text() != ""
    with read_only(svc.engine).connect() as conn:
        assert len(log.list_anchors(conn, shop.tenant_id)) == 1
    # create a collection from the form: bad input first, nothing created, all escaped
    good = {"code": "NEWC", "name": "贵宾室", "max_supply": "100", "price": "99.90"}
    bad = [
        {"price": "-1"},
        {"price": "1.234"},
        {"price": "99999999999"},
        {"name": "<script>alert(1)</script>", "code": "<b>x</b>"},
        {"max_supply": "0"},
        {"fee_bps": "9000", "royalty_bps": "2000"},  # together above the price: the domain
    ]
    for change in bad:
        page.goto(f"{served.base}/console/{shop.code}/nfg")
        for name, value in {**good, **change}.items():
            page.fill(f"#nfg-new input[name={name}]", value)
        page.click("#nfg-new button")
        assert page.locator(".error").inner_text() != "", change
        for name, value in change.items():
            assert page.locator(f"#nfg-new input[name={name}]").input_value() == value
    with read_only(svc.engine).connect() as conn:
        assert [i.collection.code for i in collections.list_collections(conn, shop.tenant_id)] == [
            code
        ]
    page.goto(f"{served.base}/console/{shop.code}/nfg")
    for name, value in good.items():
        page.fill(f"#nfg-new input[name={name}]", value)
    page.select_option("#nfg-new select[name=kind]", "right")
    page.fill("#nfg-new input[name=uses]", "5")
    page.select_option("#nfg-new select[name=transfer_policy]", "open")
    page.click("#nfg-new button")
    assert page.locator(".notice").is_visible()
    with read_only(svc.engine).connect() as conn:
        made = collections.get_collection(conn, shop.tenant_id, "NEWC").collection
    assert (made.price, made.uses, made.kind, made.transfer_policy) == (
        Decimal("99.90"),
        5,
        Kind.RIGHT,
        Mode.OPEN,
    )
    assert page.locator("#nfg-collections tr[data-code='NEWC']").count() == 1
    assert [e for e in watch.errors if not _allowed(e)] == []
    watch.errors.clear()


def test_other_malls_roles_and_members_are_refused(
    served: Served, page: Page, watch: Watch, browser: Browser
) -> None:
    svc = served.services
    shop = make_shop(svc)
    other = make_shop(svc)
    code = _collection(served, shop, ["alice"], kind=Kind.RIGHT, uses=2, transfer_policy=Mode.OPEN)
    # another mall's operator: 404 on every console page of this mall
    login(page, served.base, other.code, other.operator_key)
    for path in ("/nfg", f"/nfg/c/{code}", f"/nfg/c/{code}/1"):
        response = page.goto(f"{served.base}/console/{shop.code}{path}")
        assert response is not None
        assert response.status == 404, path
    # this mall's merchant: 403
    page.context.clear_cookies()
    login(page, served.base, shop.code, shop.merchant_key)
    for path in ("/nfg", f"/nfg/c/{code}", f"/nfg/c/{code}/1"):
        response = page.goto(f"{served.base}/console/{shop.code}{path}")
        assert response is not None
        assert response.status == 403, path
    # a member of another mall: 404; no member session: 401
    context, phone = _context(browser, watch, served)
    try:
        phone.goto(_link(served, other, "alice"))
        for path in ("/nfg", "/nfg/market", f"/nfg/tokens/{code}/1", f"/nfg/shop/{code}"):
            response = phone.goto(f"{served.base}/m/{shop.code}{path}")
            assert response is not None
            assert response.status == 404, path
        # bob of this mall: alice's token has no actions for him, and posting them is refused
        phone.goto(_link(served, shop, "bob"))
        phone.goto(f"{served.base}/m/{shop.code}/nfg/tokens/{code}/1")
        assert phone.locator("#redeem-form, #gift-form, #list-form").count() == 0
        csrf = _csrf(phone, served)
        for action, fields in (("redeem", {}), ("gift", {"to": "bob"}), ("list", {"price": "1"})):
            answer = phone.request.post(
                f"{served.base}/m/{shop.code}/nfg/tokens/{code}/1/{action}",
                form={"csrf": csrf, **fields},
            )
            assert answer.status == 409, action
        # no CSRF token: 403
        answer = phone.request.post(f"{served.base}/m/{shop.code}/nfg/tokens/{code}/1/redeem")
        assert answer.status in (400, 403)
        tok = _token(served, shop, code, 1)
        assert (tok.owner, tok.uses_left) == ("alice", 2)
        phone.context.clear_cookies()
        response = phone.goto(f"{served.base}/m/{shop.code}/nfg")
        assert response is not None
        assert response.status == 401
    finally:
        context.close()
    assert [e for e in watch.errors if not _allowed(e)] == []
    watch.errors.clear()
