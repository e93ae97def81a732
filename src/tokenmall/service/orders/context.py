"""What every role of the order flow works with: the store, the providers and the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine

from tokenmall.payments import Notification, NotificationKind
from tokenmall.service.ledger import Ledger
from tokenmall.service.orders.providers import PaymentHub, Providers
from tokenmall.service.uow import Store, TenantTx

__all__ = ["NotificationHandler", "OrderContext"]

NotificationHandler = Callable[[TenantTx, Notification], tuple[str, str | None]]
"""A provider-notification handler another service plugs in (payouts: the wallet's), run
inside the unit of work that records the event, after the tenant's lock; it answers the
outcome to record and a detail."""


@dataclass(slots=True)
class OrderContext:
    """The order flow's dependencies, built once per process by the composition root.

    ``clock`` is the service's time (unix seconds), injectable so tests can move it.
    """

    store: Store
    providers: Providers
    clock: Callable[[], float]
    handlers: dict[NotificationKind, NotificationHandler] = field(default_factory=dict)
    # tenant id -> when this process last asked WeChat for its platform certificates
    certificates_checked: dict[int, float] = field(default_factory=dict)

    @property
    def engine(self) -> Engine:
        return self.store.engine

    @property
    def ledger(self) -> Ledger:
        return self.store.ledger

    @property
    def hub(self) -> PaymentHub:
        return self.providers.hub
