"""Token commands (mint by airdrop or for SP/EP, transfer, approve, operators, burn, redeem)
and the token reads (a member's tokens, one token, its ERC-721 metadata, its provenance).

Every command runs in the caller's unit of work, under the tenant's lock, through a
:class:`~tokenmall.service.nfg.session.Session`: the domain checks, then the changed rows and
the new events are written, and any money moves through a ledger command in the same
transaction - a refusal anywhere rolls all of it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from tokenmall.domain.commands import Join, Redeem, TokenSale
from tokenmall.domain.economy import Asset, SystemAccount
from tokenmall.domain.nfg import (
    AssetNotAccepted,
    ERC721InvalidOwner,
    ERC721NonexistentToken,
    ProvenanceEvent,
    Registry,
    TokenRef,
)
from tokenmall.domain.pricing import points_worth
from tokenmall.errors import IdempotencyConflict, InvalidParameter
from tokenmall.money import cny_of_fen
from tokenmall.service.nfg.collections import get_collection
from tokenmall.service.nfg.rows import token_of
from tokenmall.service.nfg.session import Session, now
from tokenmall.service.uow import TenantTx
from tokenmall.store import schema as s

__all__ = [
    "MAX_AIRDROP",
    "TokenView",
    "airdrop",
    "approve",
    "burn",
    "ensure_member",
    "get_token",
    "metadata",
    "mint_for",
    "provenance",
    "purchase",
    "redeem",
    "set_approval_for_all",
    "tokens_of",
    "transfer",
]

MAX_AIRDROP = 1000  # receivers per call: one transaction stays short
_T = s.nfg_tokens.c
_C = s.nfg_collections.c
_E = s.nfg_events.c


@dataclass(frozen=True, slots=True)
class TokenView:
    code: str
    serial: int
    owner: str
    approved: str | None
    uses_left: int
    last_price: Decimal
    acquired_at: float
    minted_at: float
    item_no: str | None
    burned: bool


_M = s.members.c
_KNOWN = select(_M.no).where(_M.tenant_id == bindparam("t"), _M.code == bindparam("code"))


def ensure_member(tx: TenantTx, member: str) -> None:
    """The ledger account of a member about to be credited (a seller, an issuer): joined
    through the ledger the first time only (a replayed join still costs a ledger batch)."""
    if tx.conn.execute(_KNOWN, {"t": tx.tenant_id, "code": member}).first() is None:
        tx.apply_one(f"join:{member}:None", Join(member, None))


def _issuer(c_issuer: str) -> str | None:
    return None if c_issuer == SystemAccount.REVENUE.value else c_issuer


# -- commands ------------------------------------------------------------------------------


def airdrop(
    tx: TenantTx, code: str, receivers: list[str], *, at: float | None = None
) -> list[ProvenanceEvent]:
    """Mint the next serials to ``receivers`` (one each, in order), free of charge."""
    if not receivers or len(receivers) > MAX_AIRDROP:
        raise InvalidParameter(f"an airdrop has 1 to {MAX_AIRDROP} receivers")
    t = now(at)
    sess = Session(tx, code)
    sess.names(*receivers)
    out = [sess.registry.mint(code, m, at=t) for m in receivers]
    sess.flush()
    return out


def mint_for(
    tx: TenantTx,
    code: str,
    member: str,
    asset: Asset,
    *,
    at: float | None = None,
    purchase_key: str | None = None,
) -> ProvenanceEvent:
    """Sell the next serial at the collection's price for SP, or for EP at the current price
    (R4: the fewest points whose sale, sell fee deducted, pays the price; the payout goes to
    the platform's revenue).  CNY purchases go through the order flow instead."""
    t = now(at)
    sess = Session(tx, code)
    c = sess.collection
    if asset not in (Asset.SP, Asset.EP) or asset not in c.accepted:
        raise AssetNotAccepted(
            f"{code} is not sold for {asset} here (CNY: order the linked product)"
        )
    sess.names(member)
    event = sess.registry.mint(code, member, at=t, price=c.price, asset=asset)
    ref = f"{code}#{event.token.serial}"
    if c.price > 0:
        if asset is Asset.SP:
            issuer = _issuer(c.issuer)
            if issuer is not None:
                ensure_member(tx, issuer)
            sale = TokenSale(ref, member, c.price, issuer, c.price)
            tx.apply_one(f"nfg:mint:{ref}", sale)
        else:
            num, den = tx.price_ratio()
            points = points_worth(c.price, num, den, tx.params.sell_fee)
            tx.apply_one(f"nfg:mint:{ref}", Redeem(member, points, f"nfg:{ref}"))
    sess.flush(purchase_key=purchase_key)
    return event


def purchase(
    tx: TenantTx, code: str, member: str, asset: Asset, *, key: str, at: float | None = None
) -> tuple[int, bool]:
    """:func:`mint_for` once per (member, key): ``(serial, replayed)``.  A retry or a double
    tap with the same key answers the serial that key bought and takes nothing again (without
    a key, two calls buy two serials, as two purchases should).  The lookup runs under the
    tenant's lock, so two requests with one key cannot both miss it."""
    tx.lock()
    stored = f"{member}:{key}"
    row = tx.conn.execute(
        select(_T.collection_id, _T.serial).where(
            _T.tenant_id == tx.tenant_id, _T.purchase_key == stored
        )
    ).first()
    if row is not None:
        if row.collection_id != Session(tx, code).collection_id:
            raise IdempotencyConflict(f"key {key!r} already bought a token of another collection")
        return int(row.serial), True
    event = mint_for(tx, code, member, asset, at=at, purchase_key=stored)
    return event.token.serial, False


def transfer(
    tx: TenantTx,
    code: str,
    serial: int,
    *,
    caller: str,
    from_: str,
    to: str,
    at: float | None = None,
) -> ProvenanceEvent:
    """ERC-721 ``transferFrom`` as a gift, under the collection's policy."""
    t = now(at)
    sess = Session(tx, code)
    ref = sess.token(serial)
    sess.names(from_, to)
    sess.sent_today(from_, t)
    event = sess.registry.transfer_from(caller, from_, to, ref, at=t)
    sess.flush()
    return event


def approve(tx: TenantTx, code: str, serial: int, *, caller: str, to: str | None) -> None:
    sess = Session(tx, code)
    ref = sess.token(serial)
    sess.registry.approve(caller, to, ref)
    tx.conn.execute(
        update(s.nfg_tokens)
        .where(_T.tenant_id == tx.tenant_id, _T.collection_id == sess.collection_id)
        .where(_T.serial == serial)
        .values(approved=sess.registry.get_approved(ref))
    )


def set_approval_for_all(
    tx: TenantTx, code: str, *, caller: str, operator: str, approved: bool
) -> None:
    sess = Session(tx, code)
    sess.registry.set_approval_for_all(caller, code, operator, approved)
    if operator == caller:
        raise InvalidParameter("an owner is always their own operator")
    o = s.nfg_operators.c
    key = (
        (o.tenant_id == tx.tenant_id)
        & (o.collection_id == sess.collection_id)
        & (o.owner == caller)
        & (o.operator == operator)
    )
    tx.conn.execute(delete(s.nfg_operators).where(key))
    if approved:
        tx.conn.execute(
            insert(s.nfg_operators).values(
                tenant_id=tx.tenant_id,
                collection_id=sess.collection_id,
                owner=caller,
                operator=operator,
            )
        )


def burn(
    tx: TenantTx, code: str, serial: int, *, caller: str, at: float | None = None
) -> ProvenanceEvent:
    sess = Session(tx, code)
    ref = sess.token(serial)
    event = sess.registry.burn(caller, ref, at=now(at))
    sess.flush()
    return event


def redeem(
    tx: TenantTx, code: str, serial: int, *, caller: str, at: float | None = None
) -> ProvenanceEvent:
    """One use of a right: the token stays with its owner, one use fewer."""
    sess = Session(tx, code)
    ref = sess.token(serial)
    event = sess.registry.redeem(caller, ref, at=now(at))
    sess.flush()
    return event


# -- reads ---------------------------------------------------------------------------------


def _view(row: Any) -> TokenView:
    return TokenView(
        row.code,
        row.serial,
        row.owner,
        row.approved,
        row.uses_left,
        cny_of_fen(row.last_price_fen),
        row.acquired_at,
        row.minted_at,
        row.item_no,
        row.burned_at is not None,
    )


def _token_query() -> Any:
    j = s.nfg_tokens.join(
        s.nfg_collections, (_C.tenant_id == _T.tenant_id) & (_C.id == _T.collection_id)
    )
    return select(s.nfg_tokens, _C.code).select_from(j)


def tokens_of(
    conn: Connection, tenant_id: int, owner: str, code: str | None = None
) -> list[TokenView]:
    """ERC-721 enumeration by owner: the live tokens, by collection then serial."""
    if not owner:
        raise ERC721InvalidOwner("tokens of nobody: give an owner")
    q = _token_query().where(_T.tenant_id == tenant_id, _T.owner == owner, _T.burned_at.is_(None))
    if code is not None:
        get_collection(conn, tenant_id, code)
        q = q.where(_C.code == code)
    return [_view(r) for r in conn.execute(q.order_by(_C.code, _T.serial))]


def get_token(conn: Connection, tenant_id: int, code: str, serial: int) -> TokenView:
    row = conn.execute(
        _token_query().where(_T.tenant_id == tenant_id, _C.code == code, _T.serial == serial)
    ).first()
    if row is None:
        get_collection(conn, tenant_id, code)
        raise ERC721NonexistentToken(f"token {code}#{serial} was never minted")
    return _view(row)


def metadata(conn: Connection, tenant_id: int, code: str, serial: int) -> dict[str, Any]:
    """The ERC-721 metadata JSON of a live token (the domain fills the template)."""
    info = get_collection(conn, tenant_id, code)
    row = conn.execute(
        _token_query().where(_T.tenant_id == tenant_id, _C.code == code, _T.serial == serial)
    ).first()
    if row is None or row.burned_at is not None:
        raise ERC721NonexistentToken(
            f"token {code}#{serial} does not exist (never minted, or burned)"
        )
    reg = Registry()
    reg.restore_collection(info.collection, minted=info.minted, burned=info.burned)
    reg.restore_token(token_of(row, code))
    return reg.metadata(TokenRef(code, serial))


def provenance(conn: Connection, tenant_id: int, code: str, serial: int) -> list[dict[str, Any]]:
    """Every event of one token, oldest first, with time and parties: one query."""
    j = s.nfg_events.join(
        s.nfg_collections, (_C.tenant_id == _E.tenant_id) & (_C.id == _E.collection_id)
    )
    rows = conn.execute(
        select(_E.seq, _E.kind, _E.from_member, _E.to_member, _E.at, _E.price_fen, _E.asset)
        .add_columns(_E.uses_left, _E.leaf_hash)
        .select_from(j)
        .where(_E.tenant_id == tenant_id, _C.code == code, _E.serial == serial)
        .order_by(_E.seq)
    ).all()
    if not rows:
        get_token(conn, tenant_id, code, serial)  # raises the right error
    return [
        {
            "seq": r.seq,
            "kind": r.kind,
            "from": r.from_member,
            "to": r.to_member,
            "at": r.at,
            "price": None if r.price_fen is None else cny_of_fen(r.price_fen),
            "asset": r.asset,
            "uses_left": r.uses_left,
            "leaf_hash": r.leaf_hash,
        }
        for r in rows
    ]
