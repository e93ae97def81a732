"""Sending the outbox: the scheduler's delivery job, its retry schedule, and what an operator
does with deliveries (list, replay).

One round (:meth:`WebhookSender.deliver_due`), per tenant:

1. pick due pending rows whose endpoint is enabled and that have no earlier pending row in
   their stream (an order's events go out in the order written: a later one waits until the
   earlier one was delivered or given up);
2. claim each with a conditional update (``claim``, ``claimed_until``): of two schedulers,
   one wins the row and the other skips it; a scheduler that dies mid-send leaves a claim that
   lapses, and the row is sent again (at least once: receivers de-duplicate on the event id);
3. POST it, outside any transaction, with a timeout;
4. record the answer on the row it still holds: a 2xx is ``delivered``; anything else (a
   non-2xx status, a timeout, a refused connection) is tried again after an exponential
   back-off, and after ``max_attempts`` the row is ``failed`` until an operator replays it.

A delivered row makes the next row of its stream due in the same round, so a backlog drains
in one round rather than one row per stream per tick.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import Connection, Engine, and_, literal, or_, select, update

from tokenmall.errors import NotFound
from tokenmall.service.pages import Page, fetch_page
from tokenmall.service.webhooks.models import Delivery, delivery_of
from tokenmall.service.webhooks.signing import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    signature_header,
)
from tokenmall.store import schema as s
from tokenmall.store.db import read_only

__all__ = [
    "RetryPolicy",
    "WebhookSender",
    "get_delivery",
    "list_deliveries",
    "replay_delivery",
]

log = logging.getLogger("tokenmall.webhooks")

USER_AGENT = "tokenmall-webhooks/1"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempt ``n`` failed: the next is ``min(cap, base * 2**(n-1))`` seconds later; after
    ``max_attempts`` the delivery is given up (``failed``).  The defaults retry for about a
    day and a half: 30 s, 1, 2, 4, 8, 16, 32 min, 1 h 4 min, then every 2 h."""

    base: float = 30.0
    cap: float = 7200.0
    max_attempts: int = 20

    def delay(self, attempts: int) -> float:
        return float(min(self.cap, self.base * 2 ** max(0, attempts - 1)))


@dataclass(frozen=True, slots=True)
class _Due:
    id: int
    tenant_id: int
    event_id: str
    event_type: str
    payload: str
    attempts: int
    url: str
    secret: str


def _due_rows(conn: Connection, tenant_id: int, now: float, limit: int) -> list[_Due]:
    d = s.webhook_deliveries.alias("d")
    earlier = s.webhook_deliveries.alias("earlier")
    e = s.webhook_endpoints.c
    blocked = (
        select(literal(1))
        .where(
            earlier.c.tenant_id == d.c.tenant_id,
            earlier.c.endpoint_id == d.c.endpoint_id,
            earlier.c.stream == d.c.stream,
            earlier.c.id < d.c.id,
            earlier.c.status == "pending",
        )
        .exists()
    )
    rows = conn.execute(
        select(
            d.c.id,
            d.c.tenant_id,
            d.c.event_id,
            d.c.event_type,
            d.c.payload,
            d.c.attempts,
            e.url,
            e.secret,
        )
        .join(s.webhook_endpoints, and_(e.tenant_id == d.c.tenant_id, e.id == d.c.endpoint_id))
        .where(
            d.c.tenant_id == tenant_id,
            d.c.status == "pending",
            d.c.next_attempt_at <= now,
            or_(d.c.claimed_until.is_(None), d.c.claimed_until < now),
            e.disabled_at.is_(None),
            ~blocked,
        )
        .order_by(d.c.id)
        .limit(limit)
    ).all()
    return [_Due(**r._mapping) for r in rows]


class WebhookSender:
    """The delivery job (one per process; the composition root builds it).

    ``transport``: an httpx transport (tests pass ``httpx.MockTransport``); ``timeout``: per
    request, connect included; a receiver slower than that is a failed attempt.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        policy: RetryPolicy | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        batch: int = 100,
    ) -> None:
        self.engine = engine
        self.policy = policy if policy is not None else RetryPolicy()
        self.timeout = timeout
        self.batch = batch
        # a claim outlives the longest send; a scheduler killed mid-send loses it after this
        self.lease = timeout + 60.0
        self._transport = transport
        self._client: httpx.Client | None = None  # made at the first send: most processes
        # that build the services (CLI commands, tests) never send anything

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                timeout=self.timeout,
                transport=self._transport,
                follow_redirects=False,  # a redirect is an answer to fix, not to follow
                trust_env=False,  # no proxy from the environment between us and receivers
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def deliver_due(
        self,
        now: float | None = None,
        *,
        limit: int = 1000,
        tenants: Sequence[int] | None = None,
    ) -> int:
        """Send what is due (of ``tenants``, else of every tenant); returns how many attempts
        were made (at most ``limit``: the rest waits for the next round)."""
        now = time.time() if now is None else now
        if tenants is None:
            with read_only(self.engine).connect() as conn:
                tenants = [int(t) for t in conn.execute(select(s.tenants.c.id)).scalars()]
        attempts = 0
        for tenant_id in tenants:
            while attempts < limit:
                with read_only(self.engine).connect() as conn:
                    due = _due_rows(conn, tenant_id, now, min(self.batch, limit - attempts))
                if not due:
                    break
                for row in due:
                    claim = self._claim(row, now)
                    if claim is None:
                        continue  # another scheduler has it
                    self._send(row, claim, now)
                    attempts += 1
        return attempts

    def _claim(self, row: _Due, now: float) -> str | None:
        d = s.webhook_deliveries.c
        token = secrets.token_hex(8)
        with self.engine.begin() as conn:
            done = conn.execute(
                update(s.webhook_deliveries)
                .where(
                    d.tenant_id == row.tenant_id,
                    d.id == row.id,
                    d.status == "pending",
                    d.next_attempt_at <= now,
                    or_(d.claimed_until.is_(None), d.claimed_until < now),
                )
                .values(claim=token, claimed_until=now + self.lease)
            )
        return token if done.rowcount == 1 else None

    def _post(self, row: _Due) -> tuple[bool, int | None, str | None]:
        body = row.payload.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: signature_header(row.secret, body),
            EVENT_ID_HEADER: row.event_id,
            EVENT_TYPE_HEADER: row.event_type,
        }
        try:
            answer = self.client.post(row.url, content=body, headers=headers)
        except httpx.TimeoutException:
            return False, None, f"no answer within {self.timeout} s"
        except httpx.HTTPError as exc:
            return False, None, f"{type(exc).__name__}: {exc}"[:300]
        if 200 <= answer.status_code < 300:
            return True, answer.status_code, None
        return False, answer.status_code, f"HTTP {answer.status_code}"

    def _send(self, row: _Due, claim: str, now: float) -> None:
        ok, status, error = self._post(row)
        attempts = row.attempts + 1
        values: dict[str, Any] = {
            "attempts": attempts,
            "claim": None,
            "claimed_until": None,
            "last_status": status,
            "last_error": error,
        }
        if ok:
            values.update(status="delivered", delivered_at=time.time())
        elif attempts >= self.policy.max_attempts:
            values.update(status="failed")
            log.warning("webhook %s given up after %s attempts: %s", row.id, attempts, error)
        else:
            values.update(next_attempt_at=now + self.policy.delay(attempts))
        d = s.webhook_deliveries.c
        with self.engine.begin() as conn:
            # only while the claim is still ours: a lapsed claim was taken over, and the
            # other scheduler's outcome is the one to keep
            conn.execute(
                update(s.webhook_deliveries)
                .where(d.tenant_id == row.tenant_id, d.id == row.id, d.claim == claim)
                .values(**values)
            )


def get_delivery(conn: Connection, tenant_id: int, delivery_id: int) -> Delivery:
    d = s.webhook_deliveries.c
    row = conn.execute(
        select(s.webhook_deliveries).where(d.tenant_id == tenant_id, d.id == delivery_id)
    ).first()
    if row is None:
        raise NotFound(f"no webhook delivery {delivery_id}")
    return delivery_of(row)


def list_deliveries(
    conn: Connection,
    tenant_id: int,
    *,
    status: str | None = None,
    endpoint_id: int | None = None,
    limit: int,
    cursor: str | None,
) -> Page[Delivery]:
    """The tenant's deliveries, oldest first; ``status="failed"`` is what needs an operator."""
    d = s.webhook_deliveries.c
    query = select(s.webhook_deliveries).where(d.tenant_id == tenant_id)
    if status is not None:
        query = query.where(d.status == status)
    if endpoint_id is not None:
        query = query.where(d.endpoint_id == endpoint_id)
    return fetch_page(conn, query, d.id, limit=limit, cursor=cursor, convert=delivery_of)


def replay_delivery(
    conn: Connection, tenant_id: int, delivery_id: int, *, now: float | None = None
) -> Delivery:
    """Send a delivery again from the first attempt: a failed one after its receiver is
    fixed, or a delivered one a receiver lost.  Same event id and body (the receiver's
    de-duplication applies); the next round of the scheduler sends it."""
    d = s.webhook_deliveries.c
    get_delivery(conn, tenant_id, delivery_id)
    conn.execute(
        update(s.webhook_deliveries)
        .where(d.tenant_id == tenant_id, d.id == delivery_id)
        .values(
            status="pending",
            attempts=0,
            next_attempt_at=time.time() if now is None else now,
            last_error=None,
            delivered_at=None,
        )
    )
    return get_delivery(conn, tenant_id, delivery_id)
