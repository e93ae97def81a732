"""A tenant's webhook endpoints: register (the signing secret is shown once), list, disable.

HTTPS is required: the body carries member codes and amounts, and the signature proves who
sent it, not that nobody read it.  Plain ``http://`` is accepted only for a receiver on this
machine (127.0.0.1, ::1, localhost), which is what tests and local development use.
"""

from __future__ import annotations

import secrets
import time
from urllib.parse import urlsplit

from sqlalchemy import Connection, insert, select, update

from tokenmall.errors import InvalidCommand, NotFound
from tokenmall.service.pages import Page, fetch_page
from tokenmall.service.webhooks.models import EVENT_TYPES, Endpoint, endpoint_of
from tokenmall.store import schema as s
from tokenmall.store.numbers import next_numbers

__all__ = [
    "SECRET_PREFIX",
    "check_events",
    "check_url",
    "create_endpoint",
    "disable_endpoint",
    "get_endpoint",
    "list_endpoints",
]

SECRET_PREFIX = "whsec_"  # noqa: S105 - a format marker, not a secret
_LOCAL_HOSTS = ("127.0.0.1", "::1", "localhost")
_URL_MAX = 500
MAX_ENDPOINTS = 20  # per tenant: every event is written once per subscribed endpoint


def check_url(url: str) -> str:
    """An absolute https URL (http only to this machine), without credentials or fragment."""
    if len(url) > _URL_MAX:
        raise InvalidCommand(f"the URL is longer than {_URL_MAX} characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        raise InvalidCommand(f"not a URL: {url!r}") from None
    if not host:
        raise InvalidCommand(f"the URL needs a host: {url!r}")
    if parts.username or parts.password:
        raise InvalidCommand("the URL must not carry credentials")
    if parts.fragment:
        raise InvalidCommand("the URL must not have a fragment")
    if parts.scheme == "https":
        return url
    if parts.scheme == "http" and host in _LOCAL_HOSTS:
        return url
    raise InvalidCommand("a webhook URL must be https:// (http:// only to 127.0.0.1 or localhost)")


def check_events(events: list[str]) -> tuple[str, ...]:
    """The event types asked for, known and without repeats, in the canonical order."""
    if not events:
        raise InvalidCommand("name at least one event type")
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        raise InvalidCommand(f"unknown event types {unknown}; known: {', '.join(EVENT_TYPES)}")
    return tuple(e for e in EVENT_TYPES if e in events)


def create_endpoint(
    conn: Connection,
    tenant_id: int,
    *,
    url: str,
    events: list[str],
    description: str | None,
    actor: str,
    now: float | None = None,
) -> tuple[Endpoint, str]:
    """A new endpoint and its signing secret (the caller shows it once; it is stored to sign
    every delivery)."""
    url = check_url(url)
    kinds = check_events(events)
    e = s.webhook_endpoints.c
    live = conn.execute(select(e.id).where(e.tenant_id == tenant_id, e.disabled_at.is_(None))).all()
    if len(live) >= MAX_ENDPOINTS:
        raise InvalidCommand(f"a tenant has at most {MAX_ENDPOINTS} active endpoints")
    secret = SECRET_PREFIX + secrets.token_hex(32)
    new_id = next_numbers(conn, tenant_id, "webhook_endpoint")
    conn.execute(
        insert(s.webhook_endpoints).values(
            tenant_id=tenant_id,
            id=new_id,
            url=url,
            secret=secret,
            events=",".join(kinds),
            description=description,
            created_at=time.time() if now is None else now,
            created_by=actor,
        )
    )
    return get_endpoint(conn, tenant_id, new_id), secret


def get_endpoint(conn: Connection, tenant_id: int, endpoint_id: int) -> Endpoint:
    e = s.webhook_endpoints.c
    row = conn.execute(
        select(s.webhook_endpoints).where(e.tenant_id == tenant_id, e.id == endpoint_id)
    ).first()
    if row is None:
        raise NotFound(f"no webhook endpoint {endpoint_id}")
    return endpoint_of(row)


def list_endpoints(
    conn: Connection, tenant_id: int, *, limit: int, cursor: str | None
) -> Page[Endpoint]:
    """Every endpoint of the tenant, disabled ones included, without their secrets."""
    e = s.webhook_endpoints.c
    query = select(s.webhook_endpoints).where(e.tenant_id == tenant_id)
    return fetch_page(conn, query, e.id, limit=limit, cursor=cursor, convert=endpoint_of)


def disable_endpoint(
    conn: Connection, tenant_id: int, endpoint_id: int, *, now: float | None = None
) -> Endpoint:
    """No new deliveries are written for it and its pending ones are no longer sent (they stay
    in the list as pending).  Disabling twice is harmless."""
    e = s.webhook_endpoints.c
    get_endpoint(conn, tenant_id, endpoint_id)
    conn.execute(
        update(s.webhook_endpoints)
        .where(e.tenant_id == tenant_id, e.id == endpoint_id, e.disabled_at.is_(None))
        .values(disabled_at=time.time() if now is None else now)
    )
    return get_endpoint(conn, tenant_id, endpoint_id)
