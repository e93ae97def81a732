"""The SP wallet (issue 3 item 6): balance, member conversions, and withdrawals paid out through
a payment provider.

A balance can never be spent twice, because every movement of SP is a ledger command applied
under the tenant's lock, and the ledger refuses one that would take a wallet below zero:

* sell (R3), exchange EP->SP (R5) and SP->EP (R6) are single ledger commands keyed by the
  client's ``Idempotency-Key`` (``wallet:<member>:<key>``), so a retried request replays the
  first answer and a reused key with other content is refused;
* a withdrawal takes its SP out of the wallet *when it is requested* (ledger ``Withdraw``, into
  a payout hold) in the same database transaction that records the request, so an operator's
  review or a slow provider can never find the money already spent.  A rejection or a failed
  payout returns it (``PayoutResult(paid=False)``), a payout confirmed by the provider
  finalises it (``paid=True``).  Both are keyed ``payout:<ref>``: the first outcome wins and a
  contradicting late notification is refused.  The outcome applied emits ``WithdrawalPaid`` or
  ``WithdrawalFailed`` in its transaction (webhooks write their outbox rows there), so the
  functions that apply one take the composition root's store, not a bare ledger.

Withdrawal states: ``requested`` -> ``approved`` | ``rejected`` (operator) -> ``paid`` |
``failed`` (provider).  The payout is sent only after the approval has committed (never from
inside a transaction); if the process dies in between, :func:`retry_payouts` (the scheduler)
sends it again, which is safe because providers are idempotent on the payout id.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import Connection, insert, or_, select, update

from tokenmall.domain.economy import BuyPoints, Command, Exchange, PayoutResult, Sell, Withdraw
from tokenmall.domain.events import WithdrawalFailed, WithdrawalPaid
from tokenmall.errors import (
    IdempotencyConflict,
    InsufficientBalance,
    InvalidCommand,
    NotFound,
)
from tokenmall.money import (
    CNY_PLACES,
    EP_PLACES,
    FEN_PLACES,
    ZERO,
    fen_of,
    floor_fen,
    from_atoms,
    mul,
)
from tokenmall.payments.base import (
    Notification,
    NotificationKind,
    PayoutAnswer,
    PayoutStatus,
)
from tokenmall.payments.errors import (
    InvalidPaymentRequest,
    PaymentConflict,
    PaymentError,
    ProviderRefused,
)
from tokenmall.payments.wechat_api import EncryptedField
from tokenmall.service.errors import Conflict
from tokenmall.service.ledger import Ledger, Outcome
from tokenmall.service.marketing.rewards import frozen_sp
from tokenmall.service.members import get_profile
from tokenmall.service.pages import Page, fetch_page
from tokenmall.service.reads import member_no, tenant_params
from tokenmall.service.uow import Store, TenantTx, as_store
from tokenmall.store import schema as s
from tokenmall.store.db import read_only

__all__ = [
    "ActionResult",
    "PayoutHandler",
    "PayoutProviders",
    "WalletBalance",
    "Withdrawal",
    "apply_payout_notification",
    "apply_payout_result",
    "approve_withdrawal",
    "balance",
    "buy_points",
    "check_idempotency_key",
    "exchange",
    "get_withdrawal",
    "list_withdrawals",
    "payout_handler",
    "reject_withdrawal",
    "request_withdrawal",
    "retry_payouts",
    "sell",
    "send_payout",
    "withdrawal_fee",
]

log = logging.getLogger("tokenmall.wallet")

_KEY_MAX = 64
_ACCOUNT_MAX = 128
# a payout sent this long ago without an outcome is sent again (the provider deduplicates)
RESEND_AFTER_SECONDS = 300.0
_OPEN = ("requested", "approved")


# ----------------------------------------------------------------------------- plumbing


def check_idempotency_key(key: str) -> str:
    """Client keys: 1-64 printable ASCII characters without spaces (they end up in URLs/logs)."""
    if not key or len(key) > _KEY_MAX or not key.isascii() or not key.isprintable() or " " in key:
        raise InvalidCommand(
            f"Idempotency-Key must be 1-{_KEY_MAX} printable ASCII characters without spaces"
        )
    return key


def _apply(tx: TenantTx, key: str, cmd: Command) -> Outcome:
    """One ledger command in the wallet's unit of work (its refusal raises its own error):
    a withdrawal commits its ledger hold and its request row together, or neither."""
    return tx.apply_one(key, cmd)


# ----------------------------------------------------------------------------- balance


@dataclass(frozen=True, slots=True)
class WalletBalance:
    member: str
    stable: Decimal  # SP spendable now
    pending_withdrawals: Decimal  # SP already taken out for requested or approved withdrawals
    points: Decimal


def balance(conn: Connection, tenant_id: int, member: str) -> WalletBalance:
    """The member's SP (and EP), plus what is on its way out in open withdrawals."""
    get_profile(conn, tenant_id, member)
    m = s.members.c
    row = conn.execute(
        select(m.sp, m.ep).where(m.tenant_id == tenant_id, m.code == member)
    ).one_or_none()
    w = s.withdrawals.c
    held = sum(
        int(r.amount_fen)
        for r in conn.execute(
            select(w.amount_fen).where(
                w.tenant_id == tenant_id, w.member == member, w.status.in_(_OPEN)
            )
        )
    )
    return WalletBalance(
        member=member,
        stable=ZERO if row is None else from_atoms(row.sp, CNY_PLACES),
        pending_withdrawals=from_atoms(held, FEN_PLACES),
        points=ZERO if row is None else from_atoms(row.ep, EP_PLACES),
    )


# ----------------------------------------------------------------------------- conversions


@dataclass(frozen=True, slots=True)
class ActionResult:
    """A conversion as the ledger applied it (or replayed it for a repeated key)."""

    kind: str
    replayed: bool
    seq: int
    figures: dict[str, str]
    price: str  # after the command, 4 decimals
    result: dict[str, Any]


def _member_action(
    ledger: Ledger, tenant_id: int, member: str, key: str, cmd: Command, *, kind: str
) -> ActionResult:
    check_idempotency_key(key)
    with read_only(ledger.engine).connect() as conn:
        get_profile(conn, tenant_id, member)
        if member_no(conn, tenant_id, member) is None:
            # a registered member who never moved value holds nothing: say so, not "unknown"
            raise InsufficientBalance(f"member {member!r} holds no points or SP yet")
    with as_store(ledger).tenant_tx(tenant_id) as tx:
        outcome = tx.apply_one(f"wallet:{member}:{key}", cmd)
    result = outcome.result or {}
    return ActionResult(
        kind=kind,
        replayed=outcome.status == "replayed",
        seq=outcome.seq or 0,
        figures=dict(result.get("figures", {})),
        price=str(result.get("price", "")),
        result=result,
    )


def sell(ledger: Ledger, tenant_id: int, member: str, points: Decimal, key: str) -> ActionResult:
    """R3: sell points back to the pool; the payout (after the sell fee) arrives as SP."""
    return _member_action(ledger, tenant_id, member, key, Sell(member, points), kind="sell")


def exchange(
    ledger: Ledger, tenant_id: int, member: str, points: Decimal, key: str
) -> ActionResult:
    """R5: points to the treasury for SP at the current price (pool and price unchanged)."""
    return _member_action(ledger, tenant_id, member, key, Exchange(member, points), kind="exchange")


def buy_points(
    ledger: Ledger, tenant_id: int, member: str, stable: Decimal, key: str
) -> ActionResult:
    """R6: spend SP on treasury points at the current price."""
    return _member_action(
        ledger, tenant_id, member, key, BuyPoints(member, stable), kind="buy_points"
    )


# ----------------------------------------------------------------------------- withdrawals


@dataclass(frozen=True, slots=True)
class Withdrawal:
    id: str
    member: str
    account: str
    amount: Decimal
    fee: Decimal
    status: str
    requested_at: float
    reviewed_at: float | None
    reviewer: str | None
    note: str | None
    payout_sent_at: float | None
    provider_payout_id: str | None
    finished_at: float | None
    payout_package: str | None = None  # for wx.requestMerchantTransfer, while WeChat waits
    payee_named: bool = False  # carries the payee's real name, sealed for WeChat Pay

    @property
    def net(self) -> Decimal:
        """What reaches the member's account: the amount less the fee."""
        return self.amount - self.fee


def _withdrawal(row: Any) -> Withdrawal:
    return Withdrawal(
        id=row.ref,
        member=row.member,
        account=row.account,
        amount=from_atoms(row.amount_fen, FEN_PLACES),
        fee=from_atoms(row.fee_fen, FEN_PLACES),
        status=row.status,
        requested_at=row.requested_at,
        reviewed_at=row.reviewed_at,
        reviewer=row.reviewer,
        note=row.note,
        payout_sent_at=row.payout_sent_at,
        provider_payout_id=row.provider_payout_id,
        finished_at=row.finished_at,
        payout_package=row.payout_package,
        payee_named=row.payee_name_cipher is not None,
    )


def withdrawal_fee(amount: Decimal, rate: Decimal) -> Decimal:
    """The tenant's fee: amount x withdraw_fee_rate, cut down to the fen (the member's favour)."""
    return floor_fen(mul(amount, rate))


def _fen(amount: Decimal) -> int:
    if not amount.is_finite() or amount <= 0 or floor_fen(amount) != amount:
        raise InvalidCommand("a withdrawal amount is a positive amount of whole fen")
    if amount.adjusted() >= 12:
        raise InvalidCommand("a withdrawal amount must be below 10^12")
    return fen_of(amount)


def _check_account(account: str) -> str:
    # the provider's payee handle goes on the wire unchanged (payments.base.PayoutRequest)
    if (
        not account
        or len(account) > _ACCOUNT_MAX
        or not account.isascii()
        or not account.isprintable()
        or " " in account
    ):
        raise InvalidCommand(
            f"account must be 1-{_ACCOUNT_MAX} printable ASCII characters without spaces"
        )
    return account


def _ref(tenant_id: int, member: str, key: str) -> str:
    """The withdrawal's id, derived from the client's key: a retried request finds its row."""
    digest = hashlib.sha256(f"{tenant_id}\x00{member}\x00{key}".encode()).hexdigest()
    # 29 hex digits (116 bits): without its underscore the id is also a valid WeChat transfer
    # bill number (letters and digits, at most 32), see wechat_bill_no
    return f"wd_{digest[:29]}"


def wechat_bill_no(ref: str) -> str:
    """The withdrawal's ``out_bill_no`` at WeChat Pay, which takes letters and digits only."""
    return ref.replace("_", "", 1)


def _payout_ref(n: Notification) -> str:
    """The withdrawal a payout notification names (WeChat echoes the bill number)."""
    assert n.payout_id is not None
    if n.provider == "wechat" and n.payout_id.startswith("wd") and "_" not in n.payout_id:
        return f"wd_{n.payout_id[2:]}"
    return n.payout_id


def _row(conn: Connection, tenant_id: int, ref: str) -> Any:
    w = s.withdrawals.c
    row = conn.execute(
        select(s.withdrawals).where(w.tenant_id == tenant_id, w.ref == ref)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no withdrawal {ref!r}")
    return row


def get_withdrawal(conn: Connection, tenant_id: int, ref: str) -> Withdrawal:
    return _withdrawal(_row(conn, tenant_id, ref))


def list_withdrawals(
    conn: Connection,
    tenant_id: int,
    *,
    member: str | None = None,
    status: str | None = None,
    limit: int,
    cursor: str | None,
    newest_first: bool = False,
) -> Page[Withdrawal]:
    """Oldest first: the operator's review queue reads in the order members asked.  A
    member's own list reads newest first (``newest_first``); its cursor pages backwards."""
    w = s.withdrawals.c
    q = select(s.withdrawals).where(w.tenant_id == tenant_id)
    if member is not None:
        q = q.where(w.member == member)
    if status is not None:
        q = q.where(w.status == status)
    return fetch_page(
        conn,
        q,
        w.id,
        limit=limit,
        cursor=cursor,
        convert=_withdrawal,
        newest_first=newest_first,
    )


def request_withdrawal(
    ledger: Ledger,
    tenant_id: int,
    member: str,
    *,
    amount: Decimal,
    account: str,
    key: str,
    payee_name: EncryptedField | None = None,
    name_required_from: Decimal | None = None,
) -> tuple[Withdrawal, bool]:
    """Ask to withdraw ``amount`` SP to ``account``; returns (withdrawal, created).

    The amount must reach the tenant's ``withdraw_min``; the fee is
    :func:`withdrawal_fee`; the whole amount leaves the wallet now.  The same key again returns
    the first request (``created`` False); the same key for another amount or account is an
    :class:`IdempotencyConflict`.

    ``payee_name``: the payee's real name sealed for WeChat Pay, stored and sent with the
    transfer.  ``name_required_from``: a net amount (after the fee) from which the name is
    required (the tenant pays by WeChat transfer, which needs it from 2,000 CNY): refused here
    rather than at the payout, so the member learns it while asking.
    """
    check_idempotency_key(key)
    _check_account(account)
    amount_fen = _fen(amount)
    ref = _ref(tenant_id, member, key)
    w = s.withdrawals.c
    with as_store(ledger).tenant_tx(tenant_id) as tx:
        conn = tx.conn
        get_profile(conn, tenant_id, member)
        prior = conn.execute(
            select(s.withdrawals).where(w.tenant_id == tenant_id, w.ref == ref)
        ).one_or_none()
        if prior is not None:
            if prior.amount_fen != amount_fen or prior.account != account:
                raise IdempotencyConflict(
                    "Idempotency-Key was used for a withdrawal of another amount or account"
                )
            return _withdrawal(prior), False
        params = tenant_params(conn, tenant_id)
        if amount < params.withdraw_min:
            raise InvalidCommand(f"the smallest withdrawal is {params.withdraw_min}")
        fee = withdrawal_fee(amount, params.withdraw_fee_rate)
        if fee >= amount:
            raise InvalidCommand(f"the fee ({fee}) would take the whole amount")
        needs_name = name_required_from is not None and amount - fee >= name_required_from
        if needs_name and payee_name is None:
            raise InvalidCommand(
                f"payee_name is required: a payout of {name_required_from} CNY or more "
                "needs the payee's real name (WeChat Pay)"
            )
        if member_no(conn, tenant_id, member) is None:
            raise InsufficientBalance(f"member {member!r} holds no SP")
        now = time.time()
        _check_unfrozen(conn, tenant_id, member, amount, now)
        _apply(tx, f"withdraw:{ref}", Withdraw(ref, member, amount, fee))
        conn.execute(
            insert(s.withdrawals).values(
                tenant_id=tenant_id,
                ref=ref,
                member=member,
                account=account,
                amount_fen=amount_fen,
                fee_fen=fen_of(fee),
                status="requested",
                idempotency_key=key,
                requested_at=now,
                payee_name_cipher=None if payee_name is None else payee_name.ciphertext,
                payee_name_serial=None if payee_name is None else payee_name.serial,
            )
        )
        return _withdrawal(_row(conn, tenant_id, ref)), True


def _check_unfrozen(
    conn: Connection, tenant_id: int, member: str, amount: Decimal, now: float
) -> None:
    """Model rewards still frozen (docs/MODELS.md, distribution's ``freeze_days``) can be
    spent but not withdrawn: the wallet's SP less what is frozen is what may leave it."""
    frozen = frozen_sp(conn, tenant_id, member, now)
    if frozen <= 0:
        return
    m = s.members.c
    held = conn.execute(select(m.sp).where(m.tenant_id == tenant_id, m.code == member)).scalar_one()
    free = max(ZERO, from_atoms(int(held), CNY_PLACES) - frozen)
    if amount > free:
        raise InsufficientBalance(
            f"only {free} SP can be withdrawn now: {frozen} SP of marketing rewards is still "
            "frozen (it can be spent in the mall)"
        )


def approve_withdrawal(
    ledger: Ledger, tenant_id: int, ref: str, *, reviewer: str, note: str | None = None
) -> Withdrawal:
    """requested -> approved.  Send the payout afterwards (:func:`send_payout`), not inside."""
    w = s.withdrawals.c
    with as_store(ledger).tenant_tx(tenant_id, lock=False) as tx:
        conn = tx.conn
        done = conn.execute(
            update(s.withdrawals)
            .where(w.tenant_id == tenant_id, w.ref == ref, w.status == "requested")
            .values(status="approved", reviewer=reviewer, reviewed_at=time.time(), note=note)
        )
        row = _row(conn, tenant_id, ref)
        if done.rowcount == 0:
            raise Conflict(f"withdrawal {ref!r} is {row.status}, not requested")
        return _withdrawal(row)


def reject_withdrawal(
    ledger: Ledger, tenant_id: int, ref: str, *, reviewer: str, note: str | None = None
) -> Withdrawal:
    """requested -> rejected; the whole amount (fee included) goes back to the wallet."""
    return _return_requested(ledger, tenant_id, ref, "rejected", reviewer=reviewer, note=note)


def cancel_withdrawal(
    ledger: Ledger, tenant_id: int, ref: str, *, member: str | None, actor: str
) -> Withdrawal:
    """requested -> cancelled: the member takes the request back before any review.

    ``member``: the caller's own member code (a member token), or None for an operator acting
    on a member's behalf.  Another member's withdrawal is answered as absent (NotFound), as
    everywhere else in the wallet.  Once approved it cannot be cancelled (the payout may be
    on its way); the whole amount, fee included, returns to the wallet, as on a rejection.
    """
    if member is not None:
        with read_only(ledger.engine).connect() as conn:
            if get_withdrawal(conn, tenant_id, ref).member != member:
                raise NotFound(f"no withdrawal {ref!r}")
    note = "cancelled by the member" if member else "cancelled on the member's behalf"
    return _return_requested(ledger, tenant_id, ref, "cancelled", reviewer=actor, note=note)


def _return_requested(
    ledger: Ledger,
    tenant_id: int,
    ref: str,
    status: str,
    *,
    reviewer: str,
    note: str | None,
) -> Withdrawal:
    """requested -> ``status`` (rejected or cancelled), returning the held SP in the same
    transaction; a concurrent approval or second answer finds the row no longer requested."""
    w = s.withdrawals.c
    with as_store(ledger).tenant_tx(tenant_id) as tx:
        conn = tx.conn
        row = _row(conn, tenant_id, ref)
        if row.status != "requested":
            raise Conflict(f"withdrawal {ref!r} is {row.status}, not requested")
        _apply(tx, f"payout:{ref}", PayoutResult(ref, paid=False))
        now = time.time()
        done = conn.execute(
            update(s.withdrawals)
            .where(w.tenant_id == tenant_id, w.ref == ref, w.status == "requested")
            .values(status=status, reviewer=reviewer, reviewed_at=now, note=note, finished_at=now)
        )
        if done.rowcount == 0:  # approved meanwhile: roll the release back with this error
            raise Conflict(f"withdrawal {ref!r} is no longer requested")
        return _withdrawal(_row(conn, tenant_id, ref))


def _apply_payout_in(tx: TenantTx, ref: str, *, paid: bool) -> tuple[str, Any]:
    """The payout outcome inside a transaction that holds the tenant's lock.

    Returns ("applied" | "already_applied", row); the opposite of an outcome already applied,
    or an outcome for a withdrawal no payout was sent for, raises :class:`Conflict`.
    """
    w = s.withdrawals.c
    conn, tenant_id = tx.conn, tx.tenant_id
    status = "paid" if paid else "failed"
    row = _row(conn, tenant_id, ref)
    if row.status == status:
        return "already_applied", row
    if row.status != "approved":
        raise Conflict(f"withdrawal {ref!r} is {row.status}: a payout cannot make it {status}")
    _apply(tx, f"payout:{ref}", PayoutResult(ref, paid=paid))
    now = time.time()
    conn.execute(
        update(s.withdrawals)
        .where(w.tenant_id == tenant_id, w.ref == ref, w.status == "approved")
        .values(status=status, finished_at=now)
    )
    amount, fee = from_atoms(row.amount_fen, 2), from_atoms(row.fee_fen, 2)
    outcome = WithdrawalPaid if paid else WithdrawalFailed
    tx.emit(outcome(row.ref, row.member, amount, fee, now))
    return "applied", _row(conn, tenant_id, ref)


def apply_payout_result(
    ledger: Ledger | Store, tenant_id: int, ref: str, *, paid: bool
) -> Withdrawal:
    """approved -> paid (the held CNY leaves) or failed (the SP goes back), exactly once.

    The same outcome again (a repeated notification) changes nothing; the opposite outcome
    after the first is refused with :class:`Conflict` and changes nothing either.
    """
    with as_store(ledger).tenant_tx(tenant_id) as tx:
        return _withdrawal(_apply_payout_in(tx, ref, paid=paid)[1])


def _check_notification(conn: Connection, tenant_id: int, n: Notification) -> Any:
    if not n.kind.is_payout or n.payout_id is None:
        raise InvalidCommand(f"not a payout notification: {n.kind}")
    row = _row(conn, tenant_id, _payout_ref(n))
    net = from_atoms(row.amount_fen - row.fee_fen, FEN_PLACES)
    if n.amount != net:
        raise PaymentConflict(f"payout {row.ref} was for {net}, the provider reports {n.amount}")
    return row


def apply_payout_notification(
    ledger: Ledger | Store, tenant_id: int, n: Notification
) -> Withdrawal:
    """A verified provider notification about a payout; checks it is the payout we sent."""
    with as_store(ledger).tenant_tx(tenant_id) as tx:
        row = _check_notification(tx.conn, tenant_id, n)
        paid = n.kind is NotificationKind.PAYOUT_SUCCEEDED
        return _withdrawal(_apply_payout_in(tx, row.ref, paid=paid)[1])


PayoutHandler = Callable[[TenantTx, Notification], tuple[str, str | None]]


def payout_handler() -> PayoutHandler:
    """A payout handler for a notification hub that records and deduplicates provider events.

    It runs inside the hub's transaction, after the tenant's lock, and answers an outcome to
    record instead of raising for what a retry cannot fix (an unknown payout, another amount, a
    contradicting result): the provider must stop sending those, and an operator reads them.
    """

    def handle(tx: TenantTx, n: Notification) -> tuple[str, str | None]:
        try:
            row = _check_notification(tx.conn, tx.tenant_id, n)
        except NotFound as exc:
            return "unknown_payout", str(exc)
        except PaymentConflict as exc:
            return "amount_mismatch", str(exc)
        paid = n.kind is NotificationKind.PAYOUT_SUCCEEDED
        # a contradicting outcome must leave no trace but the hub's record: a savepoint
        try:
            with tx.savepoint():
                outcome, _ = _apply_payout_in(tx, row.ref, paid=paid)
        except Conflict as exc:
            return "conflict", str(exc)
        return outcome, None

    return handle


# ----------------------------------------------------------------------------- providers


class PayoutProviders(Protocol):
    """How the wallet pays a tenant's withdrawals out."""

    def payout(
        self, tenant_id: int, tenant: str, payout_id: str, account: str, amount: Decimal
    ) -> PayoutAnswer:
        """Send a payout (idempotent on ``payout_id``).  An in-process provider (the sandbox)
        also delivers the notifications it produced before returning; a real provider calls
        the service's notification endpoint later."""
        ...


def send_payout(
    ledger: Ledger | Store, providers: PayoutProviders, tenant_id: int, tenant: str, ref: str
) -> Withdrawal:
    """Ask the provider to pay an approved withdrawal, then take in what it answers.

    The attempt is stamped first (``payout_sent_at``), so :func:`retry_payouts` knows a payout
    that may be on its way from one never sent.  A synchronous final answer is applied at once;
    otherwise the provider's notification does it.  A request the provider refuses outright (a
    payee it cannot pay) fails the withdrawal, which returns the SP; any other provider error
    leaves it approved for :func:`retry_payouts`.
    """
    w = s.withdrawals.c
    with ledger.engine.begin() as conn:
        wd = get_withdrawal(conn, tenant_id, ref)
        if wd.status != "approved":
            return wd
        conn.execute(
            update(s.withdrawals)
            .where(w.tenant_id == tenant_id, w.ref == ref)
            .values(payout_sent_at=time.time())
        )
    try:
        result = providers.payout(tenant_id, tenant, wd.id, wd.account, wd.net)
    except (InvalidPaymentRequest, ProviderRefused) as exc:
        # refused outright (a payee it cannot pay, a parameter it rejects): nothing was
        # created at the provider, so failing the withdrawal (the SP goes back) is safe
        log.warning("payout %s refused by the provider: %s", wd.id, exc)
        return apply_payout_result(ledger, tenant_id, wd.id, paid=False)
    except PaymentError as exc:
        log.warning("payout %s not sent, will retry: %s", wd.id, exc)
        with read_only(ledger.engine).connect() as conn:
            return get_withdrawal(conn, tenant_id, wd.id)
    with ledger.engine.begin() as conn:
        conn.execute(
            update(s.withdrawals)
            .where(w.tenant_id == tenant_id, w.ref == ref)
            .values(
                provider_payout_id=result.provider_payout_id,
                payout_package=result.confirm_package,
            )
        )
    if result.status is PayoutStatus.SUCCEEDED:
        return apply_payout_result(ledger, tenant_id, wd.id, paid=True)
    if result.status is PayoutStatus.FAILED:
        return apply_payout_result(ledger, tenant_id, wd.id, paid=False)
    with read_only(ledger.engine).connect() as conn:
        return get_withdrawal(conn, tenant_id, wd.id)


def retry_payouts(
    ledger: Ledger | Store,
    providers: PayoutProviders,
    *,
    now: float | None = None,
    tenants: Sequence[tuple[int, str]] | None = None,
) -> int:
    """Send again every approved payout never sent or without an outcome for a while.

    The scheduler calls this; it is what makes an approval whose process died before the payout
    went out (or whose notification never came) finish.  Returns how many were sent.
    """
    now = time.time() if now is None else now
    t = s.tenants.c
    w = s.withdrawals.c
    sent = 0
    with read_only(ledger.engine).connect() as conn:
        if tenants is None:
            tenants = [(int(r.id), str(r.code)) for r in conn.execute(select(t.id, t.code))]
        due = []
        for tid, code in tenants:
            for row in conn.execute(
                select(w.ref).where(
                    w.tenant_id == tid,
                    w.status == "approved",
                    or_(
                        w.payout_sent_at.is_(None),
                        w.payout_sent_at < now - RESEND_AFTER_SECONDS,
                    ),
                )
            ):
                due.append((tid, code, str(row.ref)))
    for tid, code, ref in due:
        send_payout(ledger, providers, tid, code, ref)
        sent += 1
    return sent
