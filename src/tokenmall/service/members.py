"""The member registry: sign-up with an optional referrer (by invite code) and invite codes.

The ledger's ``members`` row appears with a member's first movement of value; the profile
(``member_profiles``) exists from sign-up.  The referrer chosen here is the code the order flow
hands the engine as ``Purchase.referrer``.  Referral links are permanent (docs/DESIGN.md): a
member may be given a referrer once, never themselves, never one that would close a loop, and
never one that contradicts a link the ledger already holds.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, insert, select, update

from tokenmall.domain.events import MemberJoined
from tokenmall.errors import InvalidCommand, NotFound
from tokenmall.service.errors import AlreadyExists, Conflict
from tokenmall.service.pages import Page, fetch_page
from tokenmall.store import schema as s

if TYPE_CHECKING:
    from tokenmall.service.uow import TenantTx

__all__ = [
    "EMPTY_FIGURES",
    "INVITE_ALPHABET",
    "MemberProfile",
    "bind_referrer",
    "check_member_code",
    "create_member",
    "get_profile",
    "ledger_referrer",
    "list_profiles",
    "update_display_name",
]

_MEMBER_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}")
# no 0/O, 1/I: invite codes are read aloud and typed from posters
INVITE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
INVITE_LENGTH = 8  # 40 bits: collisions are rare, and the unique index catches them
_MAX_CHAIN = 10_000  # referral chains are walked to refuse loops; deeper is a corrupt store

# what a member who never moved value has in the ledger (Ledger.members' shape)
EMPTY_FIGURES: dict[str, Any] = {
    "points": "0",
    "stable": "0",
    "quota_remaining": "0",
    "spent": "0",
    "dividends": "0",
    "exited": False,
}


@dataclass(frozen=True, slots=True)
class MemberProfile:
    code: str
    invite_code: str
    display_name: str | None
    referrer: str | None
    created_at: float


def check_member_code(code: str) -> str:
    """Member codes are the tenant's own user ids: letters, digits and ``_.:@-``, at most 64."""
    if not _MEMBER_CODE.fullmatch(code):
        raise InvalidCommand(
            f"member code {code!r} must be 1-64 letters, digits or _.:@- (starting with a "
            "letter or digit)"
        )
    return code


def _profile(row: Any) -> MemberProfile:
    return MemberProfile(
        code=row.code,
        invite_code=row.invite_code,
        display_name=row.display_name,
        referrer=row.referrer,
        created_at=row.created_at,
    )


_PROFILE = select(s.member_profiles).where(
    s.member_profiles.c.tenant_id == bindparam("t"), s.member_profiles.c.code == bindparam("code")
)  # built once: every order and wallet request reads a profile (see orders.py)


def get_profile(conn: Connection, tenant_id: int, code: str) -> MemberProfile:
    row = conn.execute(_PROFILE, {"t": tenant_id, "code": code}).first()
    if row is None:
        raise NotFound(f"no member {code!r}")
    return _profile(row)


def list_profiles(
    conn: Connection, tenant_id: int, *, limit: int, cursor: str | None
) -> Page[MemberProfile]:
    p = s.member_profiles.c
    return fetch_page(
        conn,
        select(s.member_profiles).where(p.tenant_id == tenant_id),
        p.id,
        limit=limit,
        cursor=cursor,
        convert=_profile,
    )


_LEDGER_REFERRER = select(s.members.c.referrer).where(
    s.members.c.tenant_id == bindparam("t"), s.members.c.code == bindparam("code")
)


def ledger_referrer(conn: Connection, tenant_id: int, code: str) -> str | None:
    """The referrer the ledger holds for ``code`` (None: no ledger row or no referrer)."""
    return conn.execute(_LEDGER_REFERRER, {"t": tenant_id, "code": code}).scalar()


def _referrer_by_invite(conn: Connection, tenant_id: int, invite_code: str) -> str:
    p = s.member_profiles.c
    code = conn.execute(
        select(p.code).where(p.tenant_id == tenant_id, p.invite_code == invite_code.upper())
    ).scalar()
    if code is None:
        raise InvalidCommand(f"no member has invite code {invite_code!r}")
    return str(code)


def _check_ledger_link(conn: Connection, tenant_id: int, code: str, referrer: str) -> None:
    held = ledger_referrer(conn, tenant_id, code)
    if held is not None and held != referrer:
        raise Conflict(f"member {code!r} already has referrer {held!r} in the ledger")


def _new_invite_code(conn: Connection, tenant_id: int) -> str:
    p = s.member_profiles.c
    while True:
        code = "".join(secrets.choice(INVITE_ALPHABET) for _ in range(INVITE_LENGTH))
        taken = conn.execute(
            select(p.id).where(p.tenant_id == tenant_id, p.invite_code == code)
        ).first()
        if taken is None:
            return code


def create_member(
    conn: Connection,
    tenant_id: int,
    code: str,
    *,
    display_name: str | None = None,
    invite_code: str | None = None,
) -> MemberProfile:
    """Register a member, referred by the owner of ``invite_code`` when one is given."""
    check_member_code(code)
    p = s.member_profiles.c
    if conn.execute(select(p.id).where(p.tenant_id == tenant_id, p.code == code)).first():
        raise AlreadyExists(f"member {code!r} already exists")
    referrer = None
    if invite_code is not None:
        referrer = _referrer_by_invite(conn, tenant_id, invite_code)
        _check_ledger_link(conn, tenant_id, code, referrer)
    else:
        # a member the ledger already knows (e.g. imported orders) keeps the link it has there,
        # when that referrer is registered too
        held = ledger_referrer(conn, tenant_id, code)
        if held is not None:
            known = conn.execute(
                select(p.code).where(p.tenant_id == tenant_id, p.code == held)
            ).first()
            referrer = held if known else None
    profile = MemberProfile(
        code=code,
        invite_code=_new_invite_code(conn, tenant_id),
        display_name=display_name,
        referrer=referrer,
        created_at=time.time(),
    )
    conn.execute(
        insert(s.member_profiles).values(
            tenant_id=tenant_id,
            code=profile.code,
            invite_code=profile.invite_code,
            display_name=profile.display_name,
            referrer=profile.referrer,
            created_at=profile.created_at,
        )
    )
    return profile


def register(
    tx: TenantTx, code: str, *, display_name: str | None = None, invite_code: str | None = None
) -> MemberProfile:
    """:func:`create_member` in a unit of work, announcing :class:`MemberJoined` to the
    handlers (what marketing models and webhooks react to) in the same transaction."""
    profile = create_member(
        tx.conn, tx.tenant_id, code, display_name=display_name, invite_code=invite_code
    )
    tx.emit(MemberJoined(profile.code, profile.referrer, profile.created_at))
    return profile


def bind_referrer(conn: Connection, tenant_id: int, code: str, invite_code: str) -> MemberProfile:
    """Give a member who has none the referrer owning ``invite_code`` (once, no loops)."""
    profile = get_profile(conn, tenant_id, code)
    referrer = _referrer_by_invite(conn, tenant_id, invite_code)
    if profile.referrer is not None:
        if profile.referrer == referrer:
            return profile  # the same request again: nothing to do
        raise Conflict(f"member {code!r} already has referrer {profile.referrer!r}")
    if referrer == code:
        raise InvalidCommand("a member cannot refer themselves")
    p = s.member_profiles.c
    up: str | None = referrer
    for _ in range(_MAX_CHAIN):
        up = conn.execute(select(p.referrer).where(p.tenant_id == tenant_id, p.code == up)).scalar()
        if up is None:
            break
        if up == code:
            raise InvalidCommand(f"{referrer!r} is referred (indirectly) by {code!r}: a loop")
    _check_ledger_link(conn, tenant_id, code, referrer)
    conn.execute(
        update(s.member_profiles)
        .where(p.tenant_id == tenant_id, p.code == code, p.referrer.is_(None))
        .values(referrer=referrer)
    )
    return get_profile(conn, tenant_id, code)


def update_display_name(
    conn: Connection, tenant_id: int, code: str, display_name: str | None
) -> MemberProfile:
    p = s.member_profiles.c
    done = conn.execute(
        update(s.member_profiles)
        .where(p.tenant_id == tenant_id, p.code == code)
        .values(display_name=display_name)
    )
    if done.rowcount == 0:
        raise NotFound(f"no member {code!r}")
    return get_profile(conn, tenant_id, code)
