"""How a batch reaches the database: the event log's hashing and rows, and the flush of
members, grants, escrows, holds, orders and balances the domain changed."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection, Engine, Table, bindparam, select, update

from tokenmall.domain.economy import (
    Asset,
    Economy,
    EconomyState,
    Transfer,
)
from tokenmall.money import (
    CNY_PLACES,
    EP_PLACES,
    ZERO,
    atoms,
    atoms_unchecked,
    from_atoms,
    show_price,
)
from tokenmall.service.codec import dec
from tokenmall.service.ledger.bulk import (
    _PG_BULK_UPDATE,
    _copy,
    _pg_update_from,
    _TransferPipe,
)
from tokenmall.service.ledger.common import (
    _BALANCES,
    _CHUNK,
    _MEMBER_INSERT_COLS,
    _MEMBER_VALUE_COLS,
    _PLACES,
    _UPDATE_ACCOUNT,
    _UPDATE_MEMBERS,
    _UPDATE_MEMBERS_FROM,
    _digest_lines,
    _dumps,
    _in_query,
    _trigger_float,
    _Warm,
)
from tokenmall.store import schema as s
from tokenmall.store.rows import insert_row, update_by_key

if TYPE_CHECKING:
    pass


class LedgerWrites:
    """The write half of :class:`~tokenmall.service.ledger.Ledger` (see its module)."""

    engine: Engine
    _sqlite: bool
    _warm: dict[int, _Warm]

    def _load_state(self, conn: Connection, tenant_id: int, st: Any) -> EconomyState:
        balances: dict[tuple[str, Asset], Decimal] = {}
        for row in conn.execute(_BALANCES, {"t": tenant_id}):
            asset = Asset(row.asset)
            balances[(row.account, asset)] = from_atoms(row.balance, _PLACES[asset])
        return EconomyState(
            balances=balances,
            member_count=st.member_count,
            empty_pool=from_atoms(st.empty_pool, CNY_PLACES),
            empty_circulating=from_atoms(st.empty_circulating, EP_PLACES),
        )

    @staticmethod
    def _state_row(conn: Connection, tenant_id: int, seq: int) -> Any:
        return conn.execute(
            select(s.tenant_state).where(s.tenant_state.c.tenant_id == tenant_id)
        ).one()

    def _existing(
        self, conn: Connection, tenant_id: int, keys: list[str]
    ) -> dict[str, tuple[str, int, dict[str, Any] | None]]:
        out: dict[str, tuple[str, int, dict[str, Any] | None]] = {}
        uniq = list(dict.fromkeys(keys))
        for i in range(0, len(uniq), _CHUNK):
            part = uniq[i : i + _CHUNK]
            for row in _in_query(
                conn,
                "ledger_tx",
                "key, content_hash, seq, result",
                "key",
                tenant_id,
                part,
            ):
                out[row.key] = (row.content_hash, row.seq, orjson.loads(row.result))
        return out

    @staticmethod
    def _result(eco: Economy, figures: dict[str, Decimal]) -> dict[str, Any]:
        num, den = eco.price_ratio()
        return {
            "price": show_price(num, den, eco.params.initial_price),
            "pool": dec(eco.pool),
            "circulating": dec(eco.circulating),
            "burned": dec(eco.burned),
            "treasury": dec(eco.treasury),
            "dividend_fund": dec(eco.dividend_fund),
            "figures": {k: dec(v) for k, v in figures.items()},
        }

    @staticmethod
    def _log(  # noqa: PLR0917 - an internal hot path; a parameter object would cost a dict
        tx_rows: list[tuple[Any, ...]],
        tr_rows: list[tuple[Any, ...]],
        tenant_id: int,
        seq: int,
        key: str,
        h: str,
        payload: dict[str, str],
        result: dict[str, Any],
        journal: Iterable[Transfer],
        head: str,
        now: float,
        payload_json: str | None = None,
    ) -> str:
        """Queue one event-log row and its transfers; return the new chain head.

        Leaf hash per RFC 6962: SHA-256(0x00 || entry), where the entry commits to the sequence
        number, key, payload, result and a digest of the transfers; the chain hash links each
        leaf to the previous head, so changing any committed row breaks every later hash.
        """
        rows = [
            (tr.asset.value, tr.debit, tr.credit, atoms_unchecked(tr.amount, _PLACES[tr.asset]))
            for tr in journal
        ]
        tr_rows.extend([(tenant_id, seq, n, *row) for n, row in enumerate(rows, 1)])
        return LedgerWrites._entry(
            tx_rows,
            tenant_id,
            seq,
            key,
            h,
            payload,
            result,
            hashlib.sha256(_digest_lines(rows)).hexdigest(),
            head,
            now,
            payload_json,
        )

    @staticmethod
    def _entry(  # noqa: PLR0917 - the hot path; a parameter object would cost a dict
        tx_rows: list[tuple[Any, ...]],
        tenant_id: int,
        seq: int,
        key: str,
        h: str,
        payload: dict[str, str],
        result: dict[str, Any],
        transfers_digest: str,
        head: str,
        now: float,
        payload_json: str | None = None,
    ) -> str:
        """Queue the event-log row of one transaction whose transfers hash to the digest."""
        if payload_json is None:
            payload_json = _dumps(payload)
        result_json = _dumps(result)
        # canonical JSON of {key, payload, result, seq, transfers}, keys sorted, built by hand so
        # the payload and result are encoded once
        entry = (
            f'{{"key":{_dumps(key)},"payload":{payload_json},"result":{result_json},'
            f'"seq":{seq},"transfers":"{transfers_digest}"}}'
        ).encode()
        leaf = hashlib.sha256(b"\x00" + entry).hexdigest()
        chain = hashlib.sha256(bytes.fromhex(head) + bytes.fromhex(leaf)).hexdigest()
        tx_rows.append(
            (tenant_id, seq, key, payload["type"], h, payload_json, result_json, leaf, chain, now)
        )
        return chain

    def _many(self, conn: Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """executemany on the driver, skipping per-row parameter processing (the hot path)."""
        if rows:
            conn.exec_driver_sql(sql if self._sqlite else sql.replace("?", "%s"), rows)

    @staticmethod
    def _many_by_shape(
        put: Callable[[str, list[tuple[Any, ...]]], None],
        sql: dict[str, str],
        rows: Iterable[tuple[str, tuple[Any, ...]]],
        size: int = 50_000,
    ) -> None:
        """Rows tagged with one of several statements, handed to ``put`` in chunks."""
        chunks: dict[str, list[tuple[Any, ...]]] = {k: [] for k in sql}
        for shape, row in rows:
            chunk = chunks[shape]
            chunk.append(row)
            if len(chunk) >= size:
                put(sql[shape], chunk)
                chunks[shape] = []
        for shape, chunk in chunks.items():
            put(sql[shape], chunk)

    @staticmethod
    def _chunks(
        rows: Iterable[tuple[str, str, str, int]], size: int = 50_000
    ) -> Iterator[list[tuple[str, str, str, int]]]:
        chunk: list[tuple[str, str, str, int]] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) >= size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    @staticmethod
    def _stream_transfers(
        pipe: _TransferPipe, digest: Any, n: int, journal: Iterable[list[tuple[str, str, str, int]]]
    ) -> int:
        """Number, digest and hand over transfer rows, chunk by chunk; return the last number.

        The digest gets the same lines as :meth:`_log` feeds it, so the log entry of a bulk
        transaction is verified like any other (:meth:`verify_chain`).
        """
        for part in journal:
            pipe.put(part, n + 1)
            digest.update(_digest_lines(part))
            n += len(part)
        return n

    def _write_log(
        self, conn: Connection, tx_rows: list[tuple[Any, ...]], tr_rows: list[tuple[Any, ...]]
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        self._insert(conn, s.ledger_tx, tx_rows)
        self._insert(conn, s.transfers, tr_rows)
        return [], []

    def _insert(
        self,
        conn: Connection,
        table: Table,
        rows: Sequence[tuple[Any, ...]],
        cols: Sequence[str] | None = None,
    ) -> None:
        """New rows (all of the table's columns in its order, unless ``cols``): ``executemany``
        on SQLite, ``COPY`` on PostgreSQL.

        psycopg's ``executemany`` is a round of protocol messages and a planned statement per
        row (35 us a row here: 46 s for a 1M-holder close's 1.3M transfers); ``COPY`` streams
        them.  Column names come from the schema or this module's constants, never input.
        """
        if not rows:
            return
        cols = tuple(table.c.keys()) if cols is None else cols
        if self._sqlite:
            marks = ", ".join("?" * len(cols))
            sql = f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({marks})"  # noqa: S608
            self._many(conn, sql, rows)
        else:
            _copy(conn, table.name, cols, rows)

    def _flush(
        self,
        conn: Connection,
        tenant_id: int,
        eco: Economy,
        before: dict[tuple[str, Asset], Decimal],
        shift: float,
    ) -> None:
        """Write the members, grants and balances the economy changed."""
        new_rows = []
        upd_rows = []
        for code in eco.dirty:
            m = eco.members[code]
            vals = (
                atoms_unchecked(m.ep, EP_PLACES),
                atoms_unchecked(m.sp, CNY_PLACES),
                atoms_unchecked(m.quota, CNY_PLACES),
                atoms_unchecked(m.spent, CNY_PLACES),
                atoms_unchecked(m.dividends, CNY_PLACES),
                atoms_unchecked(m.ep_debt, EP_PLACES),
                atoms_unchecked(m.sp_debt, CNY_PLACES),
                m.exited,
                _trigger_float(m, shift),
                m.referrer,
            )
            if m.new:
                new_rows.append((tenant_id, m.no, m.code, *vals))
                m.new = False
            else:
                upd_rows.append((*vals, tenant_id, m.no))
        eco.dirty.clear()
        # in key order: B-tree pages are visited once each, not at random (100,404 exit
        # updates after a 1M-holder close: 3.3 s in set order)
        upd_rows.sort(key=itemgetter(-1))
        self._insert(conn, s.members, new_rows, _MEMBER_INSERT_COLS)
        if self._sqlite or len(upd_rows) < _PG_BULK_UPDATE:
            self._many(conn, _UPDATE_MEMBERS, upd_rows)
        else:
            _pg_update_from(
                conn,
                "tm_member_upd",
                "ep bigint, sp bigint, quota bigint, spent bigint, dividends bigint, "
                'ep_debt bigint, sp_debt bigint, exited boolean, "trigger" double precision, '
                "referrer varchar(64), no bigint",
                (*_MEMBER_VALUE_COLS, "no"),
                (row[:-2] + row[-1:] for row in upd_rows),  # without tenant_id
                _UPDATE_MEMBERS_FROM,
                (tenant_id,),
            )
        g_new: list[tuple[Any, ...]] = []
        g_upd = []
        for order in eco.dirty_grants:
            g = eco.grants[order]
            if g.new:
                g_new.append(
                    (
                        tenant_id,
                        g.order,
                        g.member,
                        g.referrer,
                        atoms_unchecked(g.amount, CNY_PLACES),
                        atoms_unchecked(g.pool_in, CNY_PLACES),
                        atoms_unchecked(g.fund_in, CNY_PLACES),
                        atoms_unchecked(g.ep_member, EP_PLACES),
                        atoms_unchecked(g.ep_referrer, EP_PLACES),
                        atoms_unchecked(g.quota, CNY_PLACES),
                        atoms_unchecked(g.refunded, CNY_PLACES),
                        atoms_unchecked(g.total if g.total is not None else g.amount, CNY_PLACES),
                        atoms_unchecked(
                            g.cny_part if g.cny_part is not None else g.amount, CNY_PLACES
                        ),
                    )
                )
                g.new = False
            else:
                g_upd.append({"b_order": g.order, "refunded": atoms(g.refunded, CNY_PLACES)})
        eco.dirty_grants.clear()
        self._insert(conn, s.grants, g_new)
        self._flush_orders(conn, tenant_id, eco)
        if g_upd:
            gt = s.grants.c
            conn.execute(
                update(s.grants)
                .where(gt.tenant_id == tenant_id, gt.order_ref == bindparam("b_order"))
                .values(refunded=bindparam("refunded")),
                g_upd,
            )
        self._many(
            conn,
            _UPDATE_ACCOUNT,
            [
                (atoms(v, _PLACES[asset]), tenant_id, acct, asset.value)
                for (acct, asset), v in eco.state.balances.items()
                if before.get((acct, asset), ZERO) != v
            ],
        )
        before.clear()
        before.update(eco.state.balances)

    def _flush_orders(self, conn: Connection, tenant_id: int, eco: Economy) -> None:
        """Escrows and payout holds: few per batch, so plain upserts by key."""
        for order in eco.dirty_escrows:
            esc = eco.escrows[order]
            vals = {
                "refunded": atoms(esc.refunded, CNY_PLACES),
                "settled": esc.settled,
            }
            if esc.new:
                insert_row(
                    conn,
                    s.escrows,
                    {
                        "tenant_id": tenant_id,
                        "order_ref": esc.order,
                        "member": esc.member,
                        "cny": atoms(esc.cny, CNY_PLACES),
                        "sp": atoms(esc.sp, CNY_PLACES),
                        "ep_points": atoms(esc.ep_points, EP_PLACES),
                        "ep_value": atoms(esc.ep_value, CNY_PLACES),
                        **vals,
                    },
                )
                esc.new = False
            else:
                update_by_key(
                    conn, s.escrows, {"tenant_id": tenant_id, "order_ref": esc.order}, vals
                )
        eco.dirty_escrows.clear()
        for request in eco.dirty_holds:
            hold = eco.holds[request]
            if hold.new:
                insert_row(
                    conn,
                    s.payout_holds,
                    {
                        "tenant_id": tenant_id,
                        "request_ref": hold.request,
                        "member": hold.member,
                        "amount": atoms(hold.amount, CNY_PLACES),
                        "fee": atoms(hold.fee, CNY_PLACES),
                        "status": hold.status,
                    },
                )
                hold.new = False
            else:
                update_by_key(
                    conn,
                    s.payout_holds,
                    {"tenant_id": tenant_id, "request_ref": hold.request},
                    {"status": hold.status},
                )
        eco.dirty_holds.clear()

    # ------------------------------------------------------------------ day close (bulk)
