"""Carrying out what the rules decided (:mod:`tokenmall.domain.groupbuy`'s moves), inside the
caller's unit of work: confirmations release the escrow hold of the places' orders (they
become ordinary orders; with a return window of 0 days they settle now, in join order), refunds
go through the order flow's refund in full (CNY back through the provider after the commit),
compensation, subsidy and fund releases are ledger ``RewardGrant`` s under ``groupbuy`` (SP
from the platform's revenue), a merchant leader's commission waits for the winners' orders to
settle, and an activity winner's locked fund is stored.

Idempotent: every ledger command carries the move's key, every refund the id
``grp-<order>``; the place rows were moved first, so the refund's own event finds them done.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import insert

from tokenmall.domain import groupbuy as gb
from tokenmall.domain.commands import RewardGrant
from tokenmall.domain.economy import Command
from tokenmall.money import fen_of
from tokenmall.service.orders import holds, queries, refunds
from tokenmall.service.orders.context import OrderContext
from tokenmall.service.uow import TenantTx
from tokenmall.store import schema as s

__all__ = ["GROUPBUY", "carry_out", "refund_order", "tenant_code"]

GROUPBUY = "groupbuy"  # the model name rewards of group buys are paid under
REFUND_PREFIX = "grp-"  # a place's refund id: grp-<order>


def tenant_code(tx: TenantTx) -> str:
    return queries.tenant_code(tx.conn, tx.tenant_id)


def refund_order(ctx: OrderContext, tx: TenantTx, ref: str, reason: str) -> None:
    """Refund what is left of order ``ref`` in full through the order flow."""
    refunds.refund_in(ctx, tx, tenant_code(tx), ref, refund_id=f"grp-{ref}", reason=reason[:200])


def carry_out(
    ctx: OrderContext, tx: TenantTx, group_id: int | None, moves: Sequence[gb.Move], now: float
) -> None:
    """Confirmations first (in the order given), then the rest in order.  ``group_id``: the
    group whose commission or funds the moves create (None for a campaign's draw)."""
    confirm = [m.ref for m in moves if isinstance(m, gb.Confirm)]
    if confirm:
        holds.release(tx, confirm, now)
    grants: list[tuple[str, Command]] = []  # one ledger batch for all, after the refunds
    by_reason: dict[str, list[str]] = {}  # refunds in bulk, in the order given per reason
    for move in moves:
        if isinstance(move, gb.Refund):
            by_reason.setdefault(move.reason, []).append(move.ref)
    if by_reason:
        code = tenant_code(tx)
        for reason, refs in by_reason.items():
            refunds.refund_all_in(ctx, tx, code, refs, reason=reason[:200], prefix=REFUND_PREFIX)
    for move in moves:
        if isinstance(move, gb.PaySP):
            if move.after_settled:
                assert group_id is not None  # a merchant group's own commission
                tx.conn.execute(
                    insert(s.group_commissions).values(
                        tenant_id=tx.tenant_id,
                        group_id=group_id,
                        leader=move.beneficiary,
                        amount_fen=fen_of(move.amount),
                        after_refs=json.dumps(list(move.after_settled)),
                        status="pending",
                    )
                )
            elif move.amount > 0:
                grants.append((move.key, RewardGrant(move.beneficiary, move.amount, GROUPBUY)))
        elif isinstance(move, gb.LockFund):
            assert group_id is not None  # an activity group's own winner
            tx.conn.execute(
                insert(s.group_funds).values(
                    tenant_id=tx.tenant_id,
                    group_id=group_id,
                    order_ref=move.ref,
                    member=move.member,
                    amount_fen=fen_of(move.amount),
                    steps=move.steps,
                    daily_steps=move.daily_steps,
                    released_fen=0,
                    released_steps=0,
                    refunded_fen=0,
                    day=None,
                    steps_today=0,
                    task_refs="[]",
                )
            )
    if grants:
        _apply_all(tx, grants)


def grant(tx: TenantTx, key: str, member: str, amount: Decimal) -> None:
    """SP to ``member`` from the platform's revenue, once per ``key``."""
    if amount > 0:
        tx.apply_one(key, RewardGrant(member, amount, GROUPBUY))


def _apply_all(tx: TenantTx, items: list[tuple[str, Command]]) -> None:
    for out in tx.apply(items):
        out.raise_if_rejected()
