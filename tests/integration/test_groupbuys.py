"""Group buys in the running service, on SQLite and PostgreSQL: each mode with worked numbers,
the expired-group path, cancel before full, a lottery campaign with losers' compensation, the
activity fund released by tasks, and refunds from outside the group.

Every place is an order paid through the sandbox provider and held in escrow: no EP, no
quota, no reward until its group confirms it; a refunded place never counted as a purchase.
"""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import pytest
from groupbuy_helpers import Mall, mall
from sqlalchemy import Engine

from tokenmall import bootstrap
from tokenmall.domain import draw
from tokenmall.domain.params import TenantParams
from tokenmall.service import catalog, members
from tokenmall.service.groupbuys import GroupFull, GroupStateError
from tokenmall.service.orders import OrderStateError
from tokenmall.settings import Settings

D = Decimal


def _multi(m: Mall, size: int = 3, price: str = "70", hours: str = "24") -> None:
    m.groups.create_offer(
        m.tid,
        actor="op",
        code="multi",
        sku_id=m.sku,
        mode="multi",
        price=D(price),
        size=size,
        deadline_hours=D(hours),
    )


def test_a_multi_group_that_fills_confirms_every_place_in_join_order_as_a_purchase(
    db_engine: Engine,
) -> None:
    m = mall(db_engine)
    _multi(m)
    g = m.open_paid("multi", "m000")
    assert g.state == "open"
    # held in escrow: paid, but no purchase yet (no EP, nothing spent), the order waits
    assert m.figures("m000")["m000"]["points"] == "0"
    assert m.status(m.place_of(g, "m000")) == "paid"
    with pytest.raises(OrderStateError):
        m.orders.settle_order(m.tid, m.place_of(g, "m000"))
    m.join_paid(g.public_id, "m001")
    g = m.join_paid(g.public_id, "m002")
    assert g.state == "succeeded"
    assert [p.status for p in g.places] == ["confirmed"] * 3
    # R1 on 70 each, in join order: 21 x 0.7 at 1, at 21/14.7, at 42/24.99
    f = m.figures("m000", "m001", "m002")
    assert [f[c]["points"] for c in ("m000", "m001", "m002")] == ["14.7", "10.29", "8.7465"]
    assert [f[c]["spent"] for c in ("m000", "m001", "m002")] == ["70"] * 3
    assert m.balance("pool") == D("63")
    assert all(m.status(p.order) == "settled" for p in g.places)
    assert m.stock() == 1000 - 3


def test_an_expired_group_fails_and_everyone_is_refunded_in_full_never_succeeded(
    db_engine: Engine,
) -> None:
    m = mall(db_engine)
    _multi(m, size=3, hours="1")
    g = m.open_paid("multi", "m000")
    m.join_paid(g.public_id, "m001")
    m.groups.join(m.tid, g.public_id, member="m002")  # reserved, never paid
    assert m.stock() == 1000 - 3
    assert m.groups.close_expired(m.clock.t + 3599) == 0
    assert m.groups.close_expired(m.clock.t + 3600) == 1
    g = m.groups.get_group(m.tid, g.public_id)
    assert g.state == "failed"
    assert [p.status for p in g.places] == ["refunded", "refunded", "released"]
    assert [m.status(p.order) for p in g.places] == ["refunded", "refunded", "cancelled"]
    f = m.figures("m000", "m001")
    assert f["m000"]["points"] == "0"
    assert f["m000"]["spent"] == "0"
    assert f["m000"]["stable"] == "0"  # no compensation for an expired group
    assert m.balance("escrow") == 0
    assert m.balance("pool") == 0
    assert m.stock() == 1000
    # a second run does nothing, and the failed group cannot be joined
    assert m.groups.close_expired(m.clock.t + 7200) == 0
    with pytest.raises(GroupStateError):
        m.groups.join(m.tid, g.public_id, member="m003")


def test_cancel_before_full_frees_the_place_and_refunds_at_once(db_engine: Engine) -> None:
    m = mall(db_engine)
    _multi(m, size=3)
    g = m.open_paid("multi", "m000")
    m.join_paid(g.public_id, "m001")
    g = m.groups.cancel(m.tid, g.public_id, member="m001")
    assert [p.status for p in g.places] == ["held", "refunded"]
    assert m.status(g.places[1].order) == "refunded"
    assert m.stock() == 1000 - 1
    m.join_paid(g.public_id, "m002")
    with pytest.raises(GroupStateError):  # the leader stays while others are in
        m.groups.cancel(m.tid, g.public_id, member="m000")
    m.join_paid(g.public_id, "m003")
    g = m.groups.get_group(m.tid, g.public_id)
    assert g.state == "succeeded"
    assert [p.member for p in g.places if p.status == "confirmed"] == ["m000", "m002", "m003"]
    assert m.figures("m001")["m001"]["spent"] == "0"


def test_a_full_group_refuses_another_place_before_any_payment(db_engine: Engine) -> None:
    m = mall(db_engine)
    _multi(m, size=2)
    g = m.groups.open_group(m.tid, offer="multi", member="m000")
    m.groups.join(m.tid, g.public_id, member="m001")  # reserved: the group has no free place
    with pytest.raises(GroupFull):
        m.groups.join(m.tid, g.public_id, member="m002")
    assert m.count("orders") == 2


def test_a_lottery_campaign_confirms_the_winning_groups_and_compensates_the_others(
    db_engine: Engine,
) -> None:
    m = mall(db_engine, members_=12)
    camp = m.groups.create_campaign(m.tid, code="c1", winners=1, actor="op")
    m.groups.create_offer(
        m.tid,
        actor="op",
        code="lot",
        sku_id=m.sku,
        mode="lottery",
        price=D(70),
        size=3,
        campaign="c1",
        compensation=D(10),
    )
    views = []
    for first in (0, 3, 6):
        g = m.open_paid("lot", f"m{first:03d}")
        m.join_paid(g.public_id, f"m{first + 1:03d}")
        views.append(m.join_paid(g.public_id, f"m{first + 2:03d}"))
    assert [v.state for v in views] == ["full"] * 3
    assert m.balance("escrow") == D(210) * 3
    record = m.groups.draw_campaign(m.tid, "c1")
    assert record["commitment"] == camp.commitment
    assert draw.verify(record) == record["winners"]
    assert record["candidates"] == [v.public_id for v in views]  # in fill order
    [won] = record["winners"]
    states = {v.public_id: m.groups.get_group(m.tid, v.public_id).state for v in views}
    assert sorted(states.values()) == ["lost", "lost", "succeeded"]
    for v in views:
        f = m.figures(*(p.member for p in v.places))
        for p in v.places:
            if v.public_id == won:
                assert m.status(p.order) == "settled"
                assert f[p.member]["spent"] == "70"
            else:
                assert m.status(p.order) == "refunded"
                assert f[p.member]["spent"] == "0"
                assert f[p.member]["points"] == "0"
                assert f[p.member]["stable"] == "10"  # compensation in SP
    assert m.balance("escrow") == 0
    # the next draw is committed to a fresh seed; the seed drawn is public
    after = m.groups.get_campaign(m.tid, "c1")
    assert after.commitment != camp.commitment
    assert after.draws == 1
    public = m.groups.public_group(won)
    assert public["seed"] == record["seed"]
    assert public["winners"] == [won]


def test_a_merchant_group_draws_its_winner_subsidises_the_others_and_pays_the_leader(
    db_engine: Engine,
) -> None:
    m = mall(db_engine, settle_days=7)
    m.groups.create_offer(
        m.tid,
        actor="op",
        code="mer",
        sku_id=m.sku,
        mode="merchant",
        price=D(70),
        size=3,
        winners=1,
        subsidy=D(5),
        commission_ratio=D("0.05"),
    )
    g = m.open_paid("mer", "m000")
    assert g.commitment is not None  # published when the group opened
    m.join_paid(g.public_id, "m001")
    g = m.join_paid(g.public_id, "m002")
    assert g.state == "succeeded"
    public = m.groups.public_group(g.public_id)
    assert draw.verify(public) == g.winners
    [winner] = g.winners
    losers = [p for p in g.places if p.member != winner]
    assert all(p.status == "refunded" for p in losers)
    f = m.figures("m000", "m001", "m002")
    for p in losers:  # refunded in full with the subsidy; the commission is not paid yet
        assert D(f[p.member]["stable"]) == D(5)
        assert f[p.member]["spent"] == "0"
    assert m.figures(winner)[winner]["spent"] == "0"  # confirmed, settles in 7 days
    # the leader's commission floor2(0.05 x 70 x 3) = 10.50 once the winner's order settles
    won = next(p for p in g.places if p.member == winner)
    m.orders.confirm_delivery(m.tid, won.order)
    m.orders.settle_order(m.tid, won.order)
    lead = D(m.figures("m000")["m000"]["stable"])
    assert lead == D("10.50") + (0 if winner == "m000" else D(5))


def test_an_activity_fund_is_released_by_tasks_one_step_a_day_and_forfeited_by_a_refund(
    db_engine: Engine,
) -> None:
    m = mall(db_engine)
    m.groups.create_offer(
        m.tid,
        actor="op",
        code="act",
        sku_id=m.sku,
        mode="activity",
        price=D(70),
        size=2,
        winners=2,
        steps=10,
        daily_steps=1,
    )
    g = m.open_paid("act", "m000")
    g = m.join_paid(g.public_id, "m001")
    assert sorted(g.winners) == ["m000", "m001"]
    [fund] = m.groups.funds(m.tid, "m000")
    assert fund["amount"] == D(70)
    assert fund["locked"] == D(70)
    # a member registering with m000's invitation is m000's invite task: one step today
    with m.orders.store.tenant_tx(m.tid, lock=False) as tx:
        invite = members.get_profile(tx.conn, m.tid, "m000").invite_code
        members.register(tx, "newbie", invite_code=invite)
    assert m.groups.funds(m.tid, "m000")[0]["released"] == D(7)
    day = date(2027, 1, 1)
    assert m.groups.task(m.tid, member="m000", task="sign_in", ref="d1", day=day)
    assert m.groups.task(m.tid, member="m000", task="share", ref="s1", day=day) == []  # cap
    assert m.groups.task(m.tid, member="m000", task="sign_in", ref="d1", day=day) == []
    m.groups.task(m.tid, member="m000", task="share", ref="s2", day=date(2027, 1, 2))
    assert D(m.figures("m000")["m000"]["stable"]) == D(21)  # three steps of 7
    order = m.place_of(g, "m000")
    m.orders.refund(m.tid, m.code, order, refund_id="r1")
    [fund] = m.groups.funds(m.tid, "m000")
    assert fund["locked"] == 0
    assert fund["released"] == D(21)
    assert m.groups.task(m.tid, member="m000", task="invite", ref="i1", day=date(2027, 1, 3)) == []
    g = m.groups.get_group(m.tid, g.public_id)
    assert [p.member for p in g.places if p.status == "confirmed"] == ["m001"]


def test_an_operator_refund_of_a_held_place_frees_it_and_a_partial_one_is_refused(
    db_engine: Engine,
) -> None:
    m = mall(db_engine)
    _multi(m, size=3)
    g = m.open_paid("multi", "m000")
    g = m.join_paid(g.public_id, "m001")
    ref = m.place_of(g, "m001")
    with pytest.raises(GroupStateError):
        m.orders.refund(m.tid, m.code, ref, refund_id="p1", amount=D(10))
    assert m.status(ref) == "paid"
    m.orders.refund(m.tid, m.code, ref, refund_id="f1")
    g = m.groups.get_group(m.tid, g.public_id)
    assert [p.status for p in g.places] == ["held", "refunded"]
    m.join_paid(g.public_id, "m002")
    g = m.join_paid(g.public_id, "m003")
    assert g.state == "succeeded"
    assert [p.member for p in g.places if p.status == "confirmed"] == ["m000", "m002", "m003"]


def test_the_composition_root_wires_the_handlers_and_the_schedulers_deadline_job(
    db_engine: Engine,
) -> None:
    services = bootstrap.build(
        Settings(db_url="sqlite://", secret_key="groupbuy-secret-key-0123456789abcdef-01"),
        db_engine,
    )
    code = f"t-{uuid.uuid4().hex[:12]}"
    tid = services.store.ledger.create_tenant(code, TenantParams(settle_days=D(0)))
    with db_engine.begin() as conn:
        merchant = catalog.create_merchant(conn, tid, code="m", name="M")
        product = catalog.create_product(conn, tid, merchant_id=merchant.id, name="Tea")
        sku = catalog.create_sku(conn, tid, product_id=product.id, name="1", price=D(100), stock=5)
        members.create_member(conn, tid, "ann")
    gbs = services.groupbuys
    gbs.create_offer(
        tid,
        actor="op",
        code="quick",
        sku_id=sku.id,
        mode="multi",
        price=D(70),
        size=2,
        deadline_hours=D(1) / 60,
    )
    g = gbs.open_group(tid, offer="quick", member="ann")
    pay = services.orders.start_payment(tid, code, g.places[0].order)
    assert pay.intent_id is not None
    services.orders.complete_sandbox(tid, code, pay.intent_id)
    assert gbs.get_group(tid, g.public_id).places[0].status == "held"  # the root's handler
    jobs = dict(bootstrap.scheduler(services, lease=False).jobs)
    # a minute-long deadline: no other test's group is due by then
    jobs["close_groups"](db_engine, g.deadline)
    g = gbs.get_group(tid, g.public_id)
    assert g.state == "failed"
    assert services.orders.get_order(tid, g.places[0].order).status == "refunded"
    assert "draw_campaigns" in jobs


def test_a_full_lottery_group_past_its_deadline_waits_for_its_draw(db_engine: Engine) -> None:
    m = mall(db_engine)
    m.groups.create_campaign(m.tid, code="c1", winners=0, actor="op")
    m.groups.create_offer(
        m.tid,
        actor="op",
        code="lot",
        sku_id=m.sku,
        mode="lottery",
        price=D(70),
        size=2,
        campaign="c1",
        compensation=D(1),
        deadline_hours=D(1),
    )
    g = m.open_paid("lot", "m000")
    g = m.join_paid(g.public_id, "m001")
    assert m.groups.close_expired(m.clock.t + 7200) == 0
    assert m.groups.get_group(m.tid, g.public_id).state == "full"
    record = m.groups.draw_campaign(m.tid, "c1")  # k = 0: every full group loses
    assert record["winners"] == []
    g = m.groups.get_group(m.tid, g.public_id)
    assert g.state == "lost"
    assert [D(str(m.figures(p.member)[p.member]["stable"])) for p in g.places] == [D(1), D(1)]
