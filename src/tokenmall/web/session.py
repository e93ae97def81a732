"""The console's session cookie and its CSRF tokens.

The cookie names the tenant, the API key the operator logged in with (its id, never its
secret), the key's scope and merchant, an expiry and the session's CSRF token, signed with
HMAC-SHA256 under a key derived from the settings secret for this one purpose (a member token
or a sandbox signature never verifies as a session).  It is HttpOnly (no script reads it),
SameSite=Strict (no other site's page sends it) and Secure when the page came over https.
Every request also checks that the key is still live, so revoking the key ends its sessions.

Every form carries the session's CSRF token in a hidden field and a POST without it, or with
another, is refused (403) before anything else.  The login form, which has no session yet,
uses a random token kept in its own short-lived cookie and repeated in the form (a
double-submit check): another site cannot read the cookie to copy it into its own form.
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
from typing import Any, Final

__all__ = [
    "LOGIN_COOKIE",
    "MEMBER_COOKIE",
    "SESSION_COOKIE",
    "SESSION_SECONDS",
    "Session",
    "new_token",
    "open_session",
    "seal_session",
    "tokens_match",
]

SESSION_COOKIE: Final = "tm_console"
MEMBER_COOKIE: Final = "tm_member"  # the member's pages (/m), a session of scope "member"
LOGIN_COOKIE: Final = "tm_login"
SESSION_SECONDS: Final = 8 * 3600  # a working day; then log in again
_CONTEXT: Final = b"tokenmall/console-session/v1"


@dataclass(frozen=True, slots=True)
class Session:
    tenant_id: int
    tenant: str
    key_id: str  # "" for a member
    scope: str  # "operator" | "merchant" | "member"
    merchant_id: int | None
    csrf: str
    expires_at: int
    member: str | None = None

    @property
    def actor(self) -> str:
        """Who, for audit records: the same words the API writes for this credential."""
        if self.scope == "member":
            return f"member:{self.member}"
        return f"{self.scope}-key:{self.key_id}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, payload: str) -> str:
    key = hmac.new(secret.encode(), _CONTEXT, hashlib.sha256).digest()
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())


def new_token() -> str:
    return secrets.token_urlsafe(24)


def tokens_match(expected: str | None, presented: str | None) -> bool:
    if not expected or not presented or not presented.isascii():
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())


def seal_session(
    secret: str,
    *,
    tenant_id: int,
    tenant: str,
    key_id: str,
    scope: str,
    merchant_id: int | None,
    member: str | None = None,
    now: float | None = None,
    expires_at: int | None = None,
) -> tuple[str, Session]:
    """A new session (with a fresh CSRF token) and its cookie value; it lasts
    SESSION_SECONDS, or until ``expires_at`` if that is sooner (a member token's expiry)."""
    until = int(now if now is not None else time.time()) + SESSION_SECONDS
    if expires_at is not None:
        until = min(until, expires_at)
    session = Session(
        tenant_id, tenant, key_id, scope, merchant_id, new_token(), until, member=member
    )
    body = {
        "t": tenant_id,
        "c": tenant,
        "k": key_id,
        "s": scope,
        "m": merchant_id,
        "x": session.csrf,
        "e": session.expires_at,
        "u": member,
    }
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    return f"{payload}.{_mac(secret, payload)}", session


def open_session(secret: str, cookie: str | None, *, now: float | None = None) -> Session | None:
    """The session a genuine, unexpired cookie holds, or None."""
    if not cookie or not cookie.isascii():
        return None
    payload, sep, mac = cookie.partition(".")
    if not sep or not hmac.compare_digest(mac.encode(), _mac(secret, payload).encode()):
        return None
    try:
        body: Any = json.loads(_unb64(payload))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(body, dict):
        return None
    try:
        session = Session(
            tenant_id=int(body["t"]),
            tenant=str(body["c"]),
            key_id=str(body["k"]),
            scope=str(body["s"]),
            merchant_id=None if body["m"] is None else int(body["m"]),
            csrf=str(body["x"]),
            expires_at=int(body["e"]),
            member=None if body.get("u") is None else str(body["u"]),
        )
    except (KeyError, TypeError, ValueError):
        return None
    if session.expires_at <= (now if now is not None else time.time()):
        return None
    return session
