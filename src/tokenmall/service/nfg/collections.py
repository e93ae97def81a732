"""Collections: create one, change its trading rules, link a catalog product, read them; and
the real-name verifications the collections that ask for them check."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from tokenmall.domain.nfg import Collection, Mode
from tokenmall.errors import InvalidParameter, NotFound
from tokenmall.service import catalog
from tokenmall.service.errors import AlreadyExists
from tokenmall.service.nfg.rows import collection_of, collection_values
from tokenmall.service.uow import TenantTx
from tokenmall.store import schema as s

__all__ = [
    "CollectionInfo",
    "create_collection",
    "get_collection",
    "link_product",
    "list_collections",
    "set_modes",
    "verify_real_name",
]

_C = s.nfg_collections.c


@dataclass(frozen=True, slots=True)
class CollectionInfo:
    """A collection's rules with its counts and product link."""

    collection: Collection
    minted: int
    burned: int
    product_id: int | None
    created_at: float


def _info(row: Any) -> CollectionInfo:
    return CollectionInfo(
        collection_of(row), row.minted, row.burned, row.product_id, row.created_at
    )


def create_collection(
    tx: TenantTx, collection: Collection, *, product_id: int | None = None
) -> CollectionInfo:
    """A new collection (the domain validated its rules when it was built)."""
    if product_id is not None:
        catalog.get_product(tx.conn, tx.tenant_id, product_id)  # NotFound for another's
    exists = tx.conn.execute(
        select(_C.id).where(_C.tenant_id == tx.tenant_id, _C.code == collection.code)
    ).first()
    if exists is not None:
        raise AlreadyExists(f"collection {collection.code!r} already exists")
    created = time.time()
    try:
        with tx.savepoint():
            tx.conn.execute(
                insert(s.nfg_collections).values(
                    tenant_id=tx.tenant_id,
                    product_id=product_id,
                    minted=0,
                    burned=0,
                    created_at=created,
                    **collection_values(collection),
                )
            )
    except IntegrityError:  # a concurrent create of the same code
        raise AlreadyExists(f"collection {collection.code!r} already exists") from None
    return CollectionInfo(collection, 0, 0, product_id, created)


def get_collection(conn: Connection, tenant_id: int, code: str) -> CollectionInfo:
    row = conn.execute(
        select(s.nfg_collections).where(_C.tenant_id == tenant_id, _C.code == code)
    ).first()
    if row is None:
        raise NotFound(f"no NFG collection {code!r}")
    return _info(row)


def list_collections(conn: Connection, tenant_id: int) -> list[CollectionInfo]:
    rows = conn.execute(
        select(s.nfg_collections).where(_C.tenant_id == tenant_id).order_by(_C.id)
    ).all()
    return [_info(r) for r in rows]


def set_modes(
    tx: TenantTx,
    code: str,
    *,
    transfer_policy: Mode | None = None,
    exchange_mode: Mode | None = None,
    clear_exchange_mode: bool = False,
) -> CollectionInfo:
    """Change what owners may do and what the exchange offers (halt trading, reopen it)."""
    info = get_collection(tx.conn, tx.tenant_id, code)
    c = info.collection
    new = replace(
        c,
        transfer_policy=transfer_policy or c.transfer_policy,
        exchange_mode=None if clear_exchange_mode else (exchange_mode or c.exchange_mode),
    )
    tx.conn.execute(
        update(s.nfg_collections)
        .where(_C.tenant_id == tx.tenant_id, _C.code == code)
        .values(
            transfer_policy=new.transfer_policy.value,
            exchange_mode=None if new.exchange_mode is None else new.exchange_mode.value,
        )
    )
    return replace(info, collection=new)


def link_product(tx: TenantTx, code: str, product_id: int | None) -> CollectionInfo:
    """Paid orders of ``product_id`` mint tokens of the collection (None: unlink)."""
    info = get_collection(tx.conn, tx.tenant_id, code)
    if product_id is not None:
        catalog.get_product(tx.conn, tx.tenant_id, product_id)
        other = tx.conn.execute(
            select(_C.code).where(
                _C.tenant_id == tx.tenant_id, _C.product_id == product_id, _C.code != code
            )
        ).first()
        if other is not None:
            raise InvalidParameter(f"product {product_id} already mints {other.code}")
    tx.conn.execute(
        update(s.nfg_collections)
        .where(_C.tenant_id == tx.tenant_id, _C.code == code)
        .values(product_id=product_id)
    )
    return replace(info, product_id=product_id)


def verify_real_name(tx: TenantTx, member: str, *, by: str) -> bool:
    """Record the member's real-name verification (实名认证); False if it was recorded."""
    r = s.nfg_real_names.c
    if tx.conn.execute(
        select(r.member).where(r.tenant_id == tx.tenant_id, r.member == member)
    ).first():
        return False
    tx.conn.execute(
        insert(s.nfg_real_names).values(
            tenant_id=tx.tenant_id, member=member, verified_at=time.time(), verified_by=by
        )
    )
    return True
