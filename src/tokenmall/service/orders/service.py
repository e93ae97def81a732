"""The order flow's facade: one object the API, the worker, the CLI and the tests call.

Each method hands over to the module that owns its role (see the package docstring); this
file only keeps the public signatures and their contracts in one place.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal

from sqlalchemy import Engine

from tokenmall.money import ZERO
from tokenmall.payments import NotificationKind, NotificationVerifier
from tokenmall.service.ledger import Ledger
from tokenmall.service.orders import (
    lifecycle,
    notifications,
    paying,
    queries,
    reconcile,
    refunds,
    wechat_config,
)
from tokenmall.service.orders.context import NotificationHandler, OrderContext
from tokenmall.service.orders.desks import AfterSalesDesk, MerchantDesk
from tokenmall.service.orders.models import (
    NotificationResult,
    Order,
    OrderRefund,
    Payment,
    ProviderEvent,
    SandboxCompletion,
    ShippingAddress,
    WeChatConfig,
)
from tokenmall.service.orders.providers import SANDBOX, PaymentHub, ProviderName, Providers
from tokenmall.service.pages import Page
from tokenmall.service.uow import Store


class OrderService:
    """The order flow of every tenant; one per process (it holds the :class:`PaymentHub`).

    ``clock`` is the service's time (unix seconds), injectable so tests can move it.
    ``sandbox``: whether the sandbox provider may be used.  It lets anyone who can start a
    payment also "pay" it, so a production service turns it off.
    ``handlers`` maps notification kinds to handlers; payouts (withdrawals) plug theirs in
    here: ``handler(conn, tenant_id, notification) -> (outcome, detail)``, run inside the
    transaction that records the event, after the tenant's lock.
    ``store``: the composition root's store (its event handlers run in every transaction);
    without it, a store of this engine with no handlers.
    """

    def __init__(
        self,
        engine: Engine,
        hub: PaymentHub,
        *,
        clock: Callable[[], float] = time.time,
        sandbox: bool = True,
        store: Store | None = None,
    ) -> None:
        self.engine = engine
        store = store if store is not None else Store(engine)
        self.ctx = OrderContext(store, Providers(hub, sandbox=sandbox), clock)
        self.merchants = MerchantDesk(self.ctx)  # a merchant's orders and shipments
        self.aftersales = AfterSalesDesk(self.ctx)  # refund requests

    # the context's fields, settable (tests move the clock, the app turns the sandbox off)
    @property
    def clock(self) -> Callable[[], float]:
        return self.ctx.clock

    @clock.setter
    def clock(self, value: Callable[[], float]) -> None:
        self.ctx.clock = value

    @property
    def sandbox(self) -> bool:
        return self.ctx.providers.sandbox

    @property
    def hub(self) -> PaymentHub:
        return self.ctx.hub

    @property
    def ledger(self) -> Ledger:
        return self.ctx.ledger

    @property
    def store(self) -> Store:
        return self.ctx.store

    @property
    def handlers(self) -> dict[NotificationKind, NotificationHandler]:
        return self.ctx.handlers

    # ------------------------------------------------------------------ life of an order

    def create_order(
        self,
        tenant_id: int,
        *,
        member: str,
        lines: Sequence[tuple[int, int]],
        client_ref: str | None = None,
        address: ShippingAddress | None = None,
    ) -> Order:
        """An order of ``lines`` ((SKU id, quantity), ...) for ``member``, stock reserved,
        going to ``address``.  With ``client_ref`` creating is safe to retry (same id and
        content: the first order; other content: 409)."""
        return lifecycle.create_order(
            self.ctx, tenant_id, member=member, lines=lines, client_ref=client_ref, address=address
        )

    def get_order(self, tenant_id: int, ref: str) -> Order:
        """The order with its lines, payments and refunds (read only; an overdue unpaid
        order shows as expired)."""
        return lifecycle.get_order(self.ctx, tenant_id, ref)

    def order_member(self, tenant_id: int, ref: str) -> str:
        """Who placed order ``ref`` (NotFound if the tenant has none): the ownership check of
        the member routes reads the order's row, not its lines, payments and refunds."""
        with self.store.read() as conn:
            return str(queries.order_row(conn, tenant_id, ref).member)

    def list_orders(
        self,
        tenant_id: int,
        *,
        limit: int,
        cursor: str | None,
        member: str | None = None,
        status: str | None = None,
        created_from: float | None = None,
        created_to: float | None = None,
    ) -> Page[Order]:
        return queries.list_orders(
            self.engine,
            tenant_id,
            limit=limit,
            cursor=cursor,
            member=member,
            status=status,
            created_from=created_from,
            created_to=created_to,
        )

    def cancel_order(self, tenant_id: int, ref: str, *, reason: str | None = None) -> Order:
        """An unpaid order is cancelled and its stock released; a cancelled one is returned."""
        return lifecycle.cancel_order(self.ctx, tenant_id, ref, reason=reason)

    def confirm_delivery(self, tenant_id: int, ref: str) -> Order:
        """The buyer has the goods: the return window (settle_days) starts now."""
        return lifecycle.confirm_delivery(self.ctx, tenant_id, ref)

    def settle_order(self, tenant_id: int, ref: str) -> Order:
        """Settle now, without waiting for the return window (the operator's decision)."""
        return lifecycle.settle_order(self.ctx, tenant_id, ref)

    # ------------------------------------------------------------------ payments

    def start_payment(
        self,
        tenant_id: int,
        tenant: str,
        ref: str,
        *,
        provider: ProviderName = SANDBOX,
        sp: Decimal = ZERO,
        points_value: Decimal = ZERO,
        member: str | None = None,
        payer: str | None = None,
    ) -> Payment:
        """Start paying ``ref``: ``sp`` from the wallet, ``points_value`` CNY worth of EP
        redeemed (R4), the rest in CNY through ``provider``.  With ``member``, an order of
        anyone else is answered as absent (NotFound), checked on the same read.

        Without a CNY part the wallet pays at once (one ledger transaction) and the order is
        paid on return.  Otherwise an intent is created at the provider and the order is paid
        when its notification arrives; every part moves then, atomically.  Asking again with
        the same split returns the waiting attempt instead of opening another.

        With ``payer`` (provider ``wechat``: the payer's openid, and the tenant's outbound
        WeChat Pay calls configured), the payment is also placed at WeChat (JSAPI prepay,
        after the row commits) and the answer carries ``pay_params`` for
        ``wx.requestPayment``.  Asking again re-issues them.
        """
        return paying.start_payment(
            self.ctx,
            tenant_id,
            tenant,
            ref,
            provider=provider,
            sp=sp,
            points_value=points_value,
            member=member,
            payer=payer,
        )

    def verifier(self, tenant_id: int, tenant: str, provider: str) -> NotificationVerifier:
        with self.store.read() as conn:
            return self.ctx.providers.verifier(conn, tenant_id, tenant, provider)

    def handle_notification(
        self,
        tenant_id: int,
        tenant: str,
        provider: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        pump: bool = True,
    ) -> NotificationResult:
        """Verify one delivery, then apply it once.

        ``pump``: afterwards, deliver what the in-process sandbox queued meanwhile (the refund
        of a voided payment); False when this delivery comes from such a pump already.

        Raises :class:`~tokenmall.payments.NotificationRejected` for a delivery that must not
        be acted on (bad signature, stale, malformed, another tenant's, unsupported): nothing
        is recorded, and the provider, told so by a 4xx, may try again.
        """
        return notifications.handle_notification(
            self.ctx, tenant_id, tenant, provider, headers, body, pump=pump
        )

    def pump_sandbox(self, tenant_id: int, tenant: str) -> None:
        """Deliver what the tenant's in-process sandbox has queued, as a provider would call."""
        notifications.pump_sandbox(self.ctx, tenant_id, tenant)

    def complete_sandbox(
        self,
        tenant_id: int,
        tenant: str,
        intent_id: str,
        *,
        succeed: bool = True,
        deliver: bool = True,
        member: str | None = None,
    ) -> SandboxCompletion:
        """Play the customer at the sandbox: pay (or fail) an intent of this tenant.  With
        ``member``, an intent of anyone else's order is answered as absent (NotFound).

        ``deliver``: the sandbox delivers its pending notifications to this service at once
        (signatures and all).  Otherwise the new ones are handed back as signed requests, for
        the caller to deliver (as often as it likes); the sandbox's outbox keeps them too, as
        a provider retries until it is acknowledged, and delivers them with its next round.
        """
        return notifications.complete_sandbox(
            self.ctx, tenant_id, tenant, intent_id, succeed=succeed, deliver=deliver, member=member
        )

    def reconcile_payments(
        self,
        *,
        now: float | None = None,
        older_than: float = 60.0,
        recheck: float = 60.0,
        limit: int = 200,
        refund_after: float = 600.0,
    ) -> int:
        """Ask WeChat Pay about open WeChat payments and refunds; returns how many changed.

        For every tenant whose outbound WeChat Pay calls are configured, each payment still
        ``requires_payment`` ``older_than`` seconds after it started (and not asked about in
        the last ``recheck`` seconds; at most ``limit`` per tenant and run, least recently
        asked first) is queried: paid (or closed) at WeChat, it is applied exactly as its
        notification would be, with the same event id; still open while the order can no
        longer take it, the WeChat order is closed and the payment recorded failed once a
        query confirms ``CLOSED``; unknown to WeChat while the order can no longer take it,
        recorded failed.  Refunds WeChat accepted whose notification has not come
        ``refund_after`` seconds later are queried too.  Once a day per tenant in certificate
        mode the platform certificates are downloaded and new ones added.  The scheduler runs
        this before expiring orders, so an order paid in time is found paid, not expired.
        """
        return reconcile.reconcile_payments(
            self.ctx,
            now=now,
            older_than=older_than,
            recheck=recheck,
            limit=limit,
            refund_after=refund_after,
        )

    def sync_payments(
        self, tenant_id: int, tenant: str, ref: str, *, member: str | None = None
    ) -> Order:
        """Ask WeChat Pay now about the order's open WeChat payments and return the order
        (what a mini-program calls after ``wx.requestPayment`` succeeds)."""
        return reconcile.sync_payments(self.ctx, tenant_id, tenant, ref, member=member)

    # ------------------------------------------------------------------ refunds

    def refund(
        self,
        tenant_id: int,
        tenant: str,
        ref: str,
        *,
        refund_id: str,
        amount: Decimal | None = None,
        reason: str | None = None,
    ) -> tuple[OrderRefund, bool]:
        """Refund ``amount`` (None: all that is left) of a paid order; (refund, created).

        Before settlement the ledger returns the money and no reward existed; after it, the
        ledger takes the rewards back (R11).  The CNY part goes back through the provider after
        commit, the rest as SP.  ``refund_id`` is the caller's: the same id with the same
        amount answers with the first refund, with another amount (or order) it is refused.
        """
        return refunds.refund(
            self.ctx, tenant_id, tenant, ref, refund_id=refund_id, amount=amount, reason=reason
        )

    def retry_refunds(self, *, older_than: float = 300.0, now: float | None = None) -> int:
        """Send again every provider refund still ``pending`` after ``older_than`` seconds."""
        return refunds.retry_refunds(self.ctx, older_than=older_than, now=now)

    def list_refunds(self, tenant_id: int, ref: str) -> list[OrderRefund]:
        return queries.list_refunds(self.engine, tenant_id, ref)

    # ------------------------------------------------------------------ the payments desk

    def list_payments(
        self,
        tenant_id: int,
        *,
        limit: int,
        cursor: str | None,
        status: str | None = None,
        refund_status: str | None = None,
        provider: str | None = None,
    ) -> Page[Payment]:
        return queries.list_payments(
            self.engine,
            tenant_id,
            limit=limit,
            cursor=cursor,
            status=status,
            refund_status=refund_status,
            provider=provider,
        )

    def list_all_refunds(
        self,
        tenant_id: int,
        *,
        limit: int,
        cursor: str | None,
        provider_status: str | None = None,
    ) -> Page[OrderRefund]:
        return queries.list_all_refunds(
            self.engine, tenant_id, limit=limit, cursor=cursor, provider_status=provider_status
        )

    def list_provider_events(
        self,
        tenant_id: int,
        *,
        limit: int,
        cursor: str | None,
        outcome: str | None = None,
        provider: str | None = None,
    ) -> Page[ProviderEvent]:
        return queries.list_provider_events(
            self.engine, tenant_id, limit=limit, cursor=cursor, outcome=outcome, provider=provider
        )

    # ------------------------------------------------------------------ provider settings

    def set_wechat_config(
        self,
        tenant_id: int,
        *,
        api_v3_key: str,
        platform_keys: Mapping[str, str],
        mch_id: str | None,
        actor: str,
        app_id: str | None = None,
        merchant_serial: str | None = None,
        merchant_private_key: str | None = None,
        notify_url: str | None = None,
        api_base_url: str | None = None,
    ) -> WeChatConfig:
        """Store the tenant's WeChat Pay keys (every one checked before anything is stored).

        The APIv3 key and the platform keys verify notifications.  With the merchant's API
        key too (``app_id``, ``merchant_serial``, ``merchant_private_key``, ``notify_url``,
        and ``mch_id``: all of them or none), tokenmall also calls WeChat Pay: JSAPI prepay,
        refunds, and transfers for withdrawals.  The keys are stored as given: protecting them
        at rest (a KMS, an encrypted column) is the deployment's job and not done here yet.
        """
        return wechat_config.set_wechat_config(
            self.ctx,
            tenant_id,
            api_v3_key=api_v3_key,
            platform_keys=platform_keys,
            mch_id=mch_id,
            actor=actor,
            app_id=app_id,
            merchant_serial=merchant_serial,
            merchant_private_key=merchant_private_key,
            notify_url=notify_url,
            api_base_url=api_base_url,
        )

    def refresh_wechat_certificates(
        self, tenant_id: int, *, actor: str
    ) -> tuple[WeChatConfig, list[str]]:
        """Download WeChat's platform certificates and add those the configuration lacks
        (new ones first, none removed); returns the configuration and the serials added."""
        return wechat_config.refresh_wechat_certificates(self.ctx, tenant_id, actor=actor)

    def get_wechat_config(self, tenant_id: int) -> WeChatConfig:
        return wechat_config.get_wechat_config(self.ctx, tenant_id)
