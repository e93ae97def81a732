"""Tenants (one mall each): creation, reading, and audited parameter changes.

A tenant's parameters live in ``tenants.params`` as JSON; the ledger reads them at the start of
every batch, after taking the tenant's lock.  A change takes the same lock
(:func:`change_params`), so it is ordered among the tenant's events: every batch committed
before it used the old values, every batch after it uses the new ones, and the audit row
written in the same transaction says who changed what, when.
"""

from __future__ import annotations

import json
import re
import time
import zoneinfo
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from tokenmall.domain.params import TenantParams
from tokenmall.errors import InvalidCommand, InvalidParameter, NotFound
from tokenmall.money import EP_PLACES, from_atoms
from tokenmall.service.errors import AlreadyExists
from tokenmall.service.ledger import Ledger
from tokenmall.service.pages import Page, fetch_page
from tokenmall.service.uow import TenantTx
from tokenmall.store import schema as s
from tokenmall.store.db import read_only

__all__ = [
    "ParamChange",
    "TenantRecord",
    "change_params",
    "check_tenant_code",
    "create_tenant",
    "get_tenant",
    "list_param_changes",
    "list_tenants",
    "tenant_id_for",
]


_TENANT_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


@dataclass(frozen=True, slots=True)
class TenantRecord:
    id: int
    code: str
    name: str
    timezone: str
    params: dict[str, str]
    created_at: float


@dataclass(frozen=True, slots=True)
class ParamChange:
    id: int
    at: float
    actor: str
    before: dict[str, str]
    after: dict[str, str]


def _tenant(row: Any) -> TenantRecord:
    return TenantRecord(
        id=row.id,
        code=row.code,
        name=row.name,
        timezone=row.timezone,
        params=json.loads(row.params),
        created_at=row.created_at,
    )


def _no_tenant(code: str) -> NotFound:
    # the one message for "does not exist" and "belongs to another tenant" (the API relies on it)
    return NotFound(f"no tenant {code!r}")


def check_tenant_code(code: str) -> str:
    """Tenant codes appear in URLs and logs: letters, digits and ``_.:-``, at most 64."""
    if not _TENANT_CODE.fullmatch(code):
        raise InvalidCommand(
            f"tenant code {code!r} must be 1-64 letters, digits or _.:- (starting with a letter "
            "or digit)"
        )
    return code


def check_timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidCommand(
            f"unknown time zone {name!r} (an IANA name, e.g. Asia/Shanghai)"
        ) from None
    return name


def create_tenant(
    ledger: Ledger,
    code: str,
    *,
    name: str | None = None,
    timezone: str = "Asia/Shanghai",
    params: dict[str, str] | None = None,
) -> TenantRecord:
    """Create a tenant through the ledger (which also opens its accounts and state row)."""
    check_tenant_code(code)
    check_timezone(timezone)
    parsed = TenantParams.from_mapping(params)
    with read_only(ledger.engine).connect() as conn:
        if conn.execute(select(s.tenants.c.id).where(s.tenants.c.code == code)).first():
            raise AlreadyExists(f"tenant {code!r} already exists")
    try:
        ledger.create_tenant(code, parsed, name=name, timezone=timezone)
    except (IntegrityError, InvalidCommand):  # created concurrently since the check above
        raise AlreadyExists(f"tenant {code!r} already exists") from None
    with read_only(ledger.engine).connect() as conn:
        return get_tenant(conn, code)


def get_tenant(conn: Connection, code: str) -> TenantRecord:
    row = conn.execute(select(s.tenants).where(s.tenants.c.code == code)).first()
    if row is None:
        raise _no_tenant(code)
    return _tenant(row)


def tenant_id_for(conn: Connection, code: str) -> int:
    tid = conn.execute(select(s.tenants.c.id).where(s.tenants.c.code == code)).scalar()
    if tid is None:
        raise _no_tenant(code)
    return int(tid)


def list_tenants(conn: Connection, *, limit: int, cursor: str | None) -> Page[TenantRecord]:
    """Every tenant: a platform-admin view, the only query not scoped to one tenant."""
    return fetch_page(
        conn, select(s.tenants), s.tenants.c.id, limit=limit, cursor=cursor, convert=_tenant
    )


def _issued(conn: Connection, tenant_id: int) -> Decimal:
    a = s.accounts.c
    balance = conn.execute(
        select(a.balance).where(a.tenant_id == tenant_id, a.account == "issuance", a.asset == "EP")
    ).scalar()
    return -from_atoms(int(balance or 0), EP_PLACES)


def change_params(tx: TenantTx, changes: dict[str, str], *, actor: str) -> ParamChange:
    """Apply ``changes`` (parameter name -> decimal string) and write the audit row.

    The whole new parameter set is validated as one (pool_rate + dividend_rate <= 1 needs
    both); ``total_supply`` may not go below the EP already issued, which R2 could no longer
    honour.  Run inside the caller's unit of work, under the tenant's lock (so the change is
    ordered among the tenant's ledger batches): the change and its audit row commit together.
    """
    if not changes:
        raise InvalidParameter("no parameter to change")
    tx.lock()
    conn, tenant_id = tx.conn, tx.tenant_id
    t = s.tenants.c
    raw = conn.execute(select(t.params).where(t.id == tenant_id)).scalar_one()
    before = TenantParams.from_json(raw).to_mapping()
    after = TenantParams.from_mapping({**before, **changes}).to_mapping()
    issued = _issued(conn, tenant_id)
    if Decimal(after["total_supply"]) < issued:
        raise InvalidParameter(
            f"total_supply {after['total_supply']} is below the {issued} EP already issued"
        )
    conn.execute(
        update(s.tenants).where(t.id == tenant_id).values(params=json.dumps(after, sort_keys=True))
    )
    p = s.param_changes.c
    last = conn.execute(select(func.max(p.id)).where(p.tenant_id == tenant_id)).scalar()
    change = ParamChange(
        id=int(last or 0) + 1, at=time.time(), actor=actor, before=before, after=after
    )
    conn.execute(
        insert(s.param_changes).values(
            tenant_id=tenant_id,
            id=change.id,
            at=change.at,
            actor=actor,
            before=json.dumps(before, sort_keys=True),
            after=json.dumps(after, sort_keys=True),
        )
    )
    return change


def _change(row: Any) -> ParamChange:
    return ParamChange(
        id=row.id,
        at=row.at,
        actor=row.actor,
        before=json.loads(row.before),
        after=json.loads(row.after),
    )


def list_param_changes(
    conn: Connection, tenant_id: int, *, limit: int, cursor: str | None
) -> Page[ParamChange]:
    p = s.param_changes.c
    return fetch_page(
        conn,
        select(s.param_changes).where(p.tenant_id == tenant_id),
        p.id,
        limit=limit,
        cursor=cursor,
        convert=_change,
    )
