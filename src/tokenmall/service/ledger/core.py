"""The ledger service: applies batches of commands to a tenant, durably and in one total order.

One call to :meth:`Ledger.submit` is one unit of work (one database transaction):

1. take the tenant's write lock (``SELECT ... FOR UPDATE`` on its state row in PostgreSQL,
   ``BEGIN IMMEDIATE`` in SQLite), so every process applies that tenant's events in one order;
2. look up every idempotency key of the batch: a key already committed with the same content
   returns its first result, with other content it is refused (``IdempotencyConflict``);
3. run the new commands through the pure :class:`~tokenmall.domain.economy.Economy`, lending
   it the members it names; a refused command is reported and changes nothing;
4. write the balanced transfers, the changed members, grants and account balances, and one
   hash-chained event-log row per applied command; commit.

Many commands per transaction is how throughput is reached: the cost of a durable commit is
paid once per batch, not per purchase.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, insert, select

from tokenmall.domain.economy import (
    Asset,
    CloseDay,
    Command,
    Economy,
    EconomyState,
    SystemAccount,
)
from tokenmall.domain.params import TenantParams
from tokenmall.errors import (
    IdempotencyConflict,
    InvalidCommand,
    NotFound,
    TokenmallError,
)
from tokenmall.money import (
    CNY_PLACES,
    EP_PLACES,
    atoms,
    from_atoms,
)
from tokenmall.service.codec import canonical, dec, to_payload
from tokenmall.service.ledger.common import (
    _LOCK_SQL,
    _LOCK_SQL_PG,
    _PLACES,
    _UPDATE_STATE,
    _WARM_MAX,
    GENESIS,
    Outcome,
    _digest_lines,
    _dumps,
    _member_from_row,
    _SqlSource,
    _Warm,
)
from tokenmall.store import schema as s
from tokenmall.store.db import is_sqlite, read_only

if TYPE_CHECKING:
    pass
from tokenmall.service.ledger.close import LedgerClose


class Ledger(LedgerClose):
    """The service every entry point (CLI, scenario runner, API, benchmarks) goes through."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sqlite = is_sqlite(engine)
        # Members as the last batch committed them, per tenant, with the tenant's sequence
        # number after that commit (see :meth:`submit`).
        self._warm: dict[int, _Warm] = {}

    # ------------------------------------------------------------------ tenants

    def create_tenant(
        self,
        code: str,
        params: TenantParams | None = None,
        *,
        name: str | None = None,
        timezone: str = "Asia/Shanghai",
    ) -> int:
        params = params or TenantParams()
        with self.engine.begin() as conn:
            existing = conn.execute(select(s.tenants.c.id).where(s.tenants.c.code == code)).scalar()
            if existing is not None:
                raise InvalidCommand(f"tenant {code!r} already exists")
            tid = conn.execute(
                insert(s.tenants).values(
                    code=code,
                    name=name or code,
                    timezone=timezone,
                    params=json.dumps(params.to_mapping(), sort_keys=True),
                    created_at=time.time(),
                )
            ).inserted_primary_key
            assert tid is not None
            tid = tid[0]
            conn.execute(
                insert(s.tenant_state).values(
                    tenant_id=tid,
                    seq=0,
                    head=GENESIS,
                    member_count=0,
                    empty_pool=0,
                    empty_circulating=0,
                )
            )
            conn.execute(
                insert(s.accounts),
                [
                    {"tenant_id": tid, "account": str(acct), "asset": str(asset), "balance": 0}
                    for acct, asset in _SYSTEM_ACCOUNTS
                ],
            )
        return int(tid)

    def tenant_id(self, code: str) -> int:
        with read_only(self.engine).connect() as conn:
            tid = conn.execute(select(s.tenants.c.id).where(s.tenants.c.code == code)).scalar()
        if tid is None:
            raise NotFound(f"no tenant {code!r}")
        return int(tid)

    def ensure_tenant(self, code: str, params: TenantParams | None = None) -> int:
        try:
            return self.tenant_id(code)
        except NotFound:
            return self.create_tenant(code, params)

    # ------------------------------------------------------------------ the unit of work

    def _lock(self, conn: Connection, tenant_id: int) -> tuple[Any, TenantParams]:
        """The tenant's state row, locked (PostgreSQL), and its parameters: one statement.

        On the driver: a one-command transaction (a payment notification, a wallet action)
        otherwise spends more CPU building and compiling its few statements than running them.
        """
        row = conn.exec_driver_sql(
            _LOCK_SQL if self._sqlite else _LOCK_SQL_PG, (tenant_id,)
        ).first()
        if row is None:
            raise NotFound(f"no tenant {tenant_id}")
        return row, TenantParams.from_json(row.params)

    def lock(self, conn: Connection, tenant_id: int) -> TenantParams:
        """Take the tenant's lock in the caller's open transaction; its parameters as of now.

        The one tenant lock of the store, for both backends: ``FOR UPDATE`` of the tenant's
        state row on PostgreSQL; on SQLite the writing transaction began ``IMMEDIATE``
        (store.db), so holding the database lock already, and the read only checks the tenant
        exists.  Every batch of the ledger takes it first, so a transaction that takes it
        before reading orders, wallets or withdrawals sees them in the tenant's total order.
        """
        return self._lock(conn, tenant_id)[1]

    def submit_in(
        self, conn: Connection, tenant_id: int, items: Sequence[tuple[str, Command]]
    ) -> list[Outcome]:
        """:meth:`submit` inside the caller's open transaction (the unit of work's ``apply``):
        the commands commit or roll back with whatever else that transaction writes.

        It neither uses nor keeps the warm members: a unit of work is mostly one command,
        and handing warm members in and out costs a copy of all of them per transaction
        (up to 200,000), more than the one member it reads.
        """
        return self._submit(conn, tenant_id, items)

    def price_in(
        self, conn: Connection, tenant_id: int, params: TenantParams
    ) -> tuple[Decimal, Decimal]:
        """The EP price the next command of this transaction will use, as an exact ratio
        (numerator, denominator): the ledger's own loader, so a caller pricing something
        (points redeemed for goods) gets exactly what the command will compute."""
        st = self._state_row(conn, tenant_id, 0)
        return Economy(params, self._load_state(conn, tenant_id, st)).price_ratio()

    def submit(
        self,
        tenant_id: int,
        items: Sequence[tuple[str, Command]],
        *,
        stop_on_reject: bool = False,
    ) -> list[Outcome]:
        """Apply ``(idempotency key, command)`` pairs in order, in one transaction.

        ``stop_on_reject``: stop at the first rejected command (commands before it are still
        committed, none after it is applied), so a scenario stops where its bad event is.
        """
        # Members stay warm between this process's batches of a tenant: the next batch takes
        # them instead of reading and converting their rows again, if the tenant's sequence
        # number is still the one this batch committed (every write to ``members`` is a ledger
        # transaction, which moves it; another process's batch in between invalidates them).
        # Taken out while the batch runs (it mutates them) and put back only after the commit.
        warm = self._warm.pop(tenant_id, None)
        keep: list[_Warm] = []
        with self.engine.begin() as conn:
            out = self._submit(
                conn, tenant_id, items, stop_on_reject=stop_on_reject, warm=warm, keep=keep
            )
        if keep:
            self._warm[tenant_id] = keep[0]
        return out

    def _submit(
        self,
        conn: Connection,
        tenant_id: int,
        items: Sequence[tuple[str, Command]],
        *,
        stop_on_reject: bool = False,
        warm: _Warm | None = None,
        keep: list[_Warm] | None = None,
    ) -> list[Outcome]:
        st, params = self._lock(conn, tenant_id)
        payloads = [to_payload(cmd) for _, cmd in items]
        encoded = [canonical(p) for p in payloads]
        hashes = [hashlib.sha256(b).hexdigest() for b in encoded]
        seen = self._existing(conn, tenant_id, [k for k, _ in items])

        if warm is not None and warm.seq != st.seq:
            warm = None  # another writer moved the tenant on since this process's last batch
        if warm is not None:
            state = EconomyState(
                balances=dict(warm.balances),
                member_count=st.member_count,
                empty_pool=from_atoms(st.empty_pool, CNY_PLACES),
                empty_circulating=from_atoms(st.empty_circulating, EP_PLACES),
            )
        else:
            state = self._load_state(conn, tenant_id, st)
        before = dict(state.balances)
        shift = float(st.trigger_shift)
        source = _SqlSource(conn, tenant_id, shift)
        codes: list[str] = []
        orders: list[str] = []
        for _, cmd in items:
            for name in ("member", "referrer"):
                v = getattr(cmd, name, None)
                if v:
                    codes.append(v)
            o = getattr(cmd, "order", None)
            if o:
                orders.append(o)
        if warm is not None:
            source.members.update(warm.members)
        source.prefetch(codes, orders)
        eco = Economy(params, state, source)

        seq: int = st.seq
        head: str = st.head
        tx_rows: list[tuple[Any, ...]] = []
        tr_rows: list[tuple[Any, ...]] = []
        outcomes: list[Outcome] = []
        batch_keys: dict[str, tuple[str, int]] = {}
        now = time.time()
        for i, (key, cmd) in enumerate(items):
            if stop_on_reject and outcomes and outcomes[-1].status == "rejected":
                break
            h = hashes[i]
            prior = seen.get(key)
            if prior is None and key in batch_keys:
                prior = (batch_keys[key][0], batch_keys[key][1], None)
            if prior is not None:
                if prior[0] != h:
                    outcomes.append(
                        Outcome(
                            key,
                            "rejected",
                            error_code=IdempotencyConflict.code,
                            error=f"key {key!r} was used for different content",
                        )
                    )
                else:
                    outcomes.append(Outcome(key, "replayed", seq=prior[1], result=prior[2]))
                continue
            if isinstance(cmd, CloseDay):
                # The bulk path works in SQL: write what is pending first, then start afresh.
                self._flush(conn, tenant_id, eco, before, shift)
                tx_rows, tr_rows = self._write_log(conn, tx_rows, tr_rows)
                try:
                    seq, head, result, exits = self._close_day(
                        conn, tenant_id, eco, key, h, payloads[i], seq, head, now, shift
                    )
                except TokenmallError as exc:  # pragma: no cover - close day refuses nothing
                    outcomes.append(Outcome(key, "rejected", error_code=exc.code, error=str(exc)))
                    continue
                st = self._state_row(conn, tenant_id, seq)
                state = self._load_state(conn, tenant_id, st)
                before = dict(state.balances)
                shift = float(st.trigger_shift)
                source = _SqlSource(conn, tenant_id, shift)
                eco = Economy(params, state, source)
                batch_keys[key] = (h, seq)
                outcomes.append(Outcome(key, "applied", seq=seq, result=result, exits=exits))
                continue
            try:
                figures = eco.apply(cmd)
            except (InvalidCommand, NotFound, IdempotencyConflict) as exc:
                eco.take_exits()
                outcomes.append(Outcome(key, "rejected", error_code=exc.code, error=str(exc)))
                continue
            seq += 1
            result = self._result(eco, figures)
            journal = eco.take_journal()
            head = self._log(
                tx_rows,
                tr_rows,
                tenant_id,
                seq,
                key,
                h,
                payloads[i],
                result,
                journal,
                head,
                now,
                encoded[i].decode(),
            )
            batch_keys[key] = (h, seq)
            outcomes.append(
                Outcome(key, "applied", seq=seq, result=result, exits=tuple(eco.take_exits()))
            )
        self._flush(conn, tenant_id, eco, before, shift)
        self._write_log(conn, tx_rows, tr_rows)
        self._many(
            conn,
            _UPDATE_STATE,
            [
                (
                    seq,
                    head,
                    eco.state.member_count,
                    atoms(eco.state.empty_pool, CNY_PLACES),
                    atoms(eco.state.empty_circulating, EP_PLACES),
                    tenant_id,
                )
            ],
        )
        if keep is not None and all(o.status != "rejected" for o in outcomes):
            # what this transaction leaves in ``members`` for every member it read or wrote
            # (after a close: only those read since, the close rewrote the others' rows)
            members = {c: m for c, m in source.members.items() if m is not None}
            members.update(eco.members)
            if len(members) <= _WARM_MAX:
                keep.append(_Warm(seq, members, dict(eco.state.balances)))
        return outcomes

    def figures(self, tenant_id: int) -> dict[str, Any]:
        """The tenant's figures as a command's result shows them (price, pool, circulating,
        burned, treasury, dividend fund), read without the lock: the step of a scenario event
        that moved nothing."""
        with read_only(self.engine).connect() as conn:
            sql = _LOCK_SQL if self._sqlite else _LOCK_SQL.replace("?", "%s")
            st = conn.exec_driver_sql(sql, (tenant_id,)).first()
            if st is None:
                raise NotFound(f"no tenant {tenant_id}")
            eco = Economy(TenantParams.from_json(st.params), self._load_state(conn, tenant_id, st))
        return self._result(eco, {})

    def members(
        self, tenant_id: int, codes: Iterable[str] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Member figures as a scenario prints them (docs/RULES.md section 7)."""
        t = s.members.c
        q = select(s.members).where(t.tenant_id == tenant_id)
        if codes is not None:
            q = q.where(t.code.in_(list(codes)))
        out = {}
        with read_only(self.engine).connect() as conn:
            for row in conn.execute(q.order_by(t.no)):
                m = _member_from_row(row)
                out[m.code] = {
                    "points": dec(m.ep),
                    "stable": dec(m.sp),
                    "quota_remaining": dec(m.quota),
                    "spent": dec(m.spent),
                    "dividends": dec(m.dividends),
                    "exited": m.exited,
                }
        return out

    def verify_chain(self, tenant_id: int) -> int | None:
        """Recompute every leaf and chain hash of the tenant's log from the stored rows.

        Returns None when the whole log and the tenant's head agree, else the first sequence
        number whose row does not match (a changed payload, result, transfer or hash).
        """
        t = s.ledger_tx.c
        tr = s.transfers.c
        head = GENESIS
        expected = 1
        with read_only(self.engine).connect() as conn:
            rows = conn.execute(
                select(t.seq, t.key, t.payload, t.result, t.leaf_hash, t.chain_hash)
                .where(t.tenant_id == tenant_id)
                .order_by(t.seq)
            )
            for row in rows:
                if row.seq != expected:
                    return expected
                expected += 1
                moves = conn.execute(
                    select(tr.asset, tr.debit, tr.credit, tr.amount)
                    .where(tr.tenant_id == tenant_id, tr.seq == row.seq)
                    .order_by(tr.n)
                ).all()
                digest = hashlib.sha256(_digest_lines(moves)).hexdigest()
                entry = (
                    f'{{"key":{_dumps(row.key)},"payload":{row.payload},"result":{row.result},'
                    f'"seq":{row.seq},"transfers":"{digest}"}}'
                ).encode()
                leaf = hashlib.sha256(b"\x00" + entry).hexdigest()
                chain = hashlib.sha256(bytes.fromhex(head) + bytes.fromhex(leaf)).hexdigest()
                if leaf != row.leaf_hash or chain != row.chain_hash:
                    return int(row.seq)
                head = chain
            st = conn.execute(
                select(s.tenant_state.c.head, s.tenant_state.c.seq).where(
                    s.tenant_state.c.tenant_id == tenant_id
                )
            ).one()
        if st.seq != expected - 1 or st.head != head:
            return expected
        return None

    def balances(self, tenant_id: int) -> dict[tuple[str, str], Decimal]:
        """Every account's balance (system and members), from the stored balances."""
        out: dict[tuple[str, str], Decimal] = {}
        with read_only(self.engine).connect() as conn:
            a = s.accounts.c
            for row in conn.execute(
                select(a.account, a.asset, a.balance).where(a.tenant_id == tenant_id)
            ):
                out[(row.account, row.asset)] = from_atoms(row.balance, _PLACES[Asset(row.asset)])
            t = s.members.c
            for row in conn.execute(select(t.no, t.ep, t.sp).where(t.tenant_id == tenant_id)):
                out[(f"m:{row.no}", "EP")] = from_atoms(row.ep, EP_PLACES)
                out[(f"m:{row.no}", "SP")] = from_atoms(row.sp, CNY_PLACES)
        return out


_SYSTEM_ACCOUNTS: tuple[tuple[SystemAccount, Asset], ...] = (
    (SystemAccount.WORLD, Asset.CNY),
    (SystemAccount.REVENUE, Asset.CNY),
    (SystemAccount.POOL, Asset.CNY),
    (SystemAccount.DIVIDEND_FUND, Asset.CNY),
    (SystemAccount.SP_RESERVE, Asset.CNY),
    (SystemAccount.ISSUANCE, Asset.EP),
    (SystemAccount.BURNED, Asset.EP),
    (SystemAccount.TREASURY, Asset.EP),
    (SystemAccount.SP_ISSUANCE, Asset.SP),
    (SystemAccount.ESCROW, Asset.CNY),
    (SystemAccount.PAYOUT_HOLD, Asset.CNY),
)
