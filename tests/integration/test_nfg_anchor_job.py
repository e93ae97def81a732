"""Scheduled anchoring on SQLite and PostgreSQL: the job publishes the root of each tenant's
new token events once the interval passed since its last anchor, never an empty or repeated
batch, and two schedulers running it at once publish each batch exactly once."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from nfg_helpers import T0, card, setup, store_for, tenant
from sqlalchemy import Engine

from tokenmall import bootstrap
from tokenmall.service.nfg import log, tokens
from tokenmall.service.uow import Store
from tokenmall.settings import Settings

HOUR = 3600.0


def _gift(store: Store, tid: int, members: list[str]) -> None:
    with store.tenant_tx(tid) as tx:
        tokens.airdrop(tx, "BLACK", members, at=T0)


def _anchors(engine: Engine, tid: int) -> list[tuple[int, int, int]]:
    with engine.connect() as conn:
        return [(a.id, a.first_seq, a.last_seq) for a in log.list_anchors(conn, tid)]


def test_anchors_new_events_once_the_interval_passed(db_engine: Engine) -> None:
    store = store_for(db_engine)
    tid = tenant(db_engine)
    quiet = tenant(db_engine)  # a tenant without token events is never anchored
    setup(store, tid, card(), {})
    assert log.anchor_due(store, T0, every=HOUR, tenant_id=tid) == 0  # nothing to publish
    _gift(store, tid, ["ann", "bob"])
    assert log.anchor_due(store, T0, every=0) == 0  # switched off
    # (one tenant at a time: on PostgreSQL the database holds other tests' tenants too)
    assert log.anchor_due(store, T0, every=HOUR, tenant_id=tid) == 1  # the first one at once
    assert log.anchor_due(store, T0, every=HOUR, tenant_id=quiet) == 0
    assert _anchors(db_engine, tid) == [(1, 1, 2)]
    assert _anchors(db_engine, quiet) == []
    assert log.anchor_due(store, T0 + 10, every=HOUR, tenant_id=tid) == 0  # nothing new
    _gift(store, tid, ["cat"])
    assert log.anchor_due(store, T0 + HOUR - 1, every=HOUR, tenant_id=tid) == 0  # not yet
    assert log.anchor_due(store, T0 + HOUR, every=HOUR, tenant_id=tid) == 1
    assert _anchors(db_engine, tid) == [(1, 1, 2), (2, 3, 3)]
    # every event is in exactly one anchor, and its proof checks offline
    with db_engine.connect() as conn:
        assert log.check_proof(log.proof(conn, tid, 3))


def _concurrently(store: Store, tid: int, now: float, n: int = 2) -> list[int]:
    gate = threading.Barrier(n)
    out = [0] * n

    def run(i: int) -> None:
        gate.wait()
        out[i] = log.anchor_due(store, now, every=HOUR, tenant_id=tid)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_two_schedulers_publish_each_batch_once(db_engine: Engine) -> None:
    store = store_for(db_engine)
    tid = tenant(db_engine)
    setup(store, tid, card(), {})
    expected: list[tuple[int, int, int]] = []
    for rnd in range(4):
        _gift(store, tid, [f"m{rnd}a", f"m{rnd}b", f"m{rnd}c"])
        out = _concurrently(store, tid, T0 + rnd * HOUR)
        assert sorted(out) == [0, 1], out
        expected.append((rnd + 1, 3 * rnd + 1, 3 * rnd + 3))
        assert _anchors(db_engine, tid) == expected  # contiguous, no overlap, no duplicate


@pytest.mark.parametrize("interval", [HOUR, 0.0])
def test_the_scheduler_runs_the_job(db_url: str, db_engine: Engine, interval: float) -> None:
    """The composition root registers the job with the setting's interval (0: off)."""
    settings = Settings(db_url=db_url, nfg_anchor_interval=interval)
    services = bootstrap.build(settings, db_engine)
    tid = tenant(db_engine)
    setup(services.store, tid, card(), {"ann": Decimal(0)})
    _gift(services.store, tid, ["ann"])
    sched = bootstrap.scheduler(services, lease=False)
    job = dict(sched.jobs)["anchor_nfg"]
    done = job(db_engine, T0)  # every tenant of the database (PostgreSQL: other tests' too)
    if interval:
        assert done >= 1
        assert _anchors(db_engine, tid) == [(1, 1, 1)]
    else:
        assert done == 0
        assert _anchors(db_engine, tid) == []
