"""The SP wallet over HTTP, on SQLite and PostgreSQL: balance and history, conversions with
Idempotency-Key, withdrawals through review and payout (notification, synchronous answer,
failure, provider outage), access rules and bad input."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from api_helpers import Mall, assert_error, bearer, make_mall, ok
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tokenmall.domain.economy import Purchase
from tokenmall.payments import PaymentError, PayoutAnswer, PayoutStatus
from tokenmall.service import wallet
from tokenmall.service.ledger import Ledger
from tokenmall.store import schema as s

D = Decimal


def ctx(client: TestClient) -> Any:
    app: Any = client.app
    return app.state.tokenmall


def tid(client: TestClient, mall: Mall) -> int:
    return int(ctx(client).tenant_id(mall.code))


def ledger(client: TestClient) -> Ledger:
    return ctx(client).ledger  # type: ignore[no-any-return]


def buy(client: TestClient, mall: Mall, member: str, amount: str, order: str) -> None:
    """A settled purchase straight through the ledger (the order flow is tested elsewhere)."""
    out = ledger(client).submit(
        tid(client, mall), [(f"buy:{order}", Purchase(order, member, D(amount)))]
    )
    assert out[0].status == "applied", out


def key(k: str) -> dict[str, str]:
    return {"Idempotency-Key": k}


def post(client: TestClient, mall: Mall, path: str, body: Any, who: dict[str, str], k: str) -> Any:
    return client.post(mall.url(path), json=body, headers={**who, **key(k)})


def set_params(client: TestClient, mall: Mall, **params: str) -> None:
    ok(client.post(mall.url("/param-changes"), json={"params": params}, headers=mall.operator), 201)


def balances(client: TestClient, mall: Mall) -> dict[tuple[str, str], Decimal]:
    return ledger(client).balances(tid(client, mall))


def alice_with_sp(client: TestClient, mall: Mall) -> None:
    """alice buys 100 (21 EP at price 1) and sells them all: 21 x 30/21 x 0.9 = 27.00 SP."""
    buy(client, mall, "alice", "100", "o-alice")
    got = ok(post(client, mall, "/members/alice/wallet/sell", {"points": "21"}, mall.member, "s"))
    assert got["figures"]["payout"] == "27"


# ----------------------------------------------------------------------------- conversions


def test_sell_replays_by_key_and_shows_in_history(client: TestClient, mall: Mall) -> None:
    buy(client, mall, "alice", "100", "o1")
    url = "/members/alice/wallet/sell"
    first = post(client, mall, url, {"points": "10"}, mall.member, "sell-1")
    body = ok(first)
    assert "Idempotent-Replayed" not in first.headers
    # 10 x 30/21 x 0.9 = 12.857... cut to the fen
    assert body["kind"] == "sell"
    assert body["figures"]["payout"] == "12.85"
    assert body["replayed"] is False
    assert body["wallet"] == {
        "member": "alice",
        "stable": "12.85",
        "pending_withdrawals": "0.00",
        "points": "11",
    }
    again = post(client, mall, url, {"points": "10"}, mall.member, "sell-1")
    assert again.headers["Idempotent-Replayed"] == "true"
    replay = ok(again)
    assert replay["replayed"] is True
    assert replay["seq"] == body["seq"]
    assert replay["figures"] == body["figures"]
    assert replay["wallet"]["points"] == "11"  # sold once
    assert_error(
        post(client, mall, url, {"points": "5"}, mall.member, "sell-1"), 409, "idempotency_conflict"
    )
    # the operator acts for the member under the member's key space: same key, same answer
    assert ok(post(client, mall, url, {"points": "10"}, mall.operator, "sell-1"))["replayed"]

    sp = ok(client.get(mall.url("/members/alice/wallet/history"), headers=mall.member))
    assert sp["next_cursor"] is None
    assert [(e["category"], e["direction"], e["amount"], e["kind"]) for e in sp["items"]] == [
        ("sale_payout", "in", "12.85", "sell")
    ]
    both = ok(client.get(mall.url("/members/alice/wallet/history?asset=all"), headers=mall.member))
    assert [(e["asset"], e["category"], e["amount"]) for e in both["items"]] == [
        ("SP", "sale_payout", "12.85"),
        ("EP", "sold_points", "10"),
        ("EP", "purchase_points", "21"),
    ]


def test_history_pages_newest_first(client: TestClient, mall: Mall) -> None:
    buy(client, mall, "alice", "100", "o1")
    for i in range(5):
        ok(post(client, mall, "/members/alice/wallet/sell", {"points": "1"}, mall.member, f"k{i}"))
    seen: list[int] = []
    cursor = None
    while True:
        q = "?asset=all&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = ok(client.get(mall.url(f"/members/alice/wallet/history{q}"), headers=mall.member))
        assert len(page["items"]) <= 2
        seen += [e["seq"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 11  # 21 EP bought, then 5 x (1 EP burned, SP in)
    assert seen == sorted(seen, reverse=True)


def test_exchange_and_buy_points(client: TestClient, mall: Mall) -> None:
    buy(client, mall, "alice", "100", "o1")
    ex = ok(post(client, mall, "/members/alice/wallet/exchange", {"points": "5"}, mall.member, "x"))
    assert ex["figures"]["stable"] == "7.14"  # 5 x 30/21, cut to the fen
    assert ex["price"] == "1.4286"  # the pool and the price do not move (R5)
    bp = post(
        client, mall, "/members/alice/wallet/buy-points", {"stable": "1.00"}, mall.member, "b"
    )
    assert ok(bp)["figures"]["points"] == "0.7"  # 1 x 21/30
    assert ok(bp)["wallet"] == {
        "member": "alice",
        "stable": "6.14",
        "pending_withdrawals": "0.00",
        "points": "16.7",
    }
    too_much = post(
        client, mall, "/members/alice/wallet/buy-points", {"stable": "100.00"}, mall.member, "b2"
    )
    assert_error(too_much, 409, "insufficient_balance")
    cats = [
        e["category"]
        for e in ok(
            client.get(mall.url("/members/alice/wallet/history?asset=all"), headers=mall.member)
        )["items"]
    ]
    assert cats == [
        "bought_points",
        "bought_points",
        "exchange",
        "exchanged_points",
        "purchase_points",
    ]


def test_a_member_without_ledger_history_has_an_empty_wallet(
    client: TestClient, mall: Mall
) -> None:
    got = ok(client.get(mall.url("/members/alice/wallet"), headers=mall.member))
    assert got == {
        "member": "alice",
        "stable": "0.00",
        "pending_withdrawals": "0.00",
        "points": "0",
    }
    hist = ok(client.get(mall.url("/members/alice/wallet/history"), headers=mall.member))
    assert hist == {"items": [], "next_cursor": None}
    sell = post(client, mall, "/members/alice/wallet/sell", {"points": "1"}, mall.member, "k")
    assert_error(sell, 409, "insufficient_balance")
    wd = post(
        client,
        mall,
        "/members/alice/withdrawals",
        {"amount": "5.00", "account": "oid"},
        mall.member,
        "k",
    )
    assert_error(wd, 409, "insufficient_balance")


# ----------------------------------------------------------------------------- withdrawals


def _withdraw(client: TestClient, mall: Mall, amount: str, k: str, account: str = "oid-a") -> Any:
    body = {"amount": amount, "account": account}
    return post(client, mall, "/members/alice/withdrawals", body, mall.member, k)


def test_withdrawal_paid_through_the_provider(client: TestClient, mall: Mall) -> None:
    set_params(client, mall, withdraw_min="5", withdraw_fee_rate="0.015")
    alice_with_sp(client, mall)
    world_before = balances(client, mall)[("world", "CNY")]
    created = _withdraw(client, mall, "10.00", "w1")
    wd = ok(created, 201)
    assert (wd["amount"], wd["fee"], wd["net"], wd["status"]) == (
        "10.00",
        "0.15",
        "9.85",
        "requested",
    )
    assert wd["id"].startswith("wd_")
    # the SP left the wallet at request time
    w = ok(client.get(mall.url("/members/alice/wallet"), headers=mall.member))
    assert (w["stable"], w["pending_withdrawals"]) == ("17.00", "10.00")
    # a retry answers the same withdrawal; the key with another amount is refused
    again = _withdraw(client, mall, "10.00", "w1")
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == wd["id"]
    assert_error(_withdraw(client, mall, "11.00", "w1"), 409, "idempotency_conflict")
    assert_error(_withdraw(client, mall, "10.00", "w1", account="other"), 409)
    assert_error(_withdraw(client, mall, "4.99", "w2"), 422, "invalid_command")  # under minimum
    assert_error(_withdraw(client, mall, "17.01", "w3"), 409, "insufficient_balance")

    queue = ok(client.get(mall.url("/withdrawals?status=requested"), headers=mall.operator))
    assert [x["id"] for x in queue["items"]] == [wd["id"]]
    mine = ok(client.get(mall.url("/members/alice/withdrawals"), headers=mall.member))
    assert [x["id"] for x in mine["items"]] == [wd["id"]]
    approve = mall.url(f"/withdrawals/{wd['id']}/approve")
    assert_error(client.post(approve, headers=mall.member), 403, "forbidden")
    assert_error(client.post(approve, headers=mall.merchant), 403, "forbidden")

    paid = ok(client.post(approve, json={"note": "ok"}, headers=mall.operator))
    assert paid["status"] == "paid"
    assert paid["reviewer"].startswith("operator-key:")
    assert paid["note"] == "ok"
    assert paid["payout_sent_at"] is not None
    assert paid["finished_at"] is not None
    assert_error(client.post(approve, headers=mall.operator), 409, "conflict")
    w = ok(client.get(mall.url("/members/alice/wallet"), headers=mall.member))
    assert (w["stable"], w["pending_withdrawals"]) == ("17.00", "0.00")
    bal = balances(client, mall)
    assert bal[("world", "CNY")] - world_before == D("9.85")  # the net left the platform
    assert bal[("payout_hold", "CNY")] == 0
    assert ledger(client).verify_chain(tid(client, mall)) is None
    # the payout's notification went through the payment hub: recorded once
    with ctx(client).engine.connect() as conn:
        e = s.provider_events.c
        kinds = conn.execute(
            select(e.kind, e.outcome).where(e.tenant_id == tid(client, mall))
        ).all()
    assert [tuple(k) for k in kinds] == [("payout_succeeded", "applied")]
    hist = ok(client.get(mall.url("/members/alice/wallet/history"), headers=mall.member))
    assert hist["items"][0]["category"] == "withdrawal"
    assert hist["items"][0]["amount"] == "10.00"


def test_rejection_returns_everything(client: TestClient, mall: Mall) -> None:
    set_params(client, mall, withdraw_fee_rate="0.1")
    alice_with_sp(client, mall)
    wd = ok(_withdraw(client, mall, "20.00", "w1"), 201)
    assert wd["fee"] == "2.00"
    reject = mall.url(f"/withdrawals/{wd['id']}/reject")
    got = ok(client.post(reject, json={"note": "incomplete KYC"}, headers=mall.operator))
    assert (got["status"], got["note"]) == ("rejected", "incomplete KYC")
    w = ok(client.get(mall.url("/members/alice/wallet"), headers=mall.member))
    assert (w["stable"], w["pending_withdrawals"]) == ("27.00", "0.00")  # the fee came back too
    assert_error(client.post(reject, headers=mall.operator), 409, "conflict")
    approve = mall.url(f"/withdrawals/{wd['id']}/approve")
    assert_error(client.post(approve, headers=mall.operator), 409, "conflict")
    cats = [
        e["category"]
        for e in ok(client.get(mall.url("/members/alice/wallet/history"), headers=mall.member))[
            "items"
        ]
    ]
    assert cats == ["withdrawal_returned", "withdrawal", "sale_payout"]


def test_a_member_cancels_a_withdrawal_awaiting_review(client: TestClient, mall: Mall) -> None:
    set_params(client, mall, withdraw_fee_rate="0.1")
    alice_with_sp(client, mall)
    wd = ok(_withdraw(client, mall, "20.00", "w1"), 201)
    cancel = mall.url(f"/withdrawals/{wd['id']}/cancel")
    token = ok(client.post(mall.url("/members/bob/tokens"), json={}, headers=mall.operator), 201)
    # another member: as if it did not exist; a merchant key: not its business
    assert_error(client.post(cancel, headers=bearer(token["token"])), 404, "not_found")
    assert_error(client.post(cancel, headers=mall.merchant), 403, "forbidden")
    assert_error(client.post(mall.url("/withdrawals/wd_nothing/cancel"), headers=mall.member), 404)
    got = ok(client.post(cancel, headers=mall.member))
    assert (got["status"], got["note"]) == ("cancelled", "cancelled by the member")
    assert got["reviewer"] is not None
    assert got["finished_at"] is not None
    w = ok(client.get(mall.url("/members/alice/wallet"), headers=mall.member))
    assert (w["stable"], w["pending_withdrawals"]) == ("27.00", "0.00")  # the fee came back too
    # final: cancelling again, approving or rejecting it is a conflict and changes nothing
    for action in ("cancel", "approve", "reject"):
        r = client.post(mall.url(f"/withdrawals/{wd['id']}/{action}"), headers=mall.operator)
        assert_error(r, 409, "conflict")
    w = ok(client.get(mall.url("/members/alice/wallet"), headers=mall.member))
    assert w["stable"] == "27.00"
    queue = ok(client.get(mall.url("/withdrawals?status=requested"), headers=mall.operator))
    assert queue["items"] == []
    done = ok(client.get(mall.url("/withdrawals?status=cancelled"), headers=mall.operator))
    assert [x["id"] for x in done["items"]] == [wd["id"]]
    assert balances(client, mall)[("payout_hold", "CNY")] == 0
    assert ledger(client).verify_chain(tid(client, mall)) is None


def _pages(client: TestClient, url: str, who: dict[str, str]) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor = None
    while True:
        got = ok(client.get(url + (f"&cursor={cursor}" if cursor else ""), headers=who))
        pages.append([x["id"] for x in got["items"]])
        cursor = got["next_cursor"]
        if cursor is None:
            return pages


def test_withdrawal_lists_page_oldest_or_newest_first(client: TestClient, mall: Mall) -> None:
    alice_with_sp(client, mall)
    made = [ok(_withdraw(client, mall, "1.00", f"p{i}"), 201)["id"] for i in range(5)]
    mine = "/members/alice/withdrawals?limit=2"
    oldest = _pages(client, mall.url(mine), mall.member)
    assert oldest == [made[0:2], made[2:4], made[4:]]
    newest = _pages(client, mall.url(mine + "&order=newest"), mall.member)
    assert newest == [made[4:2:-1], made[2:0:-1], made[:1]]
    queue = "/withdrawals?limit=3&status=requested&member=alice"
    assert _pages(client, mall.url(queue), mall.operator) == [made[:3], made[3:]]
    assert _pages(client, mall.url(queue + "&order=newest"), mall.operator) == [
        made[:1:-1],
        made[1::-1],
    ]
    assert_error(client.get(mall.url(mine + "&order=random"), headers=mall.member), 422)


def test_an_approved_withdrawal_cannot_be_cancelled(client: TestClient, mall: Mall) -> None:
    alice_with_sp(client, mall)
    wd = ok(_withdraw(client, mall, "7.00", "w1"), 201)
    paid = ok(client.post(mall.url(f"/withdrawals/{wd['id']}/approve"), headers=mall.operator))
    assert paid["status"] == "paid"
    r = client.post(mall.url(f"/withdrawals/{wd['id']}/cancel"), headers=mall.member)
    assert_error(r, 409, "conflict")
    w = ok(client.get(mall.url("/members/alice/wallet"), headers=mall.member))
    assert w["stable"] == "20.00"
    # an operator may cancel a requested one on the member's behalf
    wd2 = ok(_withdraw(client, mall, "5.00", "w2"), 201)
    got = ok(client.post(mall.url(f"/withdrawals/{wd2['id']}/cancel"), headers=mall.operator))
    assert (got["status"], got["note"]) == ("cancelled", "cancelled on the member's behalf")
    assert ok(client.get(mall.url("/members/alice/wallet"), headers=mall.member))["stable"] == (
        "20.00"
    )


def test_failed_payout_returns_the_sp(client: TestClient, mall: Mall) -> None:
    alice_with_sp(client, mall)
    app: Any = client.app
    app.state.orders.hub.sandbox(mall.code).gateway.block_account("closed-wallet")
    wd = ok(_withdraw(client, mall, "27.00", "w1", account="closed-wallet"), 201)
    got = ok(client.post(mall.url(f"/withdrawals/{wd['id']}/approve"), headers=mall.operator))
    assert got["status"] == "failed"
    w = ok(client.get(mall.url("/members/alice/wallet"), headers=mall.member))
    assert w["stable"] == "27.00"
    assert balances(client, mall)[("payout_hold", "CNY")] == 0


def test_a_payout_notification_delivered_five_times_pays_once(
    client: TestClient, mall: Mall
) -> None:
    alice_with_sp(client, mall)
    wd = ok(_withdraw(client, mall, "27.00", "w1"), 201)
    assert (
        ok(client.post(mall.url(f"/withdrawals/{wd['id']}/approve"), headers=mall.operator))[
            "status"
        ]
        == "paid"
    )
    app: Any = client.app
    gw = app.state.orders.hub.sandbox(mall.code).gateway
    event_ids = [d.event_id for d in gw.deliveries if b"payout" in d.request.body]
    assert len(set(event_ids)) == 1
    world = balances(client, mall)[("world", "CNY")]
    captured: list[tuple[dict[str, str], bytes]] = []
    for _ in range(5):
        gw.redeliver(event_ids[0], lambda h, b: captured.append((dict(h), b)))
        headers, body = captured[-1]
        r = client.post(mall.url("/payments/sandbox/notify"), content=body, headers=headers)
        assert r.status_code < 300, r.text
    assert balances(client, mall)[("world", "CNY")] == world
    with ctx(client).engine.connect() as conn:
        t = s.ledger_tx.c
        n = conn.execute(
            select(func.count()).where(t.tenant_id == tid(client, mall), t.kind == "payout_result")
        ).scalar_one()
    assert n == 1
    assert (
        ok(client.get(mall.url(f"/withdrawals/{wd['id']}"), headers=mall.member))["status"]
        == "paid"
    )


class _Synchronous:
    """A provider that answers payouts at once (some providers do), or fails to be reached."""

    def __init__(self, status: PayoutStatus | None) -> None:
        self.status = status
        self.calls = 0

    def payout(
        self, tenant_id: int, tenant: str, payout_id: str, account: str, amount: Decimal
    ) -> PayoutAnswer:
        self.calls += 1
        if self.status is None:
            raise PaymentError("provider unreachable")
        return PayoutAnswer("sync", payout_id, account, amount, self.status, f"p-{payout_id}")


@pytest.mark.parametrize(
    ("status", "final", "stable"),
    [(PayoutStatus.SUCCEEDED, "paid", "0.00"), (PayoutStatus.FAILED, "failed", "27.00")],
)
def test_a_synchronous_provider_answer_is_applied(
    client: TestClient, mall: Mall, status: PayoutStatus, final: str, stable: str
) -> None:
    alice_with_sp(client, mall)
    app: Any = client.app
    app.state.payouts = _Synchronous(status)
    wd = ok(_withdraw(client, mall, "27.00", "w1"), 201)
    got = ok(client.post(mall.url(f"/withdrawals/{wd['id']}/approve"), headers=mall.operator))
    assert got["status"] == final
    assert (
        ok(client.get(mall.url("/members/alice/wallet"), headers=mall.member))["stable"] == stable
    )


def test_an_unreachable_provider_is_retried_by_the_scheduler(
    client: TestClient, mall: Mall
) -> None:
    alice_with_sp(client, mall)
    app: Any = client.app
    down = _Synchronous(None)
    app.state.payouts = down
    wd = ok(_withdraw(client, mall, "27.00", "w1"), 201)
    got = ok(client.post(mall.url(f"/withdrawals/{wd['id']}/approve"), headers=mall.operator))
    assert got["status"] == "approved"
    assert got["payout_sent_at"] is not None
    # too early to resend: a payout may still be on its way
    assert wallet.retry_payouts(ledger(client), down) == 0
    up = _Synchronous(PayoutStatus.SUCCEEDED)
    later = wallet.RESEND_AFTER_SECONDS + 1e10
    assert wallet.retry_payouts(ledger(client), up, now=later) == 1
    assert up.calls == 1
    assert (
        ok(client.get(mall.url(f"/withdrawals/{wd['id']}"), headers=mall.operator))["status"]
        == "paid"
    )
    assert wallet.retry_payouts(ledger(client), up, now=later) == 0


def test_a_lost_notification_is_delivered_again_by_the_retry(
    client: TestClient, mall: Mall, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice_with_sp(client, mall)
    app: Any = client.app
    service = app.state.orders
    real = service.handle_notification
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise PaymentError("our endpoint was down")
        return real(*args, **kwargs)

    monkeypatch.setattr(service, "handle_notification", flaky)
    wd = ok(_withdraw(client, mall, "27.00", "w1"), 201)
    got = ok(client.post(mall.url(f"/withdrawals/{wd['id']}/approve"), headers=mall.operator))
    assert got["status"] == "approved"  # the provider took it; we never heard back
    providers = app.state.payouts
    later = wallet.RESEND_AFTER_SECONDS + 1e10
    assert wallet.retry_payouts(ledger(client), providers, now=later) == 1
    assert (
        ok(client.get(mall.url(f"/withdrawals/{wd['id']}"), headers=mall.operator))["status"]
        == "paid"
    )
    gw = service.hub.sandbox(mall.code).gateway
    payouts = [d for d in gw.deliveries if b"payout" in d.request.body]
    assert len({d.event_id for d in payouts}) == 1  # one payout, its notification sent twice
    assert len(payouts) == 2


# ----------------------------------------------------------------------------- access


def test_members_reach_only_their_own_wallet(client: TestClient, mall: Mall) -> None:
    alice_with_sp(client, mall)
    wd = ok(_withdraw(client, mall, "5.00", "w1"), 201)
    token = ok(client.post(mall.url("/members/bob/tokens"), json={}, headers=mall.operator), 201)
    bob = bearer(token["token"])
    for method, path in [
        ("GET", "/members/alice/wallet"),
        ("GET", "/members/alice/wallet/history"),
        ("GET", "/members/alice/withdrawals"),
        ("GET", f"/withdrawals/{wd['id']}"),
        ("POST", "/members/alice/wallet/sell"),
    ]:
        r = client.request(
            method, mall.url(path), headers={**bob, **key("k")}, json={"points": "1"}
        )
        assert_error(r, 404, "not_found")
        m = client.request(
            method, mall.url(path), headers={**mall.merchant, **key("k")}, json={"points": "1"}
        )
        assert m.status_code in (403, 404), m.text
    assert_error(client.get(mall.url("/withdrawals"), headers=bob), 403, "forbidden")
    assert_error(client.get(mall.url("/members/nobody/wallet"), headers=mall.operator), 404)
    assert_error(client.get(mall.url("/withdrawals/wd_nothing"), headers=mall.operator), 404)


# Every route of this module with a request that would succeed for its own tenant.
WALLET_ROUTES = [
    ("GET", "/members/{member}/wallet", None),
    ("GET", "/members/{member}/wallet/history", None),
    ("POST", "/members/{member}/wallet/sell", {"points": "1"}),
    ("POST", "/members/{member}/wallet/exchange", {"points": "1"}),
    ("POST", "/members/{member}/wallet/buy-points", {"stable": "0.01"}),
    ("POST", "/members/{member}/withdrawals", {"amount": "1.00", "account": "x"}),
    ("GET", "/members/{member}/withdrawals", None),
    ("GET", "/withdrawals", None),
    ("GET", "/withdrawals/{withdrawal_id}", None),
    ("POST", "/withdrawals/{withdrawal_id}/approve", None),
    ("POST", "/withdrawals/{withdrawal_id}/reject", None),
    ("POST", "/withdrawals/{withdrawal_id}/cancel", None),
]


def test_every_wallet_route_is_in_the_table() -> None:
    from tokenmall.api.routes.wallet import router  # noqa: PLC0415

    ours = {
        (m, r.path.removeprefix("/v1/tenants/{tenant}"))  # type: ignore[attr-defined]
        for r in router.routes
        for m in r.methods  # type: ignore[attr-defined]
    }
    assert ours == {(m, p) for m, p, _ in WALLET_ROUTES}


@pytest.mark.parametrize(("method", "path", "body"), WALLET_ROUTES)
def test_another_tenants_credentials_get_404(
    client: TestClient, mall: Mall, method: str, path: str, body: Any
) -> None:
    other = make_mall(client)
    alice_with_sp(client, mall)
    buy(client, mall, "alice", "100", "o-more")  # points to sell and exchange
    ok(post(client, mall, "/members/alice/wallet/exchange", {"points": "2"}, mall.member, "t"))
    wd = ok(_withdraw(client, mall, "5.00", "w-iso"), 201)
    url = mall.url(path.format(member="alice", withdrawal_id=wd["id"]))
    for headers in (other.operator, other.member, other.merchant):
        r = client.request(method, url, headers={**headers, **key("iso")}, json=body)
        assert_error(r, 404, "not_found")
        assert r.json()["error"]["message"] == f"no tenant {mall.code!r}"
    own = client.request(method, url, headers={**mall.operator, **key("iso")}, json=body)
    assert own.status_code < 300, own.text


# ----------------------------------------------------------------------------- bad input


BAD_REQUESTS = [
    ("/members/alice/wallet/sell", {"points": 1}, "k"),  # a JSON number
    ("/members/alice/wallet/sell", {"points": "-1"}, "k"),
    ("/members/alice/wallet/sell", {"points": "0"}, "k"),
    ("/members/alice/wallet/sell", {"points": "1.123456789"}, "k"),  # 9 places
    ("/members/alice/wallet/sell", {"points": "1e3"}, "k"),
    ("/members/alice/wallet/sell", {"points": "NaN"}, "k"),
    ("/members/alice/wallet/sell", {"points": "9" * 40}, "k"),
    ("/members/alice/wallet/sell", {"points": "1", "extra": 1}, "k"),
    ("/members/alice/wallet/sell", {}, "k"),
    ("/members/alice/wallet/sell", {"points": "1"}, ""),  # empty key
    ("/members/alice/wallet/sell", {"points": "1"}, "has space"),
    ("/members/alice/wallet/sell", {"points": "1"}, "x" * 65),
    ("/members/alice/wallet/sell", {"points": "1"}, None),  # no key
    ("/members/alice/wallet/buy-points", {"stable": "0.001"}, "k"),
    ("/members/alice/wallet/buy-points", {"stable": "0"}, "k"),
    ("/members/alice/wallet/exchange", {"points": None}, "k"),
    ("/members/alice/withdrawals", {"amount": "0", "account": "a"}, "k"),
    ("/members/alice/withdrawals", {"amount": "1.001", "account": "a"}, "k"),
    ("/members/alice/withdrawals", {"amount": "1", "account": ""}, "k"),
    ("/members/alice/withdrawals", {"amount": "1", "account": "a b"}, "k"),
    ("/members/alice/withdrawals", {"amount": "1", "account": "x" * 129}, "k"),
    ("/members/alice/withdrawals", {"amount": "999999999.99", "account": "a"}, "k"),
    ("/members/alice/withdrawals", {"amount": 5, "account": "a"}, "k"),
    ("/members/alice/withdrawals", ["not", "an", "object"], "k"),
]


@pytest.mark.parametrize(("path", "body", "k"), BAD_REQUESTS)
def test_bad_input_is_a_4xx_json_error(
    client: TestClient, mall: Mall, path: str, body: Any, k: str | None
) -> None:
    buy(client, mall, "alice", "100", "o1")
    headers = dict(mall.member) if k is None else {**mall.member, **key(k)}
    r = client.post(mall.url(path), json=body, headers=headers)
    assert 400 <= r.status_code < 500, r.text
    assert_error(r, r.status_code)
    w = ok(client.get(mall.url("/members/alice/wallet"), headers=mall.member))
    assert (w["points"], w["stable"]) == ("21", "0.00")  # nothing moved


@pytest.mark.parametrize(
    "query",
    [
        "/members/alice/wallet/history?cursor=garbage",
        "/members/alice/wallet/history?asset=CNY",
        "/members/alice/wallet/history?limit=0",
        "/members/alice/wallet/history?limit=100000",
        "/withdrawals?status=lost",
        "/withdrawals?cursor=%00",
        "/members/alice/withdrawals?cursor=YzE6OTk5OTk5OTk5OTk5OTk5OTk5OTk5OQ",
    ],
)
def test_bad_queries_are_4xx(client: TestClient, mall: Mall, query: str) -> None:
    r = client.get(mall.url(query), headers=mall.operator)
    assert 400 <= r.status_code < 500, r.text
    assert_error(r, r.status_code)


def test_review_of_an_unknown_or_malformed_withdrawal_is_404_or_422(
    client: TestClient, mall: Mall
) -> None:
    for wid in ("wd_0000", "nope"):
        r = client.post(mall.url(f"/withdrawals/{wid}/approve"), headers=mall.operator)
        assert_error(r, 404, "not_found")
    r = client.post(mall.url(f"/withdrawals/{'w' * 41}/reject"), headers=mall.operator)
    assert_error(r, 422)
    r = client.post(
        mall.url("/withdrawals/wd_0/reject"), json={"note": "x" * 501}, headers=mall.operator
    )
    assert_error(r, 422)
