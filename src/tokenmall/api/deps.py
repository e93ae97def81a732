"""Who is calling, on behalf of which tenant, and may they: the API's dependencies.

Every request carries ``Authorization: Bearer <credential>``, one of:

* the platform admin token (settings): every tenant, and the platform routes;
* an API key ``tmk_...`` of one tenant, scope ``operator`` or ``merchant``;
* a member token ``tmt_...`` of one tenant and one member.

Tenant routes are ``/v1/tenants/{tenant}/...``.  The tenant in the path must be the
credential's own, or the answer is 404 with the very message an unknown tenant gets: a key of
tenant A cannot even learn that tenant B exists.  The order of checks is fixed: credential
(401), rate limit (429), tenant (404), scope (403), then the request's own validation (422), so
nothing about another tenant leaks through a 403 or a 422 either.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from tokenmall.api.errors import ApiError
from tokenmall.api.ratelimit import RateLimiter
from tokenmall.errors import NotFound
from tokenmall.service.credentials import (
    KEY_PREFIX,
    TOKEN_PREFIX,
    ApiKeyRecord,
    find_api_key,
    verify_member_token,
)
from tokenmall.service.pages import DEFAULT_LIMIT, MAX_LIMIT
from tokenmall.service.tenants import tenant_id_for
from tokenmall.service.uow import Store
from tokenmall.settings import Settings
from tokenmall.store.db import read_only

__all__ = [
    "AdminCaller",
    "AnyCaller",
    "AppContext",
    "Caller",
    "CatalogWriter",
    "Context",
    "MemberCaller",
    "OperatorCaller",
    "PageQuery",
    "Paging",
    "Principal",
    "TenantCaller",
]

Kind = Literal["admin", "operator", "merchant", "member"]
_MAX_CACHED_KEYS = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    kind: Kind
    tenant_id: int | None = None  # None: the platform admin, not bound to a tenant
    key_id: str | None = None
    merchant_id: int | None = None
    member: str | None = None

    @property
    def actor(self) -> str:
        """Who, for audit records."""
        if self.kind == "admin":
            return "platform-admin"
        if self.kind == "member":
            return f"member:{self.member}"
        return f"{self.kind}-key:{self.key_id}"

    @property
    def bucket(self) -> str:
        """The rate-limit identity: one bucket per key, per member, or for the admin."""
        if self.kind == "member":
            return f"member:{self.tenant_id}:{self.member}"
        return self.actor


@dataclass(frozen=True, slots=True)
class Caller:
    """A principal admitted to one tenant."""

    tenant_id: int
    tenant: str
    principal: Principal

    @property
    def kind(self) -> Kind:
        return self.principal.kind


class AppContext:
    """What the routes share: settings, the engine, the ledger, the rate limiter."""

    def __init__(self, settings: Settings, engine: Engine, *, store: Store | None = None) -> None:
        self.settings = settings
        self.engine = engine
        # where units of work come from: the composition root's (its handlers run in them)
        self.store = store if store is not None else Store(engine)
        self.ledger = self.store.ledger
        self.limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
        self._secret = settings.secret_key.get_secret_value()
        self._admin_digest = hashlib.sha256(
            settings.admin_token.get_secret_value().encode()
        ).digest()
        # tenant codes never change and tenants are never deleted: an id, once known, stays
        self._tenant_ids: dict[str, int] = {}
        self._tenant_lock = threading.Lock()
        # verified API keys: key id -> (valid until, SHA-256 of the key, record).  Saves a
        # database read per request; a revocation through another process is seen after at
        # most api_key_cache_seconds, through this one at once (forget_key).
        self._keys: dict[str, tuple[float, bytes, ApiKeyRecord]] = {}
        self._key_ttl = settings.api_key_cache_seconds

    @property
    def secret(self) -> str:
        return self._secret

    def is_admin_token(self, presented: str) -> bool:
        digest = hashlib.sha256(presented.encode()).digest()
        return hmac.compare_digest(digest, self._admin_digest)

    def cached_api_key(self, presented: str) -> ApiKeyRecord | None:
        """The live key ``presented`` is if the cache vouches for it, else None (ask api_key)."""
        key_id = presented[len(KEY_PREFIX) :].partition("_")[0]
        cached = self._keys.get(key_id)
        if cached is None or cached[0] <= time.monotonic():
            return None
        digest = hashlib.sha256(presented.encode()).digest()
        return cached[2] if hmac.compare_digest(cached[1], digest) else None

    def api_key(self, presented: str) -> ApiKeyRecord | None:
        """The live key ``presented`` is (see credentials.find_api_key), cached briefly."""
        record = self.cached_api_key(presented)
        if record is not None:
            return record
        key_id = presented[len(KEY_PREFIX) :].partition("_")[0]
        digest = hashlib.sha256(presented.encode()).digest()
        now = time.monotonic()
        with read_only(self.engine).connect() as conn:
            record = find_api_key(conn, presented)
        if record is not None and self._key_ttl > 0:
            if len(self._keys) >= _MAX_CACHED_KEYS:
                self._keys.clear()
            self._keys[key_id] = (now + self._key_ttl, digest, record)
        return record

    def forget_key(self, key_id: str) -> None:
        self._keys.pop(key_id, None)

    def cached_tenant_id(self, code: str) -> int | None:
        return self._tenant_ids.get(code)

    def tenant_id(self, code: str) -> int:
        tid = self._tenant_ids.get(code)
        if tid is None:
            with read_only(self.engine).connect() as conn:
                tid = tenant_id_for(conn, code)
            with self._tenant_lock:
                self._tenant_ids[code] = tid
        return tid


async def _context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.tokenmall
    return ctx


Context = Annotated[AppContext, Depends(_context)]

_bearer = HTTPBearer(
    auto_error=False,
    description="An API key (tmk_...), a member token (tmt_...) or the platform admin token.",
)


# The dependencies below are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency
# in its thread pool, one hand-over per dependency and request (with the route itself, four
# per order request).  They do no I/O but on a cache miss (a key not seen for
# api_key_cache_seconds, a tenant not seen by this process), which goes to the thread pool.


async def _principal(ctx: AppContext, credential: str) -> Principal | None:
    if credential.startswith(KEY_PREFIX):
        key = ctx.cached_api_key(credential) or await run_in_threadpool(ctx.api_key, credential)
        if key is None:
            return None
        return Principal(
            kind=key.scope, tenant_id=key.tenant_id, key_id=key.key_id, merchant_id=key.merchant_id
        )
    if credential.startswith(TOKEN_PREFIX):
        claims = verify_member_token(ctx.secret, credential)
        if claims is None:
            return None
        return Principal(kind="member", tenant_id=claims.tenant_id, member=claims.member)
    if ctx.is_admin_token(credential):
        return Principal(kind="admin")
    return None


def _limit(ctx: AppContext, bucket: str) -> None:
    wait = ctx.limiter.take(bucket)
    if wait:
        raise ApiError(
            429,
            "rate_limited",
            f"too many requests; retry in {wait} s",
            headers={"Retry-After": str(wait)},
        )


async def authenticate(
    request: Request,
    ctx: Context,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, or 401; then one request from their rate-limit bucket, or 429."""
    principal = await _principal(ctx, credentials.credentials) if credentials else None
    if principal is None:
        # failed attempts are limited per client address, so keys cannot be guessed quickly
        _limit(ctx, f"anonymous:{request.client.host if request.client else '-'}")
        raise ApiError(
            401,
            "unauthenticated",
            "send a valid credential: Authorization: Bearer <API key or member token>"
            if credentials is None
            else "the credential is unknown, revoked or expired",
            headers={"WWW-Authenticate": "Bearer"},
        )
    _limit(ctx, principal.bucket)
    return principal


AnyPrincipal = Annotated[Principal, Depends(authenticate)]


async def tenant_caller(tenant: str, principal: AnyPrincipal, ctx: Context) -> Caller:
    """Admit the principal to the tenant in the path, or answer 404 as for no such tenant."""
    tid = ctx.cached_tenant_id(tenant)
    if tid is None:
        try:
            tid = await run_in_threadpool(ctx.tenant_id, tenant)
        except NotFound:
            raise NotFound(f"no tenant {tenant!r}") from None
    if principal.tenant_id is not None and principal.tenant_id != tid:
        raise NotFound(f"no tenant {tenant!r}")
    return Caller(tenant_id=tid, tenant=tenant, principal=principal)


TenantCaller = Annotated[Caller, Depends(tenant_caller)]


def _require(*kinds: Kind) -> Callable[[Caller], Awaitable[Caller]]:
    allowed = " or ".join("platform admin" if k == "admin" else f"{k}" for k in kinds)

    async def check(caller: TenantCaller) -> Caller:
        if caller.kind not in kinds:
            raise ApiError(403, "forbidden", f"this needs {allowed} credentials")
        return caller

    return check


async def _admin(principal: AnyPrincipal) -> Principal:
    if principal.kind != "admin":
        raise ApiError(403, "forbidden", "this needs the platform admin token")
    return principal


# admitted to the tenant in the path: any credential of it (reads of the mall's catalog)
AnyCaller = TenantCaller
# the tenant's back end (or the platform admin)
OperatorCaller = Annotated[Caller, Depends(_require("admin", "operator"))]
# who may change a catalog: the operator, or a merchant for its own products
CatalogWriter = Annotated[Caller, Depends(_require("admin", "operator", "merchant"))]
# a member acting for themselves
MemberCaller = Annotated[Caller, Depends(_require("member"))]
# the platform routes (creating and listing tenants)
AdminCaller = Annotated[Principal, Depends(_admin)]


@dataclass(frozen=True, slots=True)
class PageQuery:
    limit: int
    cursor: str | None


async def _page_query(
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page (default {DEFAULT_LIMIT}).")
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=200, description="next_cursor of the previous page.")
    ] = None,
) -> PageQuery:
    return PageQuery(limit=limit, cursor=cursor)


Paging = Annotated[PageQuery, Depends(_page_query)]
