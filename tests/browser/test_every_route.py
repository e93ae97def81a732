"""Every page route the console and the member pages have, found by walking the app's routes
(so a page added later is covered without being listed here), in headless Chromium on SQLite
and PostgreSQL: each loads with status 200 in both languages with no console error and no
request leaving 127.0.0.1; every form action posted without its CSRF token is refused (403)
and changes nothing; another mall's session gets 404 on every route; a merchant gets a page or
403, never an error; no session gets the login page (console) or 401 (member).

Routes whose path names something this shop cannot fill in (a group's public id: see
test_groups.py) are skipped; ``test_enough_routes_are_walked`` checks most are walked.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from console_helpers import Served, Shop, Watch, login, make_shop
from fastapi import FastAPI
from fastapi.routing import APIRoute
from playwright.sync_api import Page

from tokenmall.domain.economy import Asset
from tokenmall.domain.nfg import Collection, Mode
from tokenmall.service import credentials, tenants, wallet
from tokenmall.service.nfg import collections, market
from tokenmall.service.nfg import tokens as nfg_tokens
from tokenmall.service.orders import Viewer as AfterSalesViewer
from tokenmall.store.db import read_only
from tokenmall.web.app import install

# pages anyone may open (a referral link's landing page): no session needed, any mall
PUBLIC = {"/m/{tenant}/join"}
# a GET that is an action, not a page: it takes a token and answers with a redirect
NOT_PAGES = {"/m/{tenant}/login"}
# the lottery campaign each shop gets (made by _nfg, with the NFG objects)
CAMPAIGN = "spring"
# what the NFG routes' parameters name (made by _nfg)
NFG = {"code": "card", "serial": "1", "listing_id": "1"}
PARAM = re.compile(r"\{(\w+)\}")


def _routes() -> list[tuple[str, str]]:
    app = FastAPI()
    install(app)
    found = []
    for route in app.routes:
        if isinstance(route, APIRoute) and route.path.startswith(("/console/{", "/m/{")):
            found += [(method, route.path) for method in sorted(route.methods)]
    return found


ROUTES = _routes()


def _fill(path: str, shop: Shop, aftersales: str) -> str | None:
    """``path`` with this shop's values, or None if it names something the shop lacks."""

    def value(name: str) -> str | None:
        if name == "tenant":
            return shop.code
        if "/nfg/" in path and name in NFG:
            return NFG[name]
        if "/campaigns/" in path and name == "code":
            return CAMPAIGN
        if name == "code":
            return "alice"
        if name == "wd_id" or (name == "ref" and "/withdrawals/" in path):
            return shop.withdrawal_id
        if name == "ref" and "/desk/" in path:
            return aftersales
        if name == "ref":
            return shop.order_ref
        if name == "decision":
            return "accept" if "/desk/" in path else "approve"
        return None

    names = PARAM.findall(path)
    values = {n: value(n) for n in names}
    if any(v is None for v in values.values()):
        return None
    return PARAM.sub(lambda m: str(values[m.group(1)]), path)


def _nfg(served: Served, shop: Shop) -> None:
    """The NFG pages' objects: collection ``card`` with bob's token #1 and alice's #2, which she
    lists for 5.00 (the mall's listing 1); and the lottery campaign ``spring``."""
    coll = Collection(
        code=NFG["code"],
        name="黑卡",
        max_supply=10,
        price=Decimal("10.00"),
        accepted=frozenset({Asset.CNY, Asset.SP, Asset.EP}),
        transfer_policy=Mode.OPEN,
    )
    with served.services.store.tenant_tx(shop.tenant_id) as tx:
        collections.create_collection(tx, coll)
        nfg_tokens.airdrop(tx, NFG["code"], ["bob", "alice"])
        market.list_token(tx, NFG["code"], 2, caller="alice", price=Decimal("5.00"))
    served.services.groupbuys.create_campaign(
        shop.tenant_id, code=CAMPAIGN, winners=1, actor="test"
    )


def _aftersales(served: Served, shop: Shop) -> str:
    asked = served.services.orders.aftersales.request_refund(
        shop.tenant_id,
        shop.order_ref,
        viewer=AfterSalesViewer(member="bob"),
        amount=Decimal("20.00"),
        reason="破损",
        actor="member:bob",
    )
    return str(asked.ref)


def _state(served: Served, shop: Shop, aftersales: str) -> tuple[Any, ...]:
    """Everything a form of these pages could change."""
    svc = served.services
    tid = shop.tenant_id
    with read_only(svc.engine).connect() as conn:
        wds = wallet.list_withdrawals(conn, tid, limit=500, cursor=None).items
        changes = tenants.list_param_changes(conn, tid, limit=500, cursor=None).items
    order = svc.orders.get_order(tid, shop.order_ref)
    asked = svc.orders.aftersales.get(tid, aftersales, AfterSalesViewer())
    return (
        tuple(sorted(svc.store.ledger.balances(tid).items())),
        tuple((w.id, w.status) for w in wds),
        len(changes),
        (order.status, order.refunded, order.delivered_at),
        asked.status,
    )


def _member_session(page: Page, served: Served, shop: Shop, member: str) -> None:
    secret = served.services.settings.secret_key.get_secret_value()
    token, _ = credentials.issue_member_token(secret, shop.tenant_id, member, ttl_seconds=600)
    page.goto(f"{served.base}/m/{shop.code}/login?token={token}")


def _allowed(watch: Watch, *statuses: int) -> None:
    bad = [e for e in watch.errors if not any(f"status of {s} " in e for s in statuses)]
    assert bad == [], bad


def test_enough_routes_are_walked() -> None:
    """The walk covers the pages: the routes this shop can fill in are most of them (today
    every route but the four of a group's shared link)."""
    shop = Shop("t", 1, "", "", 1, 1, "o", "wd_x")
    filled = [p for _, p in ROUTES if _fill(p, shop, "as") is not None]
    assert len(filled) >= 40, filled


def test_every_page_loads_clean_in_both_languages(served: Served, page: Page, watch: Watch) -> None:
    shop = make_shop(served.services)
    _nfg(served, shop)
    asked = _aftersales(served, shop)
    login(page, served.base, shop.code, shop.operator_key)
    _member_session(page, served, shop, "bob")
    walked = 0
    for method, path in ROUTES:
        url = _fill(path, shop, asked)
        if method != "GET" or url is None or path in NOT_PAGES:
            continue
        for lang in ("en", "zh_CN"):
            if path.endswith(".csv"):  # a download, not a page
                got = page.request.get(f"{served.base}{url}?lang={lang}")
                assert got.status == 200, path
                assert got.headers["content-type"].startswith("text/csv")
                continue
            response = page.goto(f"{served.base}{url}?lang={lang}")
            assert response is not None
            assert response.status == 200, (path, lang)
            if "text/html" in response.headers["content-type"]:
                assert response.headers["content-security-policy"].startswith("default-src")
                assert page.locator("html").get_attribute("lang") == (
                    "en" if lang == "en" else "zh-CN"
                )
        walked += 1
    assert walked >= 25
    assert watch.errors == []


def test_every_form_without_its_csrf_token_is_refused(
    served: Served, page: Page, watch: Watch
) -> None:
    shop = make_shop(served.services)
    _nfg(served, shop)
    asked = _aftersales(served, shop)
    login(page, served.base, shop.code, shop.operator_key)
    _member_session(page, served, shop, "alice")
    start = _state(served, shop, asked)
    posted = 0
    for method, path in ROUTES:
        url = _fill(path, shop, asked)
        if method != "POST" or url is None:
            continue
        # every field a form of these pages has, with a plausible value, but no token
        form = {
            "amount": "1",
            "points": "1",
            "dir": "ep",
            "account": "oid-alice",
            "key": "m-0123456789abcdef",
            "note": "x",
            "reason": "x",
            "date": "2026-01-01",
            "refund_id": "r-csrf",
            "carrier": "顺丰",
            "tracking_no": "SF1",
            "p:withdraw_min": "2",
        }
        for token in (None, "forged"):
            body = form if token is None else {**form, "csrf": token}
            answer = page.request.post(f"{served.base}{url}", form=body, max_redirects=0)
            assert answer.status == 403, (path, token, answer.status)
        posted += 1
    assert posted >= 12
    assert _state(served, shop, asked) == start


def test_other_malls_merchants_and_strangers_are_kept_out(
    served: Served, page: Page, watch: Watch
) -> None:
    shop = make_shop(served.services)
    _nfg(served, shop)
    other = make_shop(served.services)
    _nfg(served, other)
    asked = _aftersales(served, other)
    start = _state(served, other, asked)
    # the operator and a member of `shop`, on every route of `other`
    login(page, served.base, shop.code, shop.operator_key)
    _member_session(page, served, shop, "alice")
    for method, path in ROUTES:
        url = _fill(path, other, asked)
        if url is None or path in NOT_PAGES:
            continue
        if method == "GET":
            answer = page.request.get(f"{served.base}{url}", max_redirects=0)
        else:
            answer = page.request.post(f"{served.base}{url}", form={"csrf": "x"}, max_redirects=0)
        expected = 200 if path in PUBLIC else 404
        assert answer.status == expected, (method, path, answer.status)
        assert other.order_ref not in answer.text() or path in PUBLIC
    assert _state(served, other, asked) == start
    # a merchant of `other`: its own pages or 403, never an error
    page.context.clear_cookies()
    login(page, served.base, other.code, other.merchant_key)
    for method, path in ROUTES:
        url = _fill(path, other, asked)
        if method != "GET" or url is None or not path.startswith("/console/"):
            continue
        answer = page.request.get(f"{served.base}{url}", max_redirects=0)
        assert answer.status in (200, 403), (path, answer.status)
    # nobody: the console's login page, the member's "open your link" (401)
    page.context.clear_cookies()
    for method, path in ROUTES:
        url = _fill(path, other, asked)
        if method != "GET" or url is None or path in PUBLIC or path in NOT_PAGES:
            continue
        answer = page.request.get(f"{served.base}{url}", max_redirects=0)
        if path.startswith("/console/"):
            assert answer.status == 303, path
            assert answer.headers["location"] == "/console/login"
        else:
            assert answer.status == 401, path
    assert _state(served, other, asked) == start
    _allowed(watch, 401, 403, 404)
