"""A mall with group buys wired as the composition root wires them, for the group-buy tests."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Engine, func, select

from tokenmall.domain.events import MemberJoined
from tokenmall.domain.params import TenantParams
from tokenmall.service import catalog, members, tasks
from tokenmall.service.groupbuys import GroupBuys, GroupView
from tokenmall.service.ledger import Ledger
from tokenmall.service.messagebus import EventBus
from tokenmall.service.orders import OrderService, PaymentHub
from tokenmall.service.uow import Store
from tokenmall.store import schema as s

SECRET = "groupbuy-secret-0123456789abcdef0123"


class Clock:
    """The service's time: now when the mall is built (the sandbox signs notifications with
    the real time, and the service checks their freshness), moved by the tests."""

    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        return self.t


@dataclass
class Mall:
    engine: Engine
    tid: int
    code: str
    sku: int
    orders: OrderService
    groups: GroupBuys
    clock: Clock

    def pay(self, ref: str) -> None:
        """The member pays the order at the sandbox (the notification applied at once)."""
        pay = self.orders.start_payment(self.tid, self.code, ref)
        assert pay.intent_id is not None
        self.orders.complete_sandbox(self.tid, self.code, pay.intent_id)

    def place_of(self, view: GroupView, member: str) -> str:
        return next(p.order for p in view.places if p.member == member)

    def open_paid(self, offer: str, leader: str) -> GroupView:
        view = self.groups.open_group(self.tid, offer=offer, member=leader)
        self.pay(self.place_of(view, leader))
        return self.groups.get_group(self.tid, view.public_id)

    def join_paid(self, public_id: str, member: str) -> GroupView:
        view = self.groups.join(self.tid, public_id, member=member)
        self.pay(self.place_of(view, member))
        return self.groups.get_group(self.tid, public_id)

    def figures(self, *codes: str) -> dict[str, dict[str, object]]:
        """Each member's figures; one the ledger never saw has all zero."""
        found = self.orders.ledger.members(self.tid, codes)
        zero = {"points": "0", "stable": "0", "spent": "0", "quota_remaining": "0"}
        return {c: found.get(c, zero) for c in codes}

    def status(self, ref: str) -> str:
        return self.orders.get_order(self.tid, ref).status

    def stock(self) -> int:
        with self.engine.connect() as conn:
            return catalog.get_sku(conn, self.tid, self.sku).stock

    def balance(self, account: str, asset: str = "CNY") -> Decimal:
        return self.orders.ledger.balances(self.tid).get((account, asset), Decimal(0))

    def count(self, table: str, **where: object) -> int:
        t = s.metadata.tables[table]
        q = select(func.count()).select_from(t).where(t.c.tenant_id == self.tid)
        for col, value in where.items():
            q = q.where(t.c[col] == value)
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar_one())


def services(engine: Engine, clock: Clock) -> tuple[OrderService, GroupBuys]:
    bus = EventBus()
    orders = OrderService(engine, PaymentHub(SECRET), store=Store(engine, bus=bus), clock=clock)
    groups = GroupBuys(orders)
    for kind, handlers in groups.handlers().items():
        for handler in handlers:
            bus.register(kind, handler)
    # a sign-up with an invitation is the referrer's invite task (bootstrap registers it)
    bus.register(MemberJoined, tasks.on_member_joined)
    return orders, groups


def mall(
    engine: Engine,
    *,
    members_: int = 12,
    stock: int = 1000,
    price: Decimal = Decimal(100),
    settle_days: int = 0,
    **params: object,
) -> Mall:
    code = f"t-{uuid.uuid4().hex[:12]}"
    tid = Ledger(engine).create_tenant(
        code,
        TenantParams(settle_days=Decimal(settle_days), **params),  # type: ignore[arg-type]
    )
    with engine.begin() as conn:
        merchant = catalog.create_merchant(conn, tid, code="m", name="M")
        product = catalog.create_product(conn, tid, merchant_id=merchant.id, name="Tea")
        sku = catalog.create_sku(
            conn, tid, product_id=product.id, name="250g", price=price, stock=stock
        )
        for i in range(members_):
            members.create_member(conn, tid, member_code(i))
    clock = Clock()
    orders, groups = services(engine, clock)
    return Mall(engine, tid, code, sku.id, orders, groups, clock)


def member_code(i: int) -> str:
    return f"m{i:03d}"
