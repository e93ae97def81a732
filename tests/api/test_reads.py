"""Read models over HTTP on SQLite and PostgreSQL (R10, issue 3 item 8): the economy and its
history, levels, the holder board, partners, holdings and reward history; isolation; bad
input.  Expected figures come from the pure domain run on the same commands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

import pytest
from api_helpers import Mall, assert_error, bearer, make_mall, ok
from fastapi.testclient import TestClient

from tokenmall.domain.economy import CloseDay, Command, Economy, Purchase
from tokenmall.domain.params import TenantParams
from tokenmall.service.codec import dec
from tokenmall.service.ledger import Ledger

D = Decimal
PARAMS = {
    "referral_ratio": "0.05",  # what make_mall sets
    "quota_multiplier": "0.35",  # quota 35 per 100 spent: exits come early
    "dividend_rate": "0.02",
    "level_thresholds": "0,10,20",
    "partner_threshold": "20",
    "board_size": "3",
}


def ctx(client: TestClient) -> Any:
    app: Any = client.app
    return app.state.tokenmall


def submit(client: TestClient, mall: Mall, items: list[tuple[str, Command]]) -> None:
    ledger: Ledger = ctx(client).ledger
    out = ledger.submit(ctx(client).tenant_id(mall.code), items)
    assert all(o.status == "applied" for o in out), out


def add_member(client: TestClient, mall: Mall, code: str, name: str | None = None) -> None:
    body: dict[str, Any] = {"code": code}
    if name:
        body["display_name"] = name
    ok(client.post(mall.url("/members"), json=body, headers=mall.operator), 201)


def token(client: TestClient, mall: Mall, member: str) -> dict[str, str]:
    got = ok(
        client.post(mall.url(f"/members/{member}/tokens"), json={}, headers=mall.operator), 201
    )
    return bearer(got["token"])


@pytest.fixture
def story(client: TestClient, mall: Mall) -> Economy:
    """alice buys 100; bob (referred by alice) buys 100, which lifts the price past alice's
    quota of 35 (she exits, R7); carol buys 100; dave buys 300, and bob exits; then the day
    closes (R9) and pays carol and dave.  Returns the pure domain after the same commands."""
    ok(client.post(mall.url("/param-changes"), json={"params": PARAMS}, headers=mall.operator), 201)
    add_member(client, mall, "carol", "Carol C.")
    add_member(client, mall, "dave")
    cmds: list[tuple[str, Command]] = [
        ("p1", Purchase("o1", "alice", D(100))),
        ("p2", Purchase("o2", "bob", D(100), "alice")),
        ("p3", Purchase("o3", "carol", D(100))),
        ("p4", Purchase("o4", "dave", D(300))),
        ("close", CloseDay("2026-01-01")),
    ]
    submit(client, mall, cmds)
    eco = Economy(TenantParams.from_mapping(PARAMS))
    for _, cmd in cmds:
        eco.apply(cmd)
    return eco


def test_economy_now_and_over_time(client: TestClient, mall: Mall, story: Economy) -> None:
    now = ok(client.get(mall.url("/economy"), headers=mall.member))
    num, den = story.price_ratio()
    assert now["price"] == str((num / den).quantize(D("0.0001")))
    assert D(now["pool"]) == story.pool
    assert now["circulating"] == dec(story.circulating)
    assert now["burned"] == dec(story.burned)
    assert D(now["dividend_fund"]) == story.dividend_fund
    assert (now["members"], now["seq"], now["total_supply"]) == (4, 5, "100000000")

    history = ok(client.get(mall.url("/economy/history"), headers=mall.merchant))
    assert [p["kind"] for p in history["items"]] == ["purchase"] * 4 + ["close_day"]
    assert history["items"][0]["price"] == "1.4286"
    assert history["items"][-1]["price"] == now["price"]
    assert history["next_cursor"] is None
    seqs = []
    cursor = None
    while True:
        q = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = ok(client.get(mall.url(f"/economy/history{q}"), headers=mall.member))
        seqs += [p["seq"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seqs == [1, 2, 3, 4, 5]
    at = datetime.fromisoformat(history["items"][0]["at"])
    later = (at + timedelta(hours=1)).isoformat()
    earlier = (at - timedelta(hours=1)).isoformat()
    window = ok(
        client.get(
            mall.url("/economy/history"),
            params={"from": earlier, "to": later},
            headers=mall.member,
        )
    )
    assert len(window["items"]) == 5
    assert (
        ok(client.get(mall.url("/economy/history"), params={"from": later}, headers=mall.member))[
            "items"
        ]
        == []
    )
    assert (
        ok(client.get(mall.url("/economy/history"), params={"to": earlier}, headers=mall.member))[
            "items"
        ]
        == []
    )
    naive = (at - timedelta(hours=1)).astimezone(UTC).replace(tzinfo=None).isoformat()
    assert (
        len(
            ok(
                client.get(
                    mall.url("/economy/history"), params={"from": naive}, headers=mall.member
                )
            )["items"]
        )
        == 5
    )


def test_levels_board_and_partners(client: TestClient, mall: Mall, story: Economy) -> None:
    held = {c: m.ep for c, m in story.members.items()}
    assert held["alice"] == 0  # forced out
    levels = ok(client.get(mall.url("/levels"), headers=mall.member))
    assert levels["partner_threshold"] == "20"
    expect = {1: 0, 2: 0, 3: 0}
    for ep in held.values():
        expect[3 if ep >= 20 else 2 if ep >= 10 else 1] += 1
    assert [(lv["level"], lv["min_points"], lv["members"]) for lv in levels["levels"]] == [
        (1, "0", expect[1]),
        (2, "10", expect[2]),
        (3, "20", expect[3]),
    ]

    ranked = sorted((c for c in held if held[c] > 0), key=lambda c: (-held[c], story.members[c].no))
    board = ok(client.get(mall.url("/board"), headers=mall.operator))
    assert [h["member"] for h in board["items"]] == ranked[:3]
    assert [h["rank"] for h in board["items"]] == list(range(1, len(ranked[:3]) + 1))
    assert [h["points"] for h in board["items"]] == [dec(held[c]) for c in ranked[:3]]
    assert all(h["partner"] == (held[h["member"]] >= 20) for h in board["items"])
    # a member sees names, not codes, except on their own row
    carol = token(client, mall, "carol")
    seen = ok(client.get(mall.url("/board"), headers=carol))["items"]
    assert [(h["member"], h["me"]) for h in seen] == [
        (c if c == "carol" else None, c == "carol") for c in ranked[:3]
    ]
    assert {h["display_name"] for h in seen} >= {"Carol C."} or "carol" not in ranked[:3]
    # pages of the board
    pages = _all(client, mall.url("/board?limit=1"), mall.operator)
    assert [h["rank"] for h in pages] == list(range(1, min(3, len(ranked)) + 1))

    # the board stops at board_size
    ok(
        client.post(
            mall.url("/param-changes"), json={"params": {"board_size": "1"}}, headers=mall.operator
        ),
        201,
    )
    top = ok(client.get(mall.url("/board"), headers=mall.operator))
    assert ([h["member"] for h in top["items"]], top["next_cursor"]) == (ranked[:1], None)

    partners = ok(client.get(mall.url("/partners"), headers=mall.operator))
    assert [p["member"] for p in partners["items"]] == [
        c for c in sorted(held, key=lambda c: story.members[c].no) if held[c] >= 20
    ]
    assert_error(client.get(mall.url("/partners"), headers=mall.member), 403, "forbidden")
    assert_error(client.get(mall.url("/partners"), headers=mall.merchant), 403, "forbidden")


def test_holdings(client: TestClient, mall: Mall, story: Economy) -> None:
    num, den = story.price_ratio()
    for code in ("alice", "bob", "dave"):
        m = story.members[code]
        got = ok(client.get(mall.url(f"/members/{code}/holdings"), headers=mall.operator))
        value = (m.ep * num / den).quantize(D("0.01"), rounding=ROUND_DOWN)
        sell = (m.ep * num * D("0.9") / den).quantize(D("0.01"), rounding=ROUND_DOWN)
        assert got["points"] == dec(m.ep)
        assert D(got["value"]) == value
        assert D(got["sell_value"]) == sell
        assert D(got["stable"]) == m.sp
        assert D(got["quota_remaining"]) == m.quota
        assert D(got["spent"]) == m.spent
        assert D(got["dividends"]) == m.dividends
        assert got["exited"] is m.exited
        assert got["level"] == (3 if m.ep >= 20 else 2 if m.ep >= 10 else 1)
        assert got["partner"] is (m.ep >= 20)
    alice = ok(client.get(mall.url("/members/alice/holdings"), headers=mall.member))
    assert (alice["exited"], alice["points"], alice["value"]) == (True, "0", "0.00")
    # a registered member who never moved value
    add_member(client, mall, "erin")
    erin = ok(client.get(mall.url("/members/erin/holdings"), headers=mall.operator))
    assert (erin["points"], erin["stable"], erin["level"], erin["partner"]) == (
        "0",
        "0.00",
        1,
        False,
    )
    assert_error(client.get(mall.url("/members/bob/holdings"), headers=mall.member), 404)
    assert_error(client.get(mall.url("/members/bob/holdings"), headers=mall.merchant), 403)


def _all(client: TestClient, url: str, headers: dict[str, str]) -> list[Any]:
    items: list[Any] = []
    cursor = None
    while True:
        sep = "&" if "?" in url else "?"
        page = ok(client.get(url + (f"{sep}cursor={cursor}" if cursor else ""), headers=headers))
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def test_reward_history(client: TestClient, mall: Mall, story: Economy) -> None:
    alice = _all(client, mall.url("/members/alice/rewards?limit=1"), mall.member)
    assert [(r["category"], r["asset"], r["kind"]) for r in alice] == [
        ("exit_payout", "SP", "purchase"),  # bob's purchase lifted the price past her quota
        ("referral_points", "EP", "purchase"),
        ("purchase_points", "EP", "purchase"),
    ]
    a = story.members["alice"]
    assert a.exited
    assert D(alice[0]["amount"]) == a.sp  # all her SP came from the forced sale
    assert (alice[1]["amount"], alice[2]["amount"]) == ("1.05", "21")
    bob = _all(client, mall.url("/members/bob/rewards"), mall.operator)
    assert [(r["category"], r["kind"]) for r in bob] == [
        ("exit_payout", "purchase"),  # dave's purchase
        ("purchase_points", "purchase"),
    ]
    for code in ("carol", "dave"):
        m = story.members[code]
        got = _all(client, mall.url(f"/members/{code}/rewards"), mall.operator)
        assert [(r["category"], r["kind"]) for r in got] == [
            ("dividend", "close_day"),
            ("purchase_points", "purchase"),
        ]
        assert D(got[0]["amount"]) == m.dividends > 0
        assert got[1]["amount"] == dec(m.ep)
    # the full history shows every movement; the rewards are a subset of it
    full = _all(client, mall.url("/members/bob/wallet/history?asset=all"), mall.operator)
    assert [r["category"] for r in full] == ["exit_payout", "forced_exit", "purchase_points"]
    assert {(r["seq"], r["amount"]) for r in bob} <= {(r["seq"], r["amount"]) for r in full}
    assert_error(client.get(mall.url("/members/bob/rewards"), headers=mall.member), 404)


def test_points_history_with_the_price_around_each_move(
    client: TestClient, mall: Mall, story: Economy
) -> None:
    prices = {
        p["seq"]: p["price"]
        for p in ok(client.get(mall.url("/economy/history"), headers=mall.operator))["items"]
    }
    alice = _all(client, mall.url("/members/alice/points/history?limit=1"), mall.member)
    assert [(r["category"], r["direction"], r["seq"]) for r in alice] == [
        ("forced_exit", "out", 2),  # bob's purchase lifted the price past her quota (R7)
        ("referral_points", "in", 2),
        ("purchase_points", "in", 1),
    ]
    assert (alice[1]["amount"], alice[2]["amount"]) == ("1.05", "21")
    assert D(alice[0]["amount"]) == D("22.05")  # all she held
    for r in alice:
        assert r["asset"] == "EP"
        assert r["price_after"] == prices[r["seq"]]
        assert r["price_before"] == prices.get(r["seq"] - 1)
    assert alice[2]["price_before"] is None  # the tenant's first transaction
    assert alice[1]["price_before"] == "1.4286"  # 100 x 0.3 / 21: what alice's purchase left
    # the same movements, in the same order, as the EP side of the wallet history
    plain = _all(client, mall.url("/members/alice/wallet/history?asset=EP"), mall.operator)
    assert [(r["seq"], r["category"], r["amount"]) for r in plain] == [
        (r["seq"], r["category"], r["amount"]) for r in alice
    ]
    dave = _all(client, mall.url("/members/dave/points/history"), mall.operator)
    assert [r["category"] for r in dave] == ["purchase_points"]
    assert dave[0]["amount"] == dec(story.members["dave"].ep)
    # a member sees their own history only; a merchant none
    assert_error(client.get(mall.url("/members/bob/points/history"), headers=mall.member), 404)
    assert_error(client.get(mall.url("/members/bob/points/history"), headers=mall.merchant), 403)
    add_member(client, mall, "erin")
    erin = ok(client.get(mall.url("/members/erin/points/history"), headers=mall.operator))
    assert erin == {"items": [], "next_cursor": None}


# ----------------------------------------------------------------------------- isolation


READ_ROUTES = [
    "/economy",
    "/economy/history",
    "/levels",
    "/board",
    "/partners",
    "/members/alice/holdings",
    "/members/alice/rewards",
    "/members/alice/points/history",
]


def test_every_read_route_is_in_the_table() -> None:
    from tokenmall.api.routes.reads import router  # noqa: PLC0415

    ours = {r.path.removeprefix("/v1/tenants/{tenant}") for r in router.routes}  # type: ignore[attr-defined]
    assert ours == {p.replace("alice", "{member}") for p in READ_ROUTES}


@pytest.mark.parametrize("path", READ_ROUTES)
def test_another_tenants_credentials_get_404(client: TestClient, mall: Mall, path: str) -> None:
    other = make_mall(client)
    for headers in (other.operator, other.member, other.merchant):
        r = client.get(mall.url(path), headers=headers)
        assert_error(r, 404, "not_found")
        assert r.json()["error"]["message"] == f"no tenant {mall.code!r}"
    assert client.get(mall.url(path), headers=mall.operator).status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "/economy/history?cursor=garbage",
        "/economy/history?from=yesterday",
        "/economy/history?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
        "/economy/history?from=1900-01-01T00:00:00Z",
        "/economy/history?to=99999-01-01",
        "/economy/history?limit=0",
        "/board?cursor=YzE6LTE",
        "/board?limit=501",
        "/partners?cursor=%FF",
        "/members/alice/rewards?cursor=garbage",
        "/members/alice/rewards?limit=-1",
        "/members/nobody/holdings",
        "/members/nobody/rewards",
        "/members/nobody/points/history",
        "/members/alice/points/history?cursor=garbage",
        "/members/alice/points/history?limit=501",
        f"/members/{'x' * 65}/holdings",
    ],
)
def test_bad_queries_are_4xx(client: TestClient, mall: Mall, query: str) -> None:
    r = client.get(mall.url(query), headers=mall.operator)
    assert 400 <= r.status_code < 500, r.text
    assert_error(r, r.status_code)


def test_a_board_cursor_past_the_end_is_an_empty_page(client: TestClient, mall: Mall) -> None:
    # cursor 999 ("c1:999"): beyond board_size, nothing to show, not an error
    got = ok(client.get(mall.url("/board?cursor=YzE6OTk5"), headers=mall.operator))
    assert got == {"items": [], "next_cursor": None}
