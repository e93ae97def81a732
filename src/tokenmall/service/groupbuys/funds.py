"""Activity winners' locked shopping funds (G4): released step by step by the member's tasks,
forfeited (what is still locked) by a refund of the winner's order.  The rules are
:class:`tokenmall.domain.groupfund.ShoppingFund`'s; a fund row is loaded into one, fed, and
written back, under the tenant's lock."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from sqlalchemy import select, update

from tokenmall.domain.groupfund import ShoppingFund
from tokenmall.money import cny_of_fen, fen_of
from tokenmall.service.groupbuys import moves
from tokenmall.service.tasks import Release
from tokenmall.service.uow import TenantTx
from tokenmall.store import schema as s

__all__ = ["fund_of", "fund_rows", "on_order_refunded", "on_task"]


def fund_rows(conn: Any, tenant_id: int, member: str) -> list[Any]:
    f = s.group_funds.c
    return list(
        conn.execute(
            select(s.group_funds).where(f.tenant_id == tenant_id, f.member == member).order_by(f.id)
        )
    )


def fund_of(row: Any) -> ShoppingFund:
    return ShoppingFund(
        group=str(row.group_id),
        order=row.order_ref,
        member=row.member,
        amount=cny_of_fen(row.amount_fen),
        steps=row.steps,
        daily_steps=row.daily_steps,
        released=cny_of_fen(row.released_fen),
        released_steps=row.released_steps,
        refunded=cny_of_fen(row.refunded_fen),
        day=None if row.day is None else date.fromisoformat(row.day),
        steps_today=row.steps_today,
        task_refs=list(json.loads(row.task_refs)),
    )


def _save(tx: TenantTx, row: Any, fund: ShoppingFund) -> None:
    f = s.group_funds.c
    tx.conn.execute(
        update(s.group_funds)
        .where(f.tenant_id == tx.tenant_id, f.id == row.id)
        .values(
            released_fen=fen_of(fund.released),
            released_steps=fund.released_steps,
            refunded_fen=fen_of(fund.refunded),
            day=None if fund.day is None else fund.day.isoformat(),
            steps_today=fund.steps_today,
            task_refs=json.dumps(fund.task_refs),
        )
    )


def on_task(tx: TenantTx, member: str, task: str, day: date, ref: str) -> list[Release]:
    """A task ``member`` did: each of their funds with something locked releases a step (at
    most its daily steps), paid in SP now.  Returns what each fund released."""
    if not fund_rows(tx.conn, tx.tenant_id, member):
        return []
    tx.lock()  # before reading what to change (a sign-up's invite task comes without it)
    out = []
    for row in fund_rows(tx.conn, tx.tenant_id, member):
        fund = fund_of(row)
        if fund.day is not None and day < fund.day:
            continue  # dated before the fund's last release (another clock): releases nothing
        pays = fund.on_task(task, day, ref)
        if not pays:
            continue
        _save(tx, row, fund)
        for pay in pays:
            moves.grant(tx, f"group:fund:{pay.key}", member, pay.amount)
            out.append(Release(moves.GROUPBUY, fund.order, pay.amount))
    return out


def on_order_refunded(tx: TenantTx, ref: str, refunded_fen: int) -> None:
    """The winner's order ``ref`` was refunded (cumulative): what is locked of it is lost."""
    f = s.group_funds.c
    row = tx.conn.execute(
        select(s.group_funds).where(f.tenant_id == tx.tenant_id, f.order_ref == ref)
    ).first()
    if row is None:
        return
    fund = fund_of(row)
    fund.on_refund(cny_of_fen(refunded_fen))
    _save(tx, row, fund)
