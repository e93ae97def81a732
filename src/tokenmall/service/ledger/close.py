"""The day close's bulk path: water-filled dividends over every holder and the forced exits,
in SQL and integer columns (see docs/DESIGN.md, "Day close")."""

from __future__ import annotations

import contextlib
import hashlib
from array import array
from collections.abc import Iterator
from decimal import Decimal
from itertools import compress
from math import isnan
from operator import itemgetter, truediv
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select, update

from tokenmall.domain.dividends import water_fill_columns
from tokenmall.domain.economy import (
    Economy,
    SystemAccount,
)
from tokenmall.domain.events import MemberExit
from tokenmall.domain.exits import ExitCascade
from tokenmall.money import (
    CNY_PLACES,
    EP_PLACES,
    ZERO,
    atoms,
    from_atoms,
)
from tokenmall.service.ledger.bulk import (
    _pg_update_from,
    _TransferPipe,
)
from tokenmall.service.ledger.common import (
    _BURNED,
    _EXIT_COLS,
    _FUND,
    _HOLDERS_SQL,
    _MEMBER_COLS_SQL,
    _PLACES,
    _POOL,
    _RESERVE,
    _SPI,
    _TRIGGER_SLACK,
    _DuePages,
    _exit_bound,
    _member_from_row,
)
from tokenmall.store import schema as s

if TYPE_CHECKING:
    pass
from tokenmall.service.ledger.writes import LedgerWrites

# "sp_debt > 0" repeats the partial index's predicate literally, so both backends use it
_SET_OFF_SQL = (
    f"SELECT {_MEMBER_COLS_SQL} FROM members "  # noqa: S608 - a constant of our own
    "WHERE tenant_id = ? AND sp_debt > 0 AND sp > 0 ORDER BY no"
)


class LedgerClose(LedgerWrites):
    """The day close of :class:`~tokenmall.service.ledger.Ledger`."""

    def _close_day(  # noqa: PLR0917 - called once, from _submit, with its loop state
        self,
        conn: Connection,
        tenant_id: int,
        eco: Economy,
        key: str,
        h: str,
        payload: dict[str, str],
        seq: int,
        head: str,
        now: float,
        shift: float,
    ) -> tuple[int, str, dict[str, Any], tuple[MemberExit, ...]]:
        """R9 over every holder straight from the table, then exits; one ledger transaction.

        Streams (no, weight, quota, stored trigger) as columns so a million holders fit in a
        few hundred MB; the split itself is the domain's :func:`water_fill_columns`.

        The stored exit triggers are mostly left alone (see :func:`_trigger_float`): under
        ``points`` weighting no paid holder's quota/EP falls by more than the largest
        pay/EP, so raising the tenant's shift by that much keeps every untouched entry a
        valid pre-filter.  Only entries that would lag the exact value by more than
        ``_TRIGGER_SLACK`` of the price are rewritten.  That spares SQLite the index
        maintenance of a million entries, the largest single cost of the close.
        """
        params = eco.params
        by_points = params.dividend_weight == "points"
        unit = atoms(params.share_unit, CNY_PLACES)
        nos, eps, quotas, weights = array("q"), array("q"), array("q"), array("q")
        trigs = array("d")
        nan = float("nan")
        cur = conn.connection.cursor()
        try:
            cur.execute(
                _HOLDERS_SQL if self._sqlite else _HOLDERS_SQL.replace("?", "%s"), (tenant_id,)
            )
            while rows := cur.fetchmany(20_000):
                # columns by transposition (C loops), not an append per value
                c_no, c_ep, c_quota, c_spent, c_trig = zip(*rows, strict=True)
                nos.extend(c_no)
                eps.extend(c_ep)
                quotas.extend(c_quota)
                trigs.extend([nan if t is None else t for t in c_trig])
                if not by_points:
                    weights.extend([sp // unit for sp in c_spent])
        finally:
            cur.close()
        fund = atoms(eco.dividend_fund, CNY_PLACES)
        pays, paid = water_fill_columns(
            fund, eps if by_points else weights, quotas, 10 ** (CNY_PLACES - 2)
        )
        del weights
        # pay atoms per EP atom -> CNY per EP
        per_ep = 10**EP_PLACES / 10**CNY_PLACES
        paid_idx = list(compress(range(len(pays)), pays))
        # the largest fall of quota/EP among the paid (every holder has EP > 0)
        fall = max(map(truediv, pays, eps), default=0.0) if by_points else 0.0
        new_shift = shift + fall * per_ep * (1 + 1e-12) if by_points else shift
        num, den = eco.price_ratio()
        price = float(num / den)
        slack = _TRIGGER_SLACK * price

        def updates() -> Iterator[tuple[str, tuple[Any, ...]]]:
            for i in paid_idx:
                pay, ep, old = pays[i], eps[i], trigs[i]
                if isnan(old):  # NULL (never bought) stays NULL: a pay-out changes neither cause
                    yield "pay", (pay, pay, pay, tenant_id, nos[i])
                    continue
                exact = (quotas[i] - pay) / ep * per_ep
                if by_points and (exact <= price or exact + new_shift - old <= slack):
                    # due now (the exit pass writes it) or close enough: the shift covers it
                    yield "pay", (pay, pay, pay, tenant_id, nos[i])
                else:
                    yield "both", (pay, pay, pay, exact + new_shift, tenant_id, nos[i])
            if by_points and len(paid_idx) < len(pays):
                # holders paid nothing (a share under one fen) drift by the whole fall
                for i in range(len(pays)):
                    old = trigs[i]
                    if pays[i] or isnan(old):
                        continue
                    exact = quotas[i] / eps[i] * per_ep
                    if exact + new_shift - old > slack:
                        yield "trigger", (exact + new_shift, tenant_id, nos[i])

        paid_d = from_atoms(paid, CNY_PLACES)
        bal = eco.state.balances
        # what the store holds now: _flush writes every balance that differs from it, one
        # that the pay-out brings to zero included (an empty "before" would skip those)
        stored = dict(bal)
        bal[_FUND] = bal.get(_FUND, ZERO) - paid_d
        bal[_RESERVE] = bal.get(_RESERVE, ZERO) + paid_d
        bal[_SPI] = bal.get(_SPI, ZERO) - paid_d

        def journal() -> Iterator[list[tuple[str, str, str, int]]]:
            """The pay-out's transfers, a chunk at a time (built by comprehensions: 1M rows)."""
            if paid:
                yield [
                    ("CNY", str(SystemAccount.DIVIDEND_FUND), str(SystemAccount.SP_RESERVE), paid)
                ]
            spi = str(SystemAccount.SP_ISSUANCE)
            for start in range(0, len(paid_idx), 50_000):
                part = paid_idx[start : start + 50_000]
                yield [("SP", spi, f"m:{nos[i]}", pays[i]) for i in part]

        seq += 1
        digest = hashlib.sha256()
        if self._sqlite:
            self._many_by_shape(
                lambda sql, rows: self._many(conn, sql, rows),
                {
                    "pay": "UPDATE members SET sp = sp + ?, quota = quota - ?, "
                    "dividends = dividends + ? WHERE tenant_id = ? AND no = ?",
                    "both": "UPDATE members SET sp = sp + ?, quota = quota - ?, "
                    "dividends = dividends + ?, trigger = ? WHERE tenant_id = ? AND no = ?",
                    "trigger": "UPDATE members SET trigger = ? WHERE tenant_id = ? AND no = ?",
                },
                updates(),
            )
        else:
            # one (no, pay, new trigger or NULL to keep it) row per holder, one joined UPDATE
            _pg_update_from(
                conn,
                "tm_close_pay",
                "no bigint NOT NULL, pay bigint NOT NULL, trig double precision",
                ("no", "pay", "trig"),
                (
                    (row[-1], row[0], None)
                    if shape == "pay"
                    else (row[-1], row[0], row[3])
                    if shape == "both"
                    else (row[-1], 0, row[0])
                    for shape, row in updates()
                ),
                "UPDATE members AS m SET sp = m.sp + t.pay, quota = m.quota - t.pay, "
                "dividends = m.dividends + t.pay, trigger = COALESCE(t.trig, m.trigger) "
                "FROM tm_close_pay AS t WHERE m.tenant_id = %s AND m.no = t.no",
                (tenant_id,),
            )
        pipe = _TransferPipe(self, conn, tenant_id, seq)
        try:
            n = self._stream_transfers(pipe, digest, 0, journal())
            pipe.drain()  # the exit pass reads through the same connection

            # Exits after the pay-out (R9 "Then exits (R7) run"), same transaction and log row.
            exited, exit_rows = self._bulk_exits(conn, tenant_id, eco, new_shift)
            exits = len(exited)
            n = self._stream_transfers(pipe, digest, n, self._chunks(exit_rows))
            pipe.drain()
            # The SQL above credited every pay and exit payout in full; members with an SP
            # debt get it set off now, through the domain (the same moves as its close).
            exit_eco = Economy(params, eco.state)
            set_off = self._set_off_debts(conn, tenant_id, exit_eco)
            self._stream_transfers(pipe, digest, n, [set_off])
            pipe.drain()
        finally:
            with contextlib.suppress(Exception):  # already failing: the first error wins
                pipe.drain()

        figures = {"paid": paid_d, "recipients": Decimal(len(paid_idx)), "exits": Decimal(exits)}
        result = self._result(exit_eco, figures)
        tx_rows: list[tuple[Any, ...]] = []
        head = self._entry(
            tx_rows, tenant_id, seq, key, h, payload, result, digest.hexdigest(), head, now
        )
        self._write_log(conn, tx_rows, [])
        # the balances changed by the pay-out are written with the exits' own changes
        self._flush(conn, tenant_id, exit_eco, stored, new_shift)
        conn.execute(
            update(s.tenant_state)
            .where(s.tenant_state.c.tenant_id == tenant_id)
            .values(
                seq=seq,
                head=head,
                trigger_shift=new_shift,
                member_count=exit_eco.state.member_count,
                empty_pool=atoms(exit_eco.state.empty_pool, CNY_PLACES),
                empty_circulating=atoms(exit_eco.state.empty_circulating, EP_PLACES),
            )
        )
        return seq, head, result, self._exit_records(conn, tenant_id, exited)

    def _exit_records(
        self, conn: Connection, tenant_id: int, exited: list[tuple[int, int, int]]
    ) -> tuple[MemberExit, ...]:
        """The close's exits ``(no, EP atoms, payout atoms)`` with their members' codes, in
        the order they happened (read back by number, a thousand at a time)."""
        codes: dict[int, str] = {}
        nos = [no for no, _, _ in exited]
        m = s.members.c
        for i in range(0, len(nos), 1000):
            chunk = nos[i : i + 1000]
            rows = conn.execute(
                select(m.no, m.code).where(m.tenant_id == tenant_id, m.no.in_(chunk))
            )
            codes.update((int(no), str(code)) for no, code in rows)
        return tuple(
            MemberExit(codes[no], from_atoms(ep, EP_PLACES), from_atoms(payout, CNY_PLACES))
            for no, ep, payout in exited
        )

    def _set_off_debts(
        self, conn: Connection, tenant_id: int, eco: Economy
    ) -> list[tuple[str, str, str, int]]:
        """Set SP debts off against what the close just paid: the few members with
        ``sp_debt > 0`` (a partial index) who now hold SP.  Before the close such a member
        held 0 SP (every other credit sets the debt off at once), so what they hold now is
        exactly the close's pay and exit payout.  Returns the transfers, as rows."""
        sql = _SET_OFF_SQL if self._sqlite else _SET_OFF_SQL.replace("?", "%s")
        for row in conn.exec_driver_sql(sql, (tenant_id,)):
            m = _member_from_row(row)
            eco.members[m.code] = m
            eco.set_off_sp(m)
        return [
            (tr.asset.value, tr.debit, tr.credit, atoms(tr.amount, _PLACES[tr.asset]))
            for tr in eco.take_journal()
        ]

    def _bulk_exits(
        self,
        conn: Connection,
        tenant_id: int,
        eco: Economy,
        shift: float,
    ) -> tuple[list[tuple[int, int, int]], list[tuple[str, str, str, int]]]:
        """The close's forced exits through :class:`ExitCascade`, in atoms; return them
        ``(member no, EP, payout)`` and the transfers, in the order ``Economy.run_exits``
        would journal them.

        Candidates come from the trigger index as in :meth:`_SqlSource.due`; exited members
        are written here (sorted by key) and the system balances in ``eco.state`` are updated
        for the caller's ``_flush``.
        """
        state = eco.state
        bal = state.balances
        cascade = ExitCascade(
            atoms(eco.pool, CNY_PLACES),
            atoms(eco.circulating, EP_PLACES),
            atoms(state.empty_pool, CNY_PLACES),
            atoms(state.empty_circulating, EP_PLACES),
            eco.params.initial_price,
            eco.params.sell_fee,
        )
        pages = _DuePages(conn, tenant_id, _EXIT_COLS)
        burned, pool, reserve, spi = _BURNED[0], _POOL[0], _RESERVE[0], _SPI[0]
        offer, next_exit, hint = cascade.offer, cascade.next_exit, cascade.price_hint
        transfers: list[tuple[str, str, str, int]] = []
        updates: list[tuple[int, bool, int, int]] = []
        exited: list[tuple[int, int, int]] = []
        while True:
            price = hint()
            if price is not None:
                for no, ep, sp, quota, spent, _ in pages.upto(_exit_bound(price, shift)):
                    offer(no, ep, quota, spent, sp)
            ex = next_exit()
            if ex is None:
                break
            acct = f"m:{ex.no}"
            transfers.append(("EP", acct, burned, ex.ep))
            if ex.payout:
                transfers.append(("CNY", pool, reserve, ex.payout))
                transfers.append(("SP", spi, acct, ex.payout))
            updates.append((ex.sp_after, True, tenant_id, ex.no))
            exited.append((ex.no, ex.ep, ex.payout))
        if not updates:
            return exited, transfers
        updates.sort(key=itemgetter(-1))  # in key order: each B-tree page visited once
        if self._sqlite:
            for i in range(0, len(updates), 50_000):
                self._many(
                    conn,
                    "UPDATE members SET ep = 0, sp = ?, quota = 0, exited = ?, trigger = NULL "
                    "WHERE tenant_id = ? AND no = ?",
                    updates[i : i + 50_000],
                )
        else:
            _pg_update_from(
                conn,
                "tm_close_exit",
                "no bigint NOT NULL, sp bigint NOT NULL",
                ("no", "sp"),
                ((no, sp) for sp, _, _, no in updates),
                "UPDATE members AS m SET ep = 0, sp = t.sp, quota = 0, exited = true, "
                "trigger = NULL FROM tm_close_exit AS t WHERE m.tenant_id = %s AND m.no = t.no",
                (tenant_id,),
            )
        paid = from_atoms(cascade.paid, CNY_PLACES)
        bal[_POOL] = from_atoms(cascade.pool, CNY_PLACES)
        bal[_BURNED] = bal.get(_BURNED, ZERO) + from_atoms(cascade.burned, EP_PLACES)
        bal[_RESERVE] = bal.get(_RESERVE, ZERO) + paid
        bal[_SPI] = bal.get(_SPI, ZERO) - paid
        state.empty_pool = from_atoms(cascade.empty_pool, CNY_PLACES)
        state.empty_circulating = from_atoms(cascade.empty_circulating, EP_PLACES)
        return exited, transfers

    # ------------------------------------------------------------------ reads
