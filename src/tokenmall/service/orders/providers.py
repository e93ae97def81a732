"""Payment providers as the order flow sees them: the one module that knows them by name.

Every other module of the order flow asks :class:`Providers` (is this provider usable, who
verifies its notifications, open an intent, how does a refund go back, send it) and never
compares a provider's name.  The sandbox is one more provider, chosen like WeChat Pay.

Sandbox: one :class:`SandboxGateway` per tenant and process (it plays the provider), with a
secret derived from the service's secret key, so every process of a deployment verifies the
same signatures.  Given the database (``PaymentHub(engine=...)``, as the composition root
does), its intents are kept there (:mod:`.sandbox_intents`), so every worker process knows
every intent and a restart loses none; without it (unit tests), in memory.  The gateway is
not thread-safe, so each has a re-entrant lock (re-entrant: delivering a notification runs
the handler, which may ask the same gateway for a refund).
WeChat Pay: the verifier and the outbound client are built from the tenant's
``payment_settings`` row, cached until it changes.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from sqlalchemy import Connection, Engine, select

from tokenmall.errors import NotFound
from tokenmall.money import cny_of_fen
from tokenmall.payments import (
    NotificationVerifier,
    PaymentStateError,
    ProviderConfigError,
    SandboxGateway,
    SandboxProvider,
    WeChatPayNotifications,
)
from tokenmall.payments.base import Clock, system_clock
from tokenmall.payments.errors import PaymentError
from tokenmall.payments.wechat import load_merchant_key, load_platform_key
from tokenmall.payments.wechat_api import WeChatPayApi
from tokenmall.service.errors import Conflict
from tokenmall.service.orders.models import ProviderNotConfigured
from tokenmall.service.orders.sandbox_intents import DbIntents
from tokenmall.store import schema as s

__all__ = ["PaymentHub", "ProviderRefund", "Providers"]

log = logging.getLogger("tokenmall.orders")

SANDBOX: Final = "sandbox"
WECHAT: Final = "wechat"
WALLET: Final = "wallet"  # an SP/EP-only payment: no provider, nothing to give back in CNY
# providers whose customers can pay on their own until the provider's deadline, so an open
# payment there holds its order past ours (models.PAYMENT_GRACE)
HELD_PAST_DEADLINE: Final = (WECHAT,)
ProviderName = Literal["sandbox", "wechat"]
WECHAT_API: Final = "https://api.mch.weixin.qq.com"
_SANDBOX_DRAIN_ROUNDS: Final = 10


@dataclass(slots=True)
class _Sandbox:
    gateway: SandboxGateway
    provider: SandboxProvider
    lock: threading.RLock


@dataclass(frozen=True, slots=True)
class _WeChat:
    verifier: WeChatPayNotifications
    api: WeChatPayApi | None


class PaymentHub:
    """The payment providers of every tenant, for one process (see the module docstring)."""

    def __init__(
        self, secret: str | bytes, *, clock: Clock = system_clock, engine: Engine | None = None
    ) -> None:
        self._secret = secret.encode() if isinstance(secret, str) else secret
        self._clock = clock
        # where the sandbox keeps its intents: this database, or (None) this process's memory
        self._engine = engine
        self._sandboxes: dict[str, _Sandbox] = {}
        self._wechat: dict[int, tuple[float, _WeChat]] = {}
        self._lock = threading.Lock()

    def sandbox_secret(self, tenant: str) -> bytes:
        return hmac.new(self._secret, b"tokenmall-sandbox\x00" + tenant.encode(), "sha256").digest()

    def sandbox(self, tenant: str) -> _Sandbox:
        with self._lock:
            box = self._sandboxes.get(tenant)
            if box is None:
                intents = None if self._engine is None else DbIntents(self._engine, tenant)
                gateway = SandboxGateway(
                    tenant, self.sandbox_secret(tenant), clock=self._clock, intents=intents
                )
                box = _Sandbox(gateway, SandboxProvider(gateway), threading.RLock())
                self._sandboxes[tenant] = box
            return box

    def _wechat_entry(self, conn: Connection, tenant_id: int) -> _WeChat | None:
        p = s.payment_settings.c
        row = conn.execute(
            select(p.config, p.updated_at).where(p.tenant_id == tenant_id, p.provider == WECHAT)
        ).first()
        if row is None:
            return None
        with self._lock:
            cached = self._wechat.get(tenant_id)
            if cached is not None and cached[0] == row.updated_at:
                return cached[1]
        entry = wechat_entry(json.loads(row.config), self._clock)
        with self._lock:
            self._wechat[tenant_id] = (row.updated_at, entry)
        return entry

    def wechat(self, conn: Connection, tenant_id: int) -> WeChatPayNotifications | None:
        """The verifier of the tenant's WeChat Pay notifications (None: not configured)."""
        entry = self._wechat_entry(conn, tenant_id)
        return None if entry is None else entry.verifier

    def wechat_api(self, conn: Connection, tenant_id: int) -> WeChatPayApi | None:
        """The tenant's outbound WeChat Pay client (None: notifications only, or none)."""
        entry = self._wechat_entry(conn, tenant_id)
        return None if entry is None else entry.api


def wechat_entry(config: Mapping[str, Any], clock: Clock) -> _WeChat:
    """The verifier and, with the merchant's key, the client of a stored configuration
    (checks every key: :class:`ProviderConfigError` for one that is not usable)."""
    keys = {serial: load_platform_key(pem.encode()) for serial, pem in config["keys"].items()}
    verifier = WeChatPayNotifications(
        platform_keys=keys,
        api_v3_key=config["api_v3_key"],
        mch_id=config.get("mch_id"),
        clock=clock,
    )
    out = config.get("outbound")
    if not out:
        return _WeChat(verifier, None)
    api = WeChatPayApi(
        mch_id=config["mch_id"],
        app_id=out["app_id"],
        merchant_key=load_merchant_key(out["merchant_private_key"].encode()),
        merchant_serial=out["merchant_serial"],
        platform_keys=keys,
        notify_url=out["notify_url"],
        base_url=out["api_base_url"],
        clock=clock,
    )
    return _WeChat(verifier, api)


def check_api_url(url: str) -> str:
    """WeChat Pay's address: https, or plain http to this machine (a local gateway or a test
    double).  The notify URL is checked by :class:`WeChatPayApi` (WeChat's own rules)."""
    parts = urlsplit(url)
    local = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        raise ProviderConfigError(f"api_base_url must be an https URL, got {url!r}")
    if not parts.hostname or parts.query:
        raise ProviderConfigError(f"api_base_url must have a host and no query string: {url!r}")
    return url.rstrip("/")


@dataclass(frozen=True, slots=True)
class ProviderRefund:
    """A refund to ask of a provider once the transaction that decided it has committed."""

    table: Literal["payments", "order_refunds"]
    row_id: int
    provider: str
    intent_id: str
    refund_id: str
    amount: Decimal
    total: Decimal  # the payment's CNY: WeChat's refund request states the original amount

    @classmethod
    def of_void(cls, pay: Any, refund_id: str) -> ProviderRefund:
        """All the CNY of a voided payment (its ``payments`` row) back, as ``refund_id``."""
        cny = cny_of_fen(pay.cny_fen)
        return cls("payments", pay.id, pay.provider, pay.intent_id, refund_id, cny, cny)


Deliver = Callable[[Mapping[str, str], bytes], None]


class Providers:
    """What the order flow asks of a tenant's payment providers (see the module docstring).

    ``sandbox``: whether the sandbox may be used.  It lets anyone who can start a payment also
    "pay" it, so a production service turns it off.
    """

    def __init__(self, hub: PaymentHub, *, sandbox: bool) -> None:
        self.hub = hub
        self.sandbox = sandbox

    def check_sandbox(self) -> None:
        if not self.sandbox:
            raise ProviderNotConfigured("the sandbox payment provider is off in production")

    def check_startable(self, provider: str) -> None:
        """Refuse to open a payment through a provider this process may not use."""
        if provider == SANDBOX:
            self.check_sandbox()

    def verifier(
        self, conn: Connection, tenant_id: int, tenant: str, provider: str
    ) -> NotificationVerifier:
        """Who checks ``provider``'s notifications for this tenant."""
        if provider == SANDBOX:
            self.check_sandbox()
            return self.hub.sandbox(tenant).provider
        if provider == WECHAT:
            verifier = self.hub.wechat(conn, tenant_id)
            if verifier is None:
                raise ProviderNotConfigured("WeChat Pay is not configured for this tenant")
            return verifier
        raise NotFound(f"no payment provider {provider!r}")

    def check_usable(
        self, conn: Connection, tenant_id: int, provider: str, *, payer: str | None
    ) -> None:
        """Refuse a payment through ``provider`` (with ``payer``: placed by us at the provider)
        that this tenant has not configured."""
        if provider == WECHAT and self.hub.wechat(conn, tenant_id) is None:
            raise ProviderNotConfigured("WeChat Pay is not configured for this tenant")
        if payer is not None and self.hub.wechat_api(conn, tenant_id) is None:
            raise ProviderNotConfigured(
                "WeChat Pay outbound calls (merchant key, app id) are not configured "
                "for this tenant: pay by out_trade_no without payer"
            )

    @staticmethod
    def places_payer(provider: str) -> bool:
        """Whether a payer id (a WeChat openid) may be given with ``provider``."""
        return provider == WECHAT

    def open_intent(
        self, tenant: str, provider: str, provider_order_id: str, amount: Decimal, ref: str
    ) -> str:
        """The provider's id of a new payment intent (idempotent on ``provider_order_id``)."""
        if provider == WECHAT:
            return provider_order_id  # WeChat knows a payment by our out_trade_no
        box = self.hub.sandbox(tenant)
        with box.lock:
            try:
                intent = box.provider.create_intent(
                    provider_order_id, amount, f"tokenmall order {ref}"
                )
            except PaymentStateError as exc:
                raise Conflict(str(exc)) from None
        return intent.intent_id

    def intent_alive(self, tenant: str, provider: str, intent_id: str | None) -> bool:
        """Whether the provider still knows ``intent_id``, so a customer can pay it.  Only
        a sandbox kept in memory forgets (a restart, another process); a database-backed
        one and WeChat Pay do not."""
        if provider != SANDBOX or intent_id is None:
            return True
        box = self.hub.sandbox(tenant)
        with box.lock:
            return box.gateway.knows_intent(intent_id)

    def prepay(
        self,
        conn: Connection,
        tenant_id: int,
        *,
        out_trade_no: str,
        amount: Decimal,
        description: str,
        payer: str,
        expires_at: datetime,
    ) -> dict[str, str]:
        """Place the payment at WeChat (JSAPI) for ``payer``: ``wx.requestPayment``'s params."""
        api = self.hub.wechat_api(conn, tenant_id)
        if api is None:  # pragma: no cover - checked when the payment opened; removed since
            raise ProviderNotConfigured("WeChat Pay outbound calls are not configured")
        prepay_id = api.jsapi_prepay(
            out_trade_no=out_trade_no,
            amount=amount,
            description=description,
            openid=payer,
            expires_at=expires_at,
        )
        return api.jsapi_pay_params(prepay_id)

    def refund_route(self, conn: Connection, tenant_id: int, provider: str) -> str:
        """How the CNY of a refund goes back: ``pending`` (asked of the provider after the
        commit), or ``manual`` when the provider cannot be called (WeChat Pay configured for
        notifications only): an operator refunds in the merchant platform."""
        if provider == WECHAT and self.hub.wechat_api(conn, tenant_id) is None:
            return "manual"
        return "pending"

    def needs_outbound(self, refunds: list[ProviderRefund]) -> bool:
        return any(r.provider == WECHAT for r in refunds)

    def send_refund(self, tenant: str, r: ProviderRefund, api: WeChatPayApi | None) -> None:
        """Ask the provider for ``r`` (``api``: the tenant's WeChat client, if it has one)."""
        if r.provider == WECHAT:
            if api is None:
                raise ProviderConfigError("WeChat Pay outbound calls are not configured")
            api.refund(
                out_trade_no=r.intent_id, out_refund_no=r.refund_id, amount=r.amount, total=r.total
            )
            return
        box = self.hub.sandbox(tenant)
        with box.lock:
            intent = box.gateway.get_intent(r.intent_id)
            box.provider.refund(intent, r.refund_id, r.amount)

    @staticmethod
    def delivers_in_process(refunds: list[ProviderRefund]) -> bool:
        """Whether some of ``refunds`` went to the in-process sandbox, whose notifications
        the service must hand over itself (:meth:`drain_sandbox`)."""
        return any(r.provider == SANDBOX for r in refunds)

    def drain_sandbox(self, tenant: str, deliver: Deliver) -> None:
        """Deliver what the tenant's in-process sandbox has queued, as a provider would call.

        A real provider calls the notification endpoint by itself; the sandbox lives in this
        process, so the service hands its notifications over after the calls that queue them
        (refunds).  Failures stay queued for the next round, as with a provider's retries.
        """
        box = self.hub.sandbox(tenant)
        with box.lock:
            try:
                box.gateway.drain(deliver, max_rounds=_SANDBOX_DRAIN_ROUNDS)
            except PaymentError as exc:
                log.warning("sandbox outbox of tenant %s not drained: %s", tenant, exc)
