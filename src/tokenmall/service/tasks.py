"""Members' tasks (invite a new member, daily sign-in, share): the :class:`TaskDone` fact.

Why a record of its own: a task is reported by the tenant's back end (or follows from a
sign-up with an invitation), and what it releases depends on state that moves (chain21 counts
the tasks done since its last release; an activity fund releases at most ``daily_steps`` a
day).  So each task is recorded once per (member, key): the first report inserts the row and
emits :class:`~tokenmall.domain.events.TaskDone` in the same unit of work, under the tenant's
lock; its handlers release what it earns and note it on the row (:func:`note_release`).  A
report with a key already seen is a replay: it emits nothing and answers what the first one
released.  The same key for another task kind is refused (409 ``idempotency_conflict``).

Handlers of ``TaskDone`` (:func:`tokenmall.bootstrap.event_handlers`): the marketing models
with a task hook (chain21's held help money), then group buys (a step of each locked activity
fund).  A member who registers with an invitation is their referrer's ``invite`` task, keyed
``invite:<new member>``, so an integrator reporting that same invite again replays it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from tokenmall.domain.events import MemberJoined, TaskDone
from tokenmall.domain.groupfund import TASKS
from tokenmall.errors import IdempotencyConflict, InvalidCommand, NotFound
from tokenmall.service import dayclose, members
from tokenmall.service.codec import dec
from tokenmall.service.orders.models import check_ref
from tokenmall.service.pages import Page, fetch_page
from tokenmall.service.uow import Store, TenantTx
from tokenmall.store import schema as s

__all__ = [
    "Release",
    "TaskRecord",
    "check_task",
    "list_tasks",
    "note_release",
    "on_member_joined",
    "record",
    "report",
]

_t = s.member_tasks.c


@dataclass(frozen=True, slots=True)
class Release:
    """What a task released: ``source`` is the model (``chain21``) or ``groupbuy`` (an
    activity fund's step), ``order`` the order whose reward or fund it was."""

    source: str
    order: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class TaskRecord:
    member: str
    task: str
    key: str
    day: str
    at: float
    released: list[Release] = field(default_factory=list)
    replayed: bool = False  # this report's key was seen before: nothing new was released


def check_task(task: str) -> str:
    if task not in TASKS:
        raise InvalidCommand(f"unknown task {task!r}: one of {', '.join(sorted(TASKS))}")
    return task


def _row(conn: Connection, tenant_id: int, member: str, key: str) -> Any:
    return conn.execute(
        select(s.member_tasks).where(_t.tenant_id == tenant_id, _t.member == member, _t.key == key)
    ).first()


def _of(row: Any, *, replayed: bool = False) -> TaskRecord:
    released = [
        Release(r["source"], r["order"], Decimal(r["amount"])) for r in json.loads(row.released)
    ]
    return TaskRecord(row.member, row.task, row.key, row.day, row.at, released, replayed)


def _known(conn: Connection, tenant_id: int, member: str) -> None:
    """A registered member, or one the ledger knows (imported orders): others are 404."""
    try:
        members.get_profile(conn, tenant_id, member)
    except NotFound:
        m = s.members.c
        found = conn.execute(
            select(m.code).where(m.tenant_id == tenant_id, m.code == member)
        ).first()
        if found is None:
            raise NotFound(f"no member {member!r}") from None


def _replay(found: Any, task: str) -> TaskRecord:
    """The record of a key reported before; the same key for another kind is refused."""
    if found.task != task:
        raise IdempotencyConflict(
            f"task key {found.key!r} of {found.member} was a {found.task!r} task, not {task!r}"
        )
    return _of(found, replayed=True)


def record(tx: TenantTx, member: str, task: str, key: str, *, day: date, at: float) -> TaskRecord:
    """Record the task and emit :class:`TaskDone` (its handlers run now), or answer the
    record of the first report of ``key``.  Two reports of one key must queue behind each
    other (:func:`report` holds the tenant's lock; a sign-up's invite key is new with its
    member), so the second is the replay; the handlers lock the tenant before they pay."""
    check_task(task)
    found = _row(tx.conn, tx.tenant_id, member, key)
    if found is not None:
        return _replay(found, task)
    try:
        with tx.savepoint():
            tx.conn.execute(
                insert(s.member_tasks).values(
                    tenant_id=tx.tenant_id,
                    member=member,
                    key=key,
                    task=task,
                    day=day.isoformat(),
                    at=at,
                    released="[]",
                )
            )
    except IntegrityError:
        # the same key recorded meanwhile without the tenant's lock (a sign-up's invite
        # task and the integrator's report of it at once): the other one is the first
        found = _row(tx.conn, tx.tenant_id, member, key)
        if found is None:  # pragma: no cover - the unique key is the only constraint
            raise
        return _replay(found, task)
    tx.emit(TaskDone(member, task, key, day.isoformat(), at))
    return _of(_row(tx.conn, tx.tenant_id, member, key))


def report(
    store: Store,
    tenant_id: int,
    *,
    member: str,
    task: str,
    key: str,
    now: float,
    day: date | None = None,
) -> TaskRecord:
    """A task reported by the tenant's back end (see the module docstring).  ``day``: the
    tenant's local day of ``now`` unless given (the daily caps count the tenant's days)."""
    check_task(task)
    check_ref(key, "task key")
    members.check_member_code(member)
    with store.tenant_tx(tenant_id) as tx:
        _known(tx.conn, tenant_id, member)
        when = day or dayclose.tenant_clock(tx.conn, tenant_id).today(now)
        return record(tx, member, task, key, day=when, at=now)


def note_release(tx: TenantTx, event: TaskDone, source: str, order: str, amount: Decimal) -> None:
    """A handler of ``event`` released ``amount``: noted on the task's record (its answer)."""
    row = _row(tx.conn, tx.tenant_id, event.member, event.key)
    if row is None:  # pragma: no cover - TaskDone is emitted by record() only
        return
    released = json.loads(row.released)
    released.append({"source": source, "order": order, "amount": dec(amount)})
    tx.conn.execute(
        update(s.member_tasks)
        .where(_t.tenant_id == tx.tenant_id, _t.id == row.id)
        .values(released=json.dumps(released))
    )


def on_member_joined(tx: TenantTx, event: MemberJoined) -> None:
    """A member registered with an invitation: the referrer's ``invite`` task."""
    if event.referrer is None:
        return
    day = dayclose.tenant_clock(tx.conn, tx.tenant_id).today(event.at)
    record(tx, event.referrer, "invite", f"invite:{event.member}", day=day, at=event.at)


def list_tasks(
    conn: Connection, tenant_id: int, member: str, *, limit: int, cursor: str | None
) -> Page[TaskRecord]:
    """A member's tasks in the order they were reported, with what each released."""
    q = select(s.member_tasks).where(_t.tenant_id == tenant_id, _t.member == member)
    return fetch_page(conn, q, _t.id, limit=limit, cursor=cursor, convert=_of)
