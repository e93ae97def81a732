"""Paying the models' rewards through the ledger, and reading them back.

Every reward is a ledger command (``RewardGrant`` for a reward, ``RewardTakeBack`` for a
refund's take-back: SP backed by the platform's revenue, never the pool or the dividend fund),
keyed ``reward:<order>:<model>:<beneficiary>:<step>``, and a row of ``marketing_rewards``
unique on (order, model, beneficiary, step).  Both keys make the second payment of a reward
impossible, whatever the handlers do: the ledger replays the first, and the row's unique key
rolls the transaction back.

A reward frozen by ``distribution``'s ``freeze_days`` can be spent at once but not withdrawn
before its ``withdrawable_at``: :func:`frozen_sp` is what the wallet holds back from a
withdrawal (a take-back carries its grant's time, so it unfreezes with it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, func, insert, select

from tokenmall.domain.commands import Join, RewardGrant, RewardTakeBack
from tokenmall.domain.economy import Command
from tokenmall.domain.marketing import Reward
from tokenmall.errors import NotFound
from tokenmall.money import CNY_PLACES, ZERO, atoms, from_atoms
from tokenmall.service import members
from tokenmall.service.pages import Page, fetch_page
from tokenmall.service.uow import TenantTx
from tokenmall.store import schema as s

__all__ = [
    "ModelTotal",
    "Move",
    "RewardEntry",
    "frozen_sp",
    "list_moves",
    "list_rewards",
    "member_totals",
    "pay",
    "tenant_totals",
]

_r = s.marketing_rewards.c
_GRANT_TIME = select(_r.withdrawable_at).where(
    _r.tenant_id == bindparam("t"),
    _r.order_ref == bindparam("o"),
    _r.model == bindparam("m"),
    _r.beneficiary == bindparam("b"),
    _r.step == bindparam("s"),
)
_m = s.members.c
_KNOWN = select(_m.code).where(
    _m.tenant_id == bindparam("t"), _m.code.in_(bindparam("codes", expanding=True))
)
_INSERT = insert(s.marketing_rewards)
_FROZEN = select(func.coalesce(func.sum(_r.amount), 0)).where(
    _r.tenant_id == bindparam("t"),
    _r.beneficiary == bindparam("b"),
    _r.withdrawable_at > bindparam("now"),
)


def _cny(n: int | None) -> Decimal:
    return from_atoms(int(n or 0), CNY_PLACES)


def pay(tx: TenantTx, rewards: Sequence[Reward], at: float) -> None:
    """Pay ``rewards`` (negative: take back) in one ledger batch, in the order given."""
    todo = [r for r in rewards if r.amount != 0]
    if not todo:
        return
    joins = _joins(tx, {r.beneficiary for r in todo if r.amount > 0})
    items: list[tuple[str, Command]] = [
        (
            r.ledger_key,
            RewardGrant(r.beneficiary, r.amount, r.model)
            if r.amount > 0
            else RewardTakeBack(r.beneficiary, -r.amount, r.model),
        )
        for r in todo
    ]
    rows: list[dict[str, Any]] = []
    outcomes = tx.apply([*joins, *items])
    for out in outcomes[: len(joins)]:
        out.raise_if_rejected()
    for r, out in zip(todo, outcomes[len(joins) :], strict=True):
        out.raise_if_rejected()
        if out.status != "applied":
            continue  # paid before under this key: its row exists
        assert out.seq is not None
        rows.append(
            {
                "tenant_id": tx.tenant_id,
                "order_ref": r.order,
                "model": r.model,
                "beneficiary": r.beneficiary,
                "step": r.step,
                "amount": atoms(r.amount, CNY_PLACES),
                "withdrawable_at": _withdrawable_at(tx, r),
                "at": at,
                "ledger_seq": out.seq,
            }
        )
    if rows:
        tx.conn.execute(_INSERT, rows)


def _joins(tx: TenantTx, beneficiaries: set[str]) -> list[tuple[str, Command]]:
    """``Join`` commands for beneficiaries the ledger does not know yet (a referrer who never
    bought), with the referral link the member registry holds, as the order flow does."""
    out: list[tuple[str, Command]] = []
    if not beneficiaries:
        return out
    known = {
        str(c)
        for c in tx.conn.execute(
            _KNOWN, {"t": tx.tenant_id, "codes": sorted(beneficiaries)}
        ).scalars()
    }
    for member in sorted(beneficiaries - known):
        try:
            referrer = members.get_profile(tx.conn, tx.tenant_id, member).referrer
        except NotFound:
            referrer = None
        key = f"join:{member}:{referrer}" if referrer is not None else f"join:{member}"
        out.append((key, Join(member, referrer)))
    return out


def _withdrawable_at(tx: TenantTx, r: Reward) -> float | None:
    if r.amount > 0:
        return None if r.withdrawable_at is None else r.withdrawable_at.timestamp()
    grant_step = r.step.split(":refund:", 1)[0]
    found = tx.conn.execute(
        _GRANT_TIME,
        {"t": tx.tenant_id, "o": r.order, "m": r.model, "b": r.beneficiary, "s": grant_step},
    ).scalar()
    return None if found is None else float(found)


def frozen_sp(conn: Connection, tenant_id: int, member: str, now: float) -> Decimal:
    """SP of ``member``'s rewards still frozen at ``now`` (net of take-backs)."""
    total = conn.execute(_FROZEN, {"t": tenant_id, "b": member, "now": now}).scalar()
    return max(ZERO, _cny(total))


# ----------------------------------------------------------------------------- reads


@dataclass(frozen=True, slots=True)
class RewardEntry:
    id: int
    order: str
    model: str
    member: str
    step: str
    amount: Decimal  # negative: taken back
    withdrawable_at: float | None
    at: float
    ledger_seq: int


@dataclass(frozen=True, slots=True)
class ModelTotal:
    model: str
    granted: Decimal
    taken_back: Decimal
    net: Decimal
    frozen: Decimal
    entries: int


@dataclass(frozen=True, slots=True)
class Move:
    id: int
    model: str
    kind: str
    member: str
    order: str
    other: str
    amount: Decimal
    at: float


def _entry(row: Any) -> RewardEntry:
    return RewardEntry(
        id=row.id,
        order=row.order_ref,
        model=row.model,
        member=row.beneficiary,
        step=row.step,
        amount=_cny(row.amount),
        withdrawable_at=row.withdrawable_at,
        at=row.at,
        ledger_seq=row.ledger_seq,
    )


def list_rewards(
    conn: Connection,
    tenant_id: int,
    *,
    member: str | None = None,
    model: str | None = None,
    order: str | None = None,
    limit: int,
    cursor: str | None,
) -> Page[RewardEntry]:
    """Every reward and take-back, oldest first, optionally of one member, model or order."""
    q = select(s.marketing_rewards).where(_r.tenant_id == tenant_id)
    if member is not None:
        q = q.where(_r.beneficiary == member)
    if model is not None:
        q = q.where(_r.model == model)
    if order is not None:
        q = q.where(_r.order_ref == order)
    return fetch_page(conn, q, _r.id, limit=limit, cursor=cursor, convert=_entry)


def _totals(conn: Connection, where: Any, now: float) -> list[ModelTotal]:
    positive = case((_r.amount > 0, _r.amount), else_=0)
    negative = case((_r.amount < 0, -_r.amount), else_=0)
    frozen = case((_r.withdrawable_at > now, _r.amount), else_=0)
    rows = conn.execute(
        select(
            _r.model,
            func.sum(positive).label("granted"),
            func.sum(negative).label("taken"),
            func.sum(frozen).label("frozen"),
            func.count().label("n"),
        )
        .where(where)
        .group_by(_r.model)
        .order_by(_r.model)
    )
    return [
        ModelTotal(
            model=r.model,
            granted=_cny(r.granted),
            taken_back=_cny(r.taken),
            net=_cny(r.granted) - _cny(r.taken),
            frozen=max(ZERO, _cny(r.frozen)),
            entries=int(r.n),
        )
        for r in rows
    ]


def member_totals(conn: Connection, tenant_id: int, member: str, now: float) -> list[ModelTotal]:
    """What each model paid ``member``: granted, taken back, net, still frozen."""
    return _totals(conn, and_(_r.tenant_id == tenant_id, _r.beneficiary == member), now)


def tenant_totals(conn: Connection, tenant_id: int, now: float) -> list[ModelTotal]:
    """The same over every member of the tenant (what each model cost the platform)."""
    return _totals(conn, _r.tenant_id == tenant_id, now)


def _move(row: Any) -> Move:
    return Move(
        id=row.id,
        model=row.model,
        kind=row.kind,
        member=row.member,
        order=row.order_ref,
        other=row.other,
        amount=_cny(row.amount),
        at=row.at,
    )


def list_moves(
    conn: Connection,
    tenant_id: int,
    *,
    member: str | None = None,
    limit: int,
    cursor: str | None,
) -> Page[Move]:
    """chain21's moves (agent, placed, boss, bonus, held, released, taken_back), in order."""
    mv = s.marketing_moves.c
    q = select(s.marketing_moves).where(mv.tenant_id == tenant_id)
    if member is not None:
        q = q.where(mv.member == member)
    return fetch_page(conn, q, mv.id, limit=limit, cursor=cursor, convert=_move)
