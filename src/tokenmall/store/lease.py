"""A lease in the database: which one process, of every server on a database, runs a job.

The scheduler's jobs are idempotent, so two schedulers would do no harm, but N uvicorn
workers on M servers would each close days, expire orders and resend payouts: N x M times
the queries, logs that repeat each other, and nobody able to say who did what.  So each
scheduler takes the lease on every tick and only its holder runs the jobs.

A row per lease name (``scheduler_lease``) with the holder and an expiry, taken and renewed by
a conditional update: ``holder = me OR expires_at <= now``.  It works alike on SQLite and
PostgreSQL, across processes and across machines sharing the database (an advisory lock would
be PostgreSQL-only and a lock file one machine's).  A holder that dies stops renewing and its
lease expires after ``ttl`` seconds; one that stops cleanly releases it at once.  The clocks of
the servers must agree to well within ``ttl`` (NTP does).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from tokenmall.store import schema as s

__all__ = ["Lease", "LeaseState", "new_holder_id"]

log = logging.getLogger("tokenmall.lease")


def new_holder_id() -> str:
    """``host:pid:random``: who holds a lease, readable in the table and in the logs; the
    random part tells a restarted process from its predecessor that had the same pid."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True, slots=True)
class LeaseState:
    holder: str
    acquired_at: float
    expires_at: float


class Lease:
    """One named lease held for ``ttl`` seconds at a time by ``holder`` (see the module)."""

    def __init__(
        self,
        engine: Engine,
        name: str = "scheduler",
        *,
        ttl: float,
        holder: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl <= 0:
            raise ValueError("a lease's ttl must be positive")
        self.engine = engine
        self.name = name
        self.ttl = ttl
        self.holder = holder or new_holder_id()
        self.clock = clock
        self.held = False
        self._renewed = 0.0

    def state(self) -> LeaseState | None:
        """Who holds the lease now, as the database says (None: nobody ever took it)."""
        t = s.scheduler_lease.c
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.holder, t.acquired_at, t.expires_at).where(t.name == self.name)
            ).first()
        return None if row is None else LeaseState(row.holder, row.acquired_at, row.expires_at)

    def acquire(self) -> bool:
        """Take or renew the lease; whether this process holds it now.  Logs each change."""
        now = self.clock()
        t = s.scheduler_lease.c
        with self.engine.begin() as conn:
            taken = conn.execute(
                update(s.scheduler_lease)
                .where(t.name == self.name, or_(t.holder == self.holder, t.expires_at <= now))
                .values(holder=self.holder, expires_at=now + self.ttl)
            ).rowcount
        if not taken:
            # never taken: the first to insert the row holds it (its own transaction, since a
            # unique violation aborts a PostgreSQL transaction)
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        insert(s.scheduler_lease).values(
                            name=self.name,
                            holder=self.holder,
                            acquired_at=now,
                            expires_at=now + self.ttl,
                        )
                    )
                taken = 1
            except IntegrityError:
                taken = 0
        if taken and not self.held:
            with self.engine.begin() as conn:  # acquired_at: when this holder's turn began
                conn.execute(
                    update(s.scheduler_lease)
                    .where(t.name == self.name, t.holder == self.holder)
                    .values(acquired_at=now)
                )
            log.info("%s lease taken by %s (pid %d)", self.name, self.holder, os.getpid())
        elif not taken:
            state = self.state()
            other = state.holder if state is not None else "nobody"
            if self.held:
                log.warning("%s lease lost to %s: this process stops its jobs", self.name, other)
            elif self._renewed == 0.0:  # said once, at the first try
                log.info(
                    "%s on standby (pid %d): the lease is held by %s",
                    self.name,
                    os.getpid(),
                    other,
                )
        self.held = bool(taken)
        self._renewed = now
        return self.held

    def keep(self) -> bool:
        """Renew the lease if a third of its time has passed; whether it is still held.
        Called between the jobs of a long tick, so that a tick longer than ``ttl`` does not
        let a second process start the same jobs."""
        if not self.held:
            return False
        if self.clock() - self._renewed < self.ttl / 3:
            return True
        return self.acquire()

    def release(self) -> None:
        """Give the lease up (a clean stop): another process may take it on its next tick."""
        if not self.held:
            return
        t = s.scheduler_lease.c
        with self.engine.begin() as conn:
            conn.execute(
                update(s.scheduler_lease)
                .where(t.name == self.name, t.holder == self.holder)
                .values(expires_at=0.0)
            )
        self.held = False
        log.info("%s lease released by %s", self.name, self.holder)
