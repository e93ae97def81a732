"""The scheduler: day closes at each tenant's local midnight, and the service's periodic jobs.

One :meth:`Scheduler.tick` does, in this order:

1. for every tenant, close each past local date not closed yet, oldest first
   (:func:`tokenmall.service.dayclose.catch_up`): at start-up this is the crash recovery and
   the catch-up of missed days; afterwards it is the midnight close (first: nothing that
   waits on a payment provider may delay it);
2. open WeChat payments and refunds are checked with WeChat Pay
   (``OrderService.reconcile_payments``), when the scheduler was given it: a payment or
   refund whose notification was lost is applied, and the WeChat order of an order that can
   no longer be paid is closed; before the expiry below, so that an order paid in time is
   found paid rather than expired;
3. the order jobs the composition root gives it (:func:`tokenmall.bootstrap.order_jobs`:
   unpaid orders past their deadline expire and release their stock; orders past their
   return window settle, R11);
4. payouts of approved withdrawals that were never sent or never answered
   (:func:`tokenmall.service.wallet.retry_payouts`);
5. provider refunds that never got through (a timeout, a 5xx), sent again with the same
   refund id (``OrderService.retry_refunds``), when the scheduler was given it;
6. webhook deliveries due (:meth:`tokenmall.service.webhooks.WebhookSender.deliver_due`),
   when the scheduler was given it: last, so the facts of this round go out in it.

Between ticks it sleeps until the earliest next local midnight of any tenant or ``interval``
seconds, whichever is sooner.  Every job is idempotent, so any number of schedulers could run
at once: two of them closing the same date are serialised by the tenant's lock and the second
replays.  But each worker process of ``tokenmall serve --workers N`` (on every server) starts
one, and so does ``tokenmall worker``; with a :class:`~tokenmall.store.lease.Lease` only the
process holding it runs the jobs, the others stand by and take over when its lease expires
(docs/DESIGN.md, "One scheduler per database").
A failing job is logged and retried on the next tick; it never stops the other jobs or tenants.
What a tick did (days closed, orders expired and settled, payments reconciled, payouts and
refunds sent again) is logged at INFO, nothing when it did nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Engine

from tokenmall.service import dayclose
from tokenmall.service.dayclose import CloseOutcome
from tokenmall.service.orders import expire_orders, settle_due
from tokenmall.service.uow import Store
from tokenmall.service.wallet import PayoutProviders, retry_payouts
from tokenmall.store.db import read_only
from tokenmall.store.lease import Lease

__all__ = ["DEFAULT_INTERVAL", "Scheduler", "TickReport", "lease_ttl", "orders_jobs"]

log = logging.getLogger("tokenmall.worker")

DEFAULT_INTERVAL = 30.0
_MIDNIGHT_SLACK = 0.5  # wake just after midnight, never just before it
_MIN_LEASE_TTL = 10.0


def lease_ttl(interval: float) -> float:
    """How long a scheduler's lease lasts unrenewed: three ticks, so a holder that is slow
    once keeps it, and at least ten seconds, so a sub-second test interval does not make the
    lease flap between processes."""
    return max(3 * interval, _MIN_LEASE_TTL)


Job = Callable[[Engine, float], Any]
T = TypeVar("T")


def orders_jobs(store: Store | None = None) -> list[tuple[str, Job]]:
    """The order jobs: expire unpaid orders past their deadline, settle those due.  With
    ``store`` (the composition root's) they run in it, so its handlers react to them."""
    if store is None:
        return [("expire_orders", expire_orders), ("settle_due", settle_due)]
    return [
        ("expire_orders", lambda _engine, now: expire_orders(store, now)),
        ("settle_due", lambda _engine, now: settle_due(store, now)),
    ]


_FAILED = object()


def _guarded(report: TickReport, name: str, run: Callable[[], T], failed: T) -> T:
    """``run()``, or ``failed`` with the failure logged and in ``report.errors``: the next
    tick retries, and one failing job never stops the others."""
    try:
        return run()
    except Exception as exc:  # logged with its traceback
        log.exception("scheduled job %s failed", name)
        report.errors.append(f"{name}: {exc}")
        return failed


@dataclass(slots=True)
class TickReport:
    closes: list[CloseOutcome] = field(default_factory=list)
    jobs: dict[str, Any] = field(default_factory=dict)
    payouts: int = 0
    refunds: int = 0
    reconciled: int = 0
    webhooks: int = 0
    errors: list[str] = field(default_factory=list)
    # another process holds the scheduler's lease: this tick ran nothing
    standby: bool = False


def _log_done(report: TickReport) -> None:
    """One INFO line per job that did something: what the operator reads to know what the
    scheduler settled, expired and resent (the day closes have their own lines)."""
    if report.reconciled:
        log.info("reconciled %d payments and refunds with their providers", report.reconciled)
    for name, done in report.jobs.items():
        if name == "expire_orders" and done:
            log.info("expired %d unpaid orders past their deadline", done)
        elif name == "settle_due":
            settled, failed = getattr(done, "settled", 0), getattr(done, "failed", [])
            if settled:
                log.info("settled %d orders past their return window", settled)
            for tenant_id, ref, reason in failed:
                log.warning("order %s of tenant %s not settled: %s", ref, tenant_id, reason)
        elif isinstance(done, int) and not isinstance(done, bool) and done:
            log.info("%s: %d", name, done)
    if report.payouts:
        log.info("sent %d payouts again", report.payouts)
    if report.refunds:
        log.info("sent %d provider refunds again", report.refunds)


class Scheduler:
    """Runs :meth:`tick` now and then; see the module docstring."""

    def __init__(
        self,
        engine: Engine,
        *,
        providers: PayoutProviders | None = None,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.time,
        jobs: list[tuple[str, Job]] | None = None,
        refunds: Callable[[float], int] | None = None,
        payments: Callable[[float], int] | None = None,
        store: Store | None = None,
        webhooks: Callable[[float], int] | None = None,
        lease: Lease | None = None,
    ) -> None:
        self.engine = engine
        # with a lease, only the process holding it runs the jobs (None: always run them)
        self.lease = lease
        # the composition root's store (its handlers react to day closes), else a bare one
        self.store = store if store is not None else Store(engine)
        # asks the provider about open payments (OrderService.reconcile_payments)
        self.payments = payments
        # sends again provider refunds that never got through (OrderService.retry_refunds)
        self.refunds = refunds
        # sends the webhook outbox (WebhookSender.deliver_due)
        self.webhooks = webhooks
        self.ledger = self.store.ledger
        self.providers = providers
        self.interval = interval
        self.clock = clock
        self.jobs = orders_jobs() if jobs is None else jobs
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # tenant id -> its next local midnight, once caught up: nothing can fall due before,
        # so ticks in between skip the tenant's query (a restart starts with a full check)
        self._caught_up: dict[int, float] = {}

    # ------------------------------------------------------------------ one round

    def tick(self, now: float | None = None) -> TickReport:
        now = self.clock() if now is None else now
        report = TickReport()
        if self.lease is not None:
            try:
                held = self.lease.acquire()
            except Exception as exc:  # noqa: BLE001 - a database outage: log, retry next tick
                log.warning("scheduler cannot take its lease: %s", exc)
                report.errors.append(f"lease: {exc}")
                return report
            if not held:
                report.standby = True
                return report
        self._run_jobs(report, now)
        _log_done(report)
        return report

    def _keep(self, report: TickReport) -> bool:
        """Whether this process may go on with the tick (it still holds the lease)."""
        if self.lease is None:
            return True
        try:
            if self.lease.keep():
                return True
        except Exception as exc:  # noqa: BLE001 - a database outage: stop, retry next tick
            log.warning("scheduler cannot renew its lease: %s", exc)
        report.standby = True
        return False

    def _run_jobs(self, report: TickReport, now: float) -> None:
        try:
            with read_only(self.engine).connect() as conn:
                clocks = dayclose.tenant_clocks(conn)
        except Exception as exc:  # noqa: BLE001 - a database outage: log, retry next tick
            log.warning("scheduler cannot list tenants: %s", exc)
            report.errors.append(f"tenants: {exc}")
            return
        for clock in clocks:
            if now < self._caught_up.get(clock.tenant_id, 0.0):
                continue
            if not self._keep(report):
                return
            try:
                for outcome in dayclose.catch_up(self.store, clock, now):
                    report.closes.append(outcome)
                    log.info(
                        "closed %s for tenant %s: paid %s to %s members, %s exits%s",
                        outcome.day,
                        clock.code,
                        outcome.paid,
                        outcome.recipients,
                        outcome.exits,
                        " (already closed)" if outcome.replayed else "",
                    )
                self._caught_up[clock.tenant_id] = dayclose.next_midnight(clock, now)
            # one tenant's failure (its database rows, a bug) must not stop the others' closes
            except Exception as exc:  # logged with its traceback
                log.exception("day close of tenant %s failed", clock.code)
                report.errors.append(f"close {clock.code}: {exc}")
        payments, providers, refunds = self.payments, self.providers, self.refunds
        if payments is not None:
            if not self._keep(report):
                return
            report.reconciled = _guarded(report, "payments", partial(payments, now), 0)
        for name, job in self.jobs:
            if not self._keep(report):
                return
            done = _guarded(report, name, partial(job, self.engine, now), _FAILED)
            if done is not _FAILED:
                report.jobs[name] = done
        if providers is not None and self._keep(report):
            send = partial(retry_payouts, self.store, providers, now=now)
            report.payouts = _guarded(report, "payouts", send, 0)
        if refunds is not None and self._keep(report):
            report.refunds = _guarded(report, "refunds", partial(refunds, now), 0)
        if self.webhooks is not None and self._keep(report):
            report.webhooks = _guarded(report, "webhooks", partial(self.webhooks, now), 0)

    def next_wakeup(self, now: float) -> float:
        """The earliest next local midnight of any tenant, or ``now + interval``."""
        wake = now + self.interval
        try:
            with read_only(self.engine).connect() as conn:
                clocks = dayclose.tenant_clocks(conn)
        except Exception:  # noqa: BLE001 - the tick logged it; poll again after the interval
            return wake
        for clock in clocks:
            wake = min(wake, dayclose.next_midnight(clock, now) + _MIDNIGHT_SLACK)
        return wake

    # ------------------------------------------------------------------ running

    def run(self, *, once: bool = False) -> None:
        """Tick until :meth:`stop` (or once).  Start-up ticks at once: that is the catch-up."""
        while not self._stop.is_set():
            self.tick()
            if once:
                return
            now = self.clock()
            self._stop.wait(max(0.0, self.next_wakeup(now) - now))

    def start(self) -> threading.Thread:
        """Run in a daemon thread (inside ``tokenmall serve``); :meth:`stop` ends it."""
        self._stop.clear()
        thread = threading.Thread(target=self.run, name="tokenmall-scheduler", daemon=True)
        thread.start()
        self._thread = thread
        return thread

    def halt(self) -> None:
        """Ask :meth:`run` to return after the round in course (safe in a signal handler)."""
        self._stop.set()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop ticking and give the lease up, so another process takes over at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.release()

    def release(self) -> None:
        if self.lease is None:
            return
        try:
            self.lease.release()
        except Exception as exc:  # noqa: BLE001 - it expires by itself
            log.warning("scheduler lease not released (it expires by itself): %s", exc)
