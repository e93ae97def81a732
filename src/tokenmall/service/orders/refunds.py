"""Refunds of paid orders, and the CNY they send back through the provider.

Before settlement the ledger returns the money and no reward existed; after it, the ledger
takes the rewards back (R11: EP burned, pool back without lowering the price, quota removed).
The CNY part goes back through the provider after the commit (``tx.after_commit``), the rest as
SP.  Ledger keys are ``refund:<ref>:<refund id>``, so even a repeated call cannot apply a refund
twice; each provider call is idempotent on an id chosen here (``<ref>-r<n>`` for refunds,
``<ref>-<attempt>-void`` for voided payments), so repeating it after a crash is safe.  Its state
is kept on the row: ``pending`` until the provider accepted it, then ``submitted``, then
``succeeded``/``failed`` by notification.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from tokenmall.domain.economy import Command, Refund
from tokenmall.errors import IdempotencyConflict, InvalidCommand
from tokenmall.money import CNY_PLACES, cny_of_fen, fen_of
from tokenmall.payments import PaymentError, ProviderUnavailable
from tokenmall.payments.wechat_api import WeChatPayApi
from tokenmall.service.orders import queries, transitions
from tokenmall.service.orders import statements as q
from tokenmall.service.orders.context import OrderContext
from tokenmall.service.orders.models import (
    REFUNDABLE,
    OrderRefund,
    OrderStateError,
    check_ref,
    refund_of,
)
from tokenmall.service.orders.providers import ProviderRefund
from tokenmall.service.uow import TenantTx
from tokenmall.store import schema as s

log = logging.getLogger("tokenmall.orders")

_FEN_PER_ATOM = 10 ** (CNY_PLACES - 2)


def refund(
    ctx: OrderContext,
    tenant_id: int,
    tenant: str,
    ref: str,
    *,
    refund_id: str,
    amount: Decimal | None = None,
    reason: str | None = None,
) -> tuple[OrderRefund, bool]:
    """See :meth:`tokenmall.service.orders.OrderService.refund`."""
    with ctx.store.tenant_tx(tenant_id) as tx:
        result, created, sent = refund_in(
            ctx, tx, tenant, ref, refund_id=refund_id, amount=amount, reason=reason
        )
    if sent:
        with ctx.store.read() as conn:
            result = refund_of(queries.refund_by_ref(conn, tenant_id, refund_id), ref)
    return result, created


def refund_in(
    ctx: OrderContext,
    tx: TenantTx,
    tenant: str,
    ref: str,
    *,
    refund_id: str,
    amount: Decimal | None = None,
    reason: str | None = None,
) -> tuple[OrderRefund, bool, bool]:
    """:func:`refund` inside the caller's unit of work (which holds the tenant's lock), so
    that what decided the refund (an after-sales request accepted) commits with it or not at
    all; (refund, created, a provider call is scheduled after the commit)."""
    check_ref(refund_id, "refund_id")
    requested = None if amount is None else fen_of(amount)
    if requested is not None and requested <= 0:
        raise InvalidCommand("a refund amount must be greater than 0")
    tenant_id = tx.tenant_id
    prior = queries.refund_by_ref(tx.conn, tenant_id, refund_id)
    if prior is not None:
        prior_ref = queries.order_by_id(tx.conn, tenant_id, prior.order_id).ref
        if prior_ref != ref or prior.requested_fen != requested:
            raise IdempotencyConflict(
                f"refund {refund_id!r} was made for {cny_of_fen(prior.amount_fen)} of order "
                f"{prior_ref!r}; a refund id cannot be reused for another refund"
            )
        row = prior
        created = False
    else:
        _new_refund(
            ctx, tx, ref, refund_id=refund_id, requested=requested, reason=reason, now=ctx.clock()
        )
        row = queries.refund_by_ref(tx.conn, tenant_id, refund_id)
        created = True
    sent = row.provider_status == "pending"  # new, or a provider call that did not happen
    if sent:
        todo = [_provider_refund(tx.conn, tenant_id, row)]
        tx.after_commit(lambda: submit_refunds(ctx, tenant_id, tenant, todo, pump=True))
    return refund_of(row, ref), created, sent


def _provider_refund(conn: Connection, tenant_id: int, row: Any) -> ProviderRefund:
    """The provider call an ``order_refunds`` row stands for."""
    py = s.payments.c
    pay = conn.execute(
        select(py.provider, py.intent_id, py.cny_fen).where(
            py.tenant_id == tenant_id, py.id == row.payment_id
        )
    ).one()
    return ProviderRefund(
        "order_refunds",
        row.id,
        pay.provider,
        pay.intent_id,
        row.provider_refund_id,
        cny_of_fen(row.cny_fen),
        cny_of_fen(pay.cny_fen),
    )


def _world_cny_fen(tx: TenantTx, seq: int) -> int:
    """CNY a ledger transaction paid back to the payer (credits of ``world``), in fen."""
    t = s.transfers.c
    total = tx.conn.execute(
        select(func.coalesce(func.sum(t.amount), 0)).where(
            t.tenant_id == tx.tenant_id, t.seq == seq, t.asset == "CNY", t.credit == "world"
        )
    ).scalar_one()
    fen, rest = divmod(int(total), _FEN_PER_ATOM)
    if rest:  # pragma: no cover - the ledger refunds whole fen
        raise InvalidCommand(f"ledger transaction {seq} paid back a fraction of a fen")
    return int(fen)


def _new_refund(
    ctx: OrderContext,
    tx: TenantTx,
    ref: str,
    *,
    refund_id: str,
    requested: int | None,
    reason: str | None,
    now: float,
) -> None:
    conn, tenant_id = tx.conn, tx.tenant_id
    row = queries.order_row(conn, tenant_id, ref, lock=True)
    if row.status not in REFUNDABLE:
        raise OrderStateError(f"order {ref!r} is {row.status}; only paid orders refund")
    if row.status == "settled" and row.hold is not None:
        raise OrderStateError(
            f"order {ref!r} was settled by its {row.hold} hold (an exchange trade: the token "
            "is the buyer's and the seller was paid); it is final and is not refunded"
        )
    left = row.total_fen - row.refunded_fen
    amount = left if requested is None else requested
    if amount > left:
        raise InvalidCommand(f"order {ref!r} has only {cny_of_fen(left)} left to refund")
    phase = "after_settlement" if row.status == "settled" else "before_settlement"
    out = tx.apply_one(f"refund:{row.ref}:{refund_id}", Refund(row.ref, cny_of_fen(amount)))
    assert out.seq is not None
    cny_fen = _world_cny_fen(tx, out.seq)
    py = s.payments.c
    pay = conn.execute(
        select(py.id, py.provider).where(py.tenant_id == tenant_id, py.id == row.payment_id)
    ).one()
    if cny_fen == 0:
        provider_status = "none"
    else:
        provider_status = ctx.providers.refund_route(conn, tenant_id, pay.provider)
    rf = s.order_refunds.c
    n = conn.execute(
        select(func.count()).where(rf.tenant_id == tenant_id, rf.order_id == row.id)
    ).scalar_one()
    conn.execute(
        insert(s.order_refunds).values(
            tenant_id=tenant_id,
            order_id=row.id,
            refund_ref=refund_id,
            requested_fen=requested,
            amount_fen=amount,
            cny_fen=cny_fen,
            sp_fen=amount - cny_fen,
            phase=phase,
            ledger_seq=out.seq,
            reason=reason,
            payment_id=pay.id,
            provider_status=provider_status,
            provider_refund_id=f"{row.ref}-r{int(n) + 1}" if cny_fen else None,
            created_at=now,
            updated_at=now,
        )
    )
    transitions.mark_refunded(tx, row, refund_id=refund_id, amount_fen=amount, now=now)


def submit_refunds(
    ctx: OrderContext,
    tenant_id: int,
    tenant: str,
    refunds: Iterable[ProviderRefund],
    *,
    pump: bool = False,
) -> None:
    """Ask the provider for refunds decided by a committed transaction; record its answer.

    A refusal is recorded (``failed``, with the provider's reason), not raised: the money
    is already back in the ledger's books, and an operator settles it with the provider.
    A provider that could not be reached (a timeout, a 5xx) leaves the refund ``pending``:
    the request is idempotent on the refund id, so asking the same refund again, or the
    scheduler's :func:`retry_refunds`, sends it again.  ``pump``: then deliver what the
    in-process sandbox queued meanwhile.
    """
    refunds = list(refunds)
    api: WeChatPayApi | None = None
    if ctx.providers.needs_outbound(refunds):
        with ctx.store.read() as conn:
            api = ctx.hub.wechat_api(conn, tenant_id)
    for r in refunds:
        status, note = "submitted", None
        try:
            ctx.providers.send_refund(tenant, r, api)
        except ProviderUnavailable as exc:
            status, note = "pending", f"{exc.code}: {exc}"
            log.warning("provider refund %s not sent, will retry: %s", r.refund_id, note)
        except PaymentError as exc:
            status, note = "failed", f"{exc.code}: {exc}"
            log.warning("provider refund %s failed: %s", r.refund_id, note)
        with ctx.store.tenant_tx(tenant_id, lock=False) as tx:
            if r.table == "payments":
                py = s.payments.c
                values: dict[str, Any] = {"refund_status": status, "updated_at": ctx.clock()}
                if note is not None:
                    values["note"] = note[:300]
                tx.conn.execute(
                    update(s.payments)
                    .where(
                        py.tenant_id == tenant_id, py.id == r.row_id, py.refund_status == "pending"
                    )
                    .values(values)
                )
            else:
                rf = s.order_refunds.c
                tx.conn.execute(
                    update(s.order_refunds)
                    .where(
                        rf.tenant_id == tenant_id,
                        rf.id == r.row_id,
                        rf.provider_status == "pending",
                    )
                    .values(provider_status=status, updated_at=ctx.clock())
                )
    if pump and refunds:
        from tokenmall.service.orders.notifications import pump_sandbox  # noqa: PLC0415 - a cycle

        pump_sandbox(ctx, tenant_id, tenant)


def retry_refunds(ctx: OrderContext, *, older_than: float = 300.0, now: float | None = None) -> int:
    """Send again every provider refund still ``pending`` after ``older_than`` seconds.

    A refund is ``pending`` between the commit that decided it and the provider's answer;
    one that stays so had its call fail to reach the provider (or its process died before
    the call).  Each is idempotent at the provider on its refund id.  The scheduler runs
    this; returns how many were sent.
    """
    at = ctx.clock() if now is None else now
    cutoff = at - older_than
    py, rf, t = s.payments.c, s.order_refunds.c, s.tenants.c
    todo: dict[tuple[int, str], list[ProviderRefund]] = {}
    with ctx.store.read() as conn:
        tenants = [(int(r.id), str(r.code)) for r in conn.execute(select(t.id, t.code))]
        for tid, code in tenants:
            found = todo.setdefault((tid, code), [])
            for pay in conn.execute(
                select(s.payments).where(
                    py.tenant_id == tid, py.refund_status == "pending", py.updated_at < cutoff
                )
            ):
                found.append(ProviderRefund.of_void(pay, pay.provider_refund_id))
            for row in conn.execute(
                select(s.order_refunds).where(
                    rf.tenant_id == tid, rf.provider_status == "pending", rf.updated_at < cutoff
                )
            ):
                found.append(_provider_refund(conn, tid, row))
    for (tid, code), refunds in todo.items():
        if refunds:
            submit_refunds(ctx, tid, code, refunds, pump=ctx.providers.delivers_in_process(refunds))
    return sum(len(v) for v in todo.values())


_CHUNK = 1000  # orders per ledger batch (and per IN list) in refund_all_in


def refund_all_in(
    ctx: OrderContext, tx: TenantTx, tenant: str, refs: Sequence[str], *, reason: str, prefix: str
) -> int:
    """Refund each of ``refs`` in full (what is left of it), in the caller's unit of work:
    what :func:`refund_in` does for one order, for many at once (a lottery draw refunds every
    losing place): one ledger batch of ``Refund`` per chunk of orders, the refund rows and the
    orders' new state written in bulk, stock given back per SKU, each order's
    :class:`OrderRefunded` emitted, the CNY parts sent to the provider after the commit.
    Refund ids are ``<prefix><ref>``; an order already refunded under its id is skipped, so a
    replay refunds nothing twice.  Returns how many were refunded now."""
    done = 0
    for lo in range(0, len(refs), _CHUNK):
        done += _refund_chunk(ctx, tx, tenant, refs[lo : lo + _CHUNK], reason=reason, prefix=prefix)
    return done


def _refund_chunk(
    ctx: OrderContext, tx: TenantTx, tenant: str, refs: Sequence[str], *, reason: str, prefix: str
) -> int:
    conn, tid, now = tx.conn, tx.tenant_id, ctx.clock()
    o, rf, py, tr = s.orders.c, s.order_refunds.c, s.payments.c, s.transfers.c
    ids = {ref: f"{prefix}{ref}" for ref in refs}
    stmt = select(s.orders).where(o.tenant_id == tid, o.ref.in_(list(refs))).order_by(o.id)
    rows = {r.ref: r for r in conn.execute(q.locked(conn, stmt))}
    prior = set(
        conn.execute(
            select(rf.refund_ref).where(rf.tenant_id == tid, rf.refund_ref.in_(list(ids.values())))
        ).scalars()
    )
    todo = []
    for ref in refs:
        row = rows.get(ref)
        if row is None:
            raise OrderStateError(f"no order {ref!r}")
        if ids[ref] in prior:
            continue
        if row.status not in REFUNDABLE or row.total_fen == row.refunded_fen:
            raise OrderStateError(f"order {ref!r} is {row.status}; only paid orders refund")
        todo.append(row)
    if not todo:
        return 0
    items: list[tuple[str, Command]] = [
        (f"refund:{r.ref}:{ids[r.ref]}", Refund(r.ref, cny_of_fen(r.total_fen - r.refunded_fen)))
        for r in todo
    ]
    outs = tx.apply(items)
    for out in outs:
        out.raise_if_rejected()
    seqs = [int(out.seq or 0) for out in outs]
    world: dict[int, int] = dict(
        conn.execute(
            select(tr.seq, func.sum(tr.amount))
            .where(tr.tenant_id == tid, tr.seq.in_(seqs), tr.asset == "CNY", tr.credit == "world")
            .group_by(tr.seq)
        ).all()
    )
    providers: dict[int, str] = dict(
        conn.execute(
            select(py.id, py.provider).where(
                py.tenant_id == tid, py.id.in_([r.payment_id for r in todo])
            )
        ).all()
    )
    counts: dict[int, int] = dict(
        conn.execute(
            select(rf.order_id, func.count())
            .where(rf.tenant_id == tid, rf.order_id.in_([r.id for r in todo]))
            .group_by(rf.order_id)
        ).all()
    )
    routes: dict[str, str] = {}
    values = []
    for r, seq in zip(todo, seqs, strict=True):
        cny_fen, rest = divmod(int(world.get(seq, 0)), _FEN_PER_ATOM)
        if rest:  # pragma: no cover - the ledger refunds whole fen
            raise InvalidCommand(f"ledger transaction {seq} paid back a fraction of a fen")
        amount = r.total_fen - r.refunded_fen
        provider = providers[r.payment_id]
        if cny_fen and provider not in routes:
            routes[provider] = ctx.providers.refund_route(conn, tid, provider)
        values.append(
            {
                "tenant_id": tid,
                "order_id": r.id,
                "refund_ref": ids[r.ref],
                "requested_fen": None,
                "amount_fen": amount,
                "cny_fen": cny_fen,
                "sp_fen": amount - cny_fen,
                "phase": "after_settlement" if r.status == "settled" else "before_settlement",
                "ledger_seq": seq,
                "reason": reason,
                "payment_id": r.payment_id,
                "provider_status": routes[provider] if cny_fen else "none",
                "provider_refund_id": (
                    f"{r.ref}-r{int(counts.get(r.id, 0)) + 1}" if cny_fen else None
                ),
                "created_at": now,
                "updated_at": now,
            }
        )
    conn.execute(insert(s.order_refunds), values)
    transitions.mark_refunded_in_full(tx, todo, refund_ids=[ids[r.ref] for r in todo], now=now)
    pending = [v["refund_ref"] for v in values if v["provider_status"] == "pending"]
    if pending:
        sent = [
            _provider_refund(conn, tid, row)
            for row in conn.execute(
                select(s.order_refunds).where(rf.tenant_id == tid, rf.refund_ref.in_(pending))
            )
        ]
        tx.after_commit(lambda: submit_refunds(ctx, tid, tenant, sent, pump=True))
    return len(todo)
