"""The composition root: the one place that builds tokenmall's services and wires them.

The API (:func:`tokenmall.api.create_app`), the worker and the CLI all call :func:`build`, so
they run the same order flow, the same payout providers and the same event handlers.  Nothing
is discovered at run time (no ``importlib``, no signals): to see what reacts to an event, read
:func:`event_handlers`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from tokenmall.domain.events import (
    DayClosed,
    MemberJoined,
    MembersExited,
    OrderClosed,
    OrderPaid,
    OrderRefunded,
    OrderSettled,
    TaskDone,
    WithdrawalFailed,
    WithdrawalPaid,
)
from tokenmall.service import marketing, tasks, webhooks
from tokenmall.service.groupbuys import GroupBuys
from tokenmall.service.messagebus import EventBus, Handler
from tokenmall.service.nfg import log as nfg_log
from tokenmall.service.nfg import orders as nfg_orders
from tokenmall.service.nfg.trades import Trades
from tokenmall.service.orders import OrderService, PaymentHub
from tokenmall.service.payouts import HubPayouts
from tokenmall.service.uow import Store
from tokenmall.service.wallet import PayoutProviders
from tokenmall.settings import Settings
from tokenmall.store.lease import Lease
from tokenmall.worker import Scheduler, lease_ttl, orders_jobs

__all__ = ["Services", "build", "event_handlers", "scheduler"]


def event_handlers(
    groupbuys: GroupBuys | None = None, trades: Trades | None = None
) -> dict[type, list[Handler]]:
    """Event type -> its handlers, in the order they run (see docs/DESIGN.md, "Events").

    The engine's own reactions (EP issuance, quota, dividends; model #0) are ledger commands
    the order flow applies itself, before it emits.  Webhooks write their outbox rows here
    (in the fact's transaction; the scheduler sends them).  Marketing models and group buys
    register here too, each after the ones before it in this table; webhooks should stay
    last, so a fact whose later handler fails leaves no delivery either (it rolls back).

    ``groupbuys``: group buys react to the order flow's events (a place paid, refunded,
    closed unpaid; a winner's order settled, for the leader's commission) before webhooks,
    and to a member's task (a step of each locked activity fund) after the models.
    ``trades``: NFG listings bought with CNY react to their orders (paid: the token is sold;
    refunded or closed unpaid: the listing is free again), after group buys.
    """
    table: dict[type, list[Handler]] = {
        # a paid order of a product linked to an NFG collection mints its tokens; a refund
        # burns them or, once they changed hands, takes their price back (docs/NFG.md)
        OrderPaid: [nfg_orders.mint_on_paid],
        # the marketing models (docs/MODELS.md) run after the engine's own commands, in
        # the order of tokenmall.domain.marketing.ORDER; then group buys; webhooks last
        OrderSettled: [marketing.on_settled],
        OrderRefunded: [marketing.on_refunded, nfg_orders.take_back_on_refund],
        OrderClosed: [],
        # a sign-up with an invitation is the referrer's invite task (a TaskDone of its own)
        MemberJoined: [marketing.on_member_joined, tasks.on_member_joined],
        # a member's task: chain21's held help money, then activity funds (group buys)
        TaskDone: [marketing.on_task_done],
    }
    if groupbuys is not None:
        for kind, handlers in groupbuys.handlers().items():
            table[kind].extend(handlers)
    if trades is not None:
        for kind, handlers in trades.handlers().items():
            table[kind].extend(handlers)
    for kind in (OrderPaid, OrderSettled, OrderRefunded):
        table[kind].append(webhooks.record_event)
    table[WithdrawalPaid] = [webhooks.record_event]
    table[WithdrawalFailed] = [webhooks.record_event]
    table[DayClosed] = [marketing.on_day_closed, webhooks.record_event]
    table[MembersExited] = [webhooks.record_event]
    return table


@dataclass(frozen=True, slots=True)
class Services:
    """Everything a process of tokenmall runs, built once."""

    settings: Settings
    engine: Engine
    store: Store
    orders: OrderService
    groupbuys: GroupBuys
    payouts: PayoutProviders
    webhooks: webhooks.WebhookSender
    trades: Trades  # NFG listings bought with CNY through the order flow


def build(settings: Settings, engine: Engine, *, bus: EventBus | None = None) -> Services:
    """The services of one process on ``engine`` (whose schema must be migrated).

    ``bus``: the handler table to use instead of :func:`event_handlers` (tests register
    their own handlers on it).  The sandbox payment provider is on unless the settings say
    production: it lets whoever starts a payment also "pay" it.
    """
    groupbuys = GroupBuys(lambda: orders)  # its handlers reach the order flow built below
    trades = Trades(lambda: orders.ctx)
    table = event_handlers(groupbuys, trades)
    store = Store(engine, bus=bus if bus is not None else EventBus(table))
    orders = OrderService(
        engine,
        # the sandbox's intents in the database: any worker process, and a restarted one,
        # can complete or refund what another opened
        PaymentHub(settings.secret_key.get_secret_value(), engine=engine),
        sandbox=not settings.production,
        store=store,
    )
    # payouts through the orders service's payment hub: one sandbox gateway per tenant serves
    # payments and payouts, and every provider notification is recorded alike
    payouts = HubPayouts(store.ledger, lambda: orders)
    return Services(
        settings, engine, store, orders, groupbuys, payouts, webhooks.WebhookSender(engine), trades
    )


def scheduler(
    services: Services, *, interval: float | None = None, lease: bool = True
) -> Scheduler:
    """The scheduler of a process (``serve`` runs it in a thread of each worker, ``worker``
    as the process): day closes, reconciliation, the order jobs, payout and refund resends,
    all in the services' store, then the webhook deliveries those wrote.

    ``lease``: run the jobs only while this process holds the database's scheduler lease, so
    one process per database runs them however many servers and workers there are
    (:mod:`tokenmall.store.lease`).  ``interval``: default ``settings.scheduler_interval``.
    """
    orders = services.orders
    every = services.settings.scheduler_interval if interval is None else interval
    anchor_every = services.settings.nfg_anchor_interval
    return Scheduler(
        services.engine,
        store=services.store,
        providers=services.payouts,
        interval=every,
        jobs=[
            *orders_jobs(services.store),
            # after expiry (a place's unpaid order past its own deadline frees the place)
            ("close_groups", lambda _engine, now: services.groupbuys.close_expired(now)),
            ("draw_campaigns", lambda _engine, now: services.groupbuys.draw_due(now)),
            # the Merkle root of each tenant's new token events (docs/NFG.md, "Anchoring")
            (
                "anchor_nfg",
                lambda _engine, now: nfg_log.anchor_due(services.store, now, every=anchor_every),
            ),
        ],
        refunds=lambda now: orders.retry_refunds(now=now),
        payments=lambda now: orders.reconcile_payments(now=now),
        webhooks=services.webhooks.deliver_due,
        lease=Lease(services.engine, ttl=lease_ttl(every)) if lease else None,
    )
