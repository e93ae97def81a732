"""How the wallet pays withdrawals out: through the orders service's payment hub (the
tenant's one sandbox gateway or its WeChat transfers), or a bare sandbox (a process without
the hub, tests).  Both implement :class:`tokenmall.service.wallet.PayoutProviders`."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from tokenmall.payments.base import NotificationKind, PayoutAnswer, PayoutRequest
from tokenmall.payments.sandbox import DeliveryChaos, SandboxGateway, SandboxProvider
from tokenmall.payments.wechat_api import EncryptedField
from tokenmall.service.ledger import Ledger
from tokenmall.service.wallet import (
    _row,
    apply_payout_notification,
    payout_handler,
    wechat_bill_no,
)
from tokenmall.store.db import read_only

__all__ = ["HubPayouts", "SandboxPayouts"]


class SandboxPayouts:
    """Sandbox gateways, one per tenant, whose payout notifications are delivered in-process,
    signed and verified like any provider's.

    For a process without the orders service's payment hub (the worker on its own, tests).
    Each tenant's shared secret is derived from the service's secret key.  Gateways keep their
    state in memory (it is a sandbox): after a restart a payout sent again is a new sandbox
    payout, which is what a resend needs.
    """

    def __init__(
        self,
        ledger: Ledger,
        secret: str,
        *,
        chaos: DeliveryChaos | None = None,
        seed: int | None = None,
    ) -> None:
        self.ledger = ledger
        self._secret = secret.encode()
        self._chaos = chaos
        self._seed = seed
        self._gateways: dict[str, SandboxGateway] = {}
        self._lock = threading.RLock()  # a gateway is plain Python state

    def gateway(self, tenant: str) -> SandboxGateway:
        with self._lock:
            gw = self._gateways.get(tenant)
            if gw is None:
                secret = hashlib.sha256(self._secret + b"\x00sandbox-payouts\x00" + tenant.encode())
                gw = SandboxGateway(
                    tenant,
                    secret.digest(),
                    chaos=self._chaos,
                    seed=None if self._seed is None else f"{self._seed}/{tenant}",
                )
                self._gateways[tenant] = gw
            return gw

    def payout(
        self, tenant_id: int, tenant: str, payout_id: str, account: str, amount: Decimal
    ) -> PayoutAnswer:
        with self._lock:
            gw = self.gateway(tenant)
            provider = SandboxProvider(gw)
            result = provider.payout(payout_id, account, amount)

            def deliver(headers: Mapping[str, str], body: bytes) -> None:
                n = provider.parse_notification(headers, body)
                if n.kind.is_payout:
                    apply_payout_notification(self.ledger, tenant_id, n)

            gw.drain(deliver)
        return result


class HubPayouts:
    """Payouts through the orders service's payment hub: the tenant's one sandbox gateway,
    and payout notifications applied through the hub's notification handling (verified,
    recorded in ``provider_events``, deduplicated by event id), like payments.

    ``service`` is looked up on every call, so an app that replaces its orders service (a
    test with its own clock) is followed.
    """

    def __init__(self, ledger: Ledger, service: Callable[[], Any]) -> None:
        self.ledger = ledger
        self._service = service
        self._handler = payout_handler()

    def hub(self) -> Any:
        """The orders service, with the wallet's payout handler registered on it."""
        service = self._service()
        for kind in (NotificationKind.PAYOUT_SUCCEEDED, NotificationKind.PAYOUT_FAILED):
            service.handlers.setdefault(kind, self._handler)
        return service

    def payout(
        self, tenant_id: int, tenant: str, payout_id: str, account: str, amount: Decimal
    ) -> PayoutAnswer:
        service = self.hub()
        with read_only(self.ledger.engine).connect() as conn:
            wechat = service.hub.wechat_api(conn, tenant_id)
        if wechat is not None:
            # a tenant that can call WeChat Pay pays withdrawals with its transfers; the
            # outcome comes later to the WeChat notification route, like a payment's
            with read_only(self.ledger.engine).connect() as conn:
                row = _row(conn, tenant_id, payout_id)
            name = (
                None
                if row.payee_name_cipher is None
                else EncryptedField(row.payee_name_serial, row.payee_name_cipher)
            )
            request = PayoutRequest(wechat_bill_no(payout_id), account, amount, "积分提现")
            transfer: PayoutAnswer = wechat.transfer(request, user_name=name)
            return transfer
        box = service.hub.sandbox(tenant)
        with box.lock:
            gw: SandboxGateway = box.gateway
            before = set(gw.pending_event_ids)
            result: PayoutAnswer = box.provider.payout(payout_id, account, amount)
            new = [e for e in gw.pending_event_ids if e not in before]
            if not new:  # sent before (a resend): its notifications again, duplicates are harmless
                new = list(gw.payout_event_ids(payout_id))

            def deliver(headers: Mapping[str, str], body: bytes) -> None:
                service.handle_notification(tenant_id, tenant, "sandbox", headers, body)

            # only this payout's events: a test may hold other notifications back on purpose
            for event_id in new:
                gw.redeliver(event_id, deliver)
        return result
