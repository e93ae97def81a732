"""Credentials of the HTTP service: per-tenant API keys and signed member access tokens.

API key ``tmk_<key id>_<secret>``: the key id is public (it names the key in lists and logs and
finds its row), the secret is 256 random bits shown once at creation.  Only SHA-256 of the
secret is stored; with that much entropy a slow password hash would cost every request and add
no safety.  A key belongs to one tenant and has a scope: ``operator`` (the tenant's back end,
everything in the tenant) or ``merchant`` (one merchant's catalog).

Member token ``tmt_<payload>.<signature>``: the tenant's back end asks for one after it has
authenticated its user; it names the tenant, the member and an expiry, and is signed with
HMAC-SHA256 under a key derived from the settings secret.  It is verified without a database
read.  It cannot be revoked one by one (it expires; rotating the secret revokes all).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, insert, select, update

from tokenmall.errors import InvalidCommand, NotFound
from tokenmall.service.pages import Page, fetch_page
from tokenmall.store import schema as s

__all__ = [
    "KEY_PREFIX",
    "SCOPES",
    "TOKEN_PREFIX",
    "ApiKeyRecord",
    "MemberClaims",
    "Scope",
    "create_api_key",
    "find_api_key",
    "issue_member_token",
    "list_api_keys",
    "live_api_key",
    "revoke_api_key",
    "verify_member_token",
]

KEY_PREFIX = "tmk_"
TOKEN_PREFIX = "tmt_"  # noqa: S105 - a format marker, not a secret
Scope = Literal["operator", "merchant"]
SCOPES: tuple[Scope, ...] = ("operator", "merchant")
_TOKEN_CONTEXT = b"tokenmall/member-token/v1"


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    key_id: str
    tenant_id: int
    scope: Scope
    merchant_id: int | None
    name: str
    created_at: float
    created_by: str
    revoked_at: float | None


@dataclass(frozen=True, slots=True)
class MemberClaims:
    tenant_id: int
    member: str
    expires_at: int


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _key(row: Any) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=row.key_id,
        tenant_id=row.tenant_id,
        scope=row.scope,
        merchant_id=row.merchant_id,
        name=row.name,
        created_at=row.created_at,
        created_by=row.created_by,
        revoked_at=row.revoked_at,
    )


def create_api_key(
    conn: Connection,
    tenant_id: int,
    *,
    scope: Scope,
    name: str,
    actor: str,
    merchant_id: int | None = None,
) -> tuple[ApiKeyRecord, str]:
    """A new key and its full text, which is shown this once and never stored."""
    if scope not in SCOPES:
        raise InvalidCommand(f"scope must be one of {', '.join(SCOPES)}")
    if scope == "merchant":
        if merchant_id is None:
            raise InvalidCommand("a merchant key needs merchant_id")
        m = s.merchants.c
        found = conn.execute(
            select(m.id).where(m.tenant_id == tenant_id, m.id == merchant_id)
        ).first()
        if found is None:
            raise InvalidCommand(f"no merchant {merchant_id} in this tenant")
    elif merchant_id is not None:
        raise InvalidCommand("an operator key is not bound to a merchant: omit merchant_id")
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    now = time.time()
    conn.execute(
        insert(s.api_keys).values(
            tenant_id=tenant_id,
            key_id=key_id,
            secret_hash=_hash(secret),
            scope=scope,
            merchant_id=merchant_id,
            name=name,
            created_at=now,
            created_by=actor,
            revoked_at=None,
        )
    )
    record = ApiKeyRecord(key_id, tenant_id, scope, merchant_id, name, now, actor, None)
    return record, f"{KEY_PREFIX}{key_id}_{secret}"


def find_api_key(conn: Connection, presented: str) -> ApiKeyRecord | None:
    """The live key ``presented`` is, or None (malformed, unknown, wrong secret, revoked)."""
    # a genuine key is ASCII (hex id, URL-safe base64 secret); anything else (a header's
    # Latin-1 bytes, a NUL that PostgreSQL refuses in text) is refused before the lookup
    if not presented.isascii() or not presented.startswith(KEY_PREFIX):
        return None
    if "\x00" in presented:
        return None
    key_id, sep, secret = presented[len(KEY_PREFIX) :].partition("_")
    if not sep or not key_id or not secret or len(key_id) > 32:
        return None
    row = conn.execute(select(s.api_keys).where(s.api_keys.c.key_id == key_id)).first()
    if row is None or not hmac.compare_digest(row.secret_hash, _hash(secret)):
        return None
    if row.revoked_at is not None:
        return None
    return _key(row)


def live_api_key(conn: Connection, tenant_id: int, key_id: str) -> ApiKeyRecord | None:
    """Key ``key_id`` of this tenant if it is still live: a console session names the key it
    was opened with (never its secret) and is refused from the moment the key is revoked."""
    k = s.api_keys.c
    row = conn.execute(
        select(s.api_keys).where(k.tenant_id == tenant_id, k.key_id == key_id)
    ).first()
    if row is None or row.revoked_at is not None:
        return None
    return _key(row)


def list_api_keys(
    conn: Connection, tenant_id: int, *, limit: int, cursor: str | None
) -> Page[ApiKeyRecord]:
    k = s.api_keys.c
    return fetch_page(
        conn,
        select(s.api_keys).where(k.tenant_id == tenant_id),
        k.id,
        limit=limit,
        cursor=cursor,
        convert=_key,
    )


def revoke_api_key(conn: Connection, tenant_id: int, key_id: str) -> ApiKeyRecord:
    """Revoke a key of this tenant; revoking it again changes nothing (idempotent)."""
    k = s.api_keys.c
    where = (k.tenant_id == tenant_id, k.key_id == key_id)
    conn.execute(
        update(s.api_keys).where(*where, k.revoked_at.is_(None)).values(revoked_at=time.time())
    )
    row = conn.execute(select(s.api_keys).where(*where)).first()
    if row is None:
        raise NotFound(f"no API key {key_id!r}")
    return _key(row)


# ----------------------------------------------------------------------------- member tokens


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signing_key(secret: str) -> bytes:
    # a key for this one purpose: a signature made for something else never verifies here
    return hmac.new(secret.encode(), _TOKEN_CONTEXT, hashlib.sha256).digest()


def _sign(secret: str, payload: str) -> str:
    mac = hmac.new(_signing_key(secret), (TOKEN_PREFIX + payload).encode(), hashlib.sha256)
    return _b64(mac.digest())


def issue_member_token(
    secret: str, tenant_id: int, member: str, *, ttl_seconds: int, now: float | None = None
) -> tuple[str, int]:
    """A signed token for ``member`` of ``tenant_id`` and its expiry (Unix seconds)."""
    expires_at = int(now if now is not None else time.time()) + ttl_seconds
    body = json.dumps(
        {"v": 1, "t": tenant_id, "m": member, "exp": expires_at}, separators=(",", ":")
    )
    payload = _b64(body.encode())
    return f"{TOKEN_PREFIX}{payload}.{_sign(secret, payload)}", expires_at


def verify_member_token(
    secret: str, token: str, *, now: float | None = None
) -> MemberClaims | None:
    """The claims of a genuine, unexpired token, or None."""
    # a genuine token is ASCII (URL-safe base64); hmac.compare_digest raises TypeError on a
    # str holding anything else, so a forged non-ASCII signature must be refused before it
    if not token.isascii() or not token.startswith(TOKEN_PREFIX):
        return None
    payload, sep, signature = token[len(TOKEN_PREFIX) :].partition(".")
    if not sep or not hmac.compare_digest(signature.encode(), _sign(secret, payload).encode()):
        return None
    try:
        claims = json.loads(_unb64(payload))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(claims, dict) or claims.get("v") != 1:
        return None
    tenant_id, member, expires_at = claims.get("t"), claims.get("m"), claims.get("exp")
    if not (isinstance(tenant_id, int) and isinstance(member, str) and isinstance(expires_at, int)):
        return None
    if expires_at <= (now if now is not None else time.time()):
        return None
    return MemberClaims(tenant_id=tenant_id, member=member, expires_at=expires_at)
