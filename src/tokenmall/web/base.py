"""What every console page shares: the templates, the caller's session, its role, the
language, formatting, errors shown as pages, and reading a posted form.

Pages never query tables: they call the services the JSON API calls (``app.state.services``,
built by the composition root), so a page and its API route cannot disagree.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final, ParamSpec, TypeVar
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from tokenmall.bootstrap import Services
from tokenmall.service import dayclose
from tokenmall.service.credentials import live_api_key
from tokenmall.store.db import read_only
from tokenmall.web.i18n import (
    DEFAULT_LANG,
    LANGS,
    N_,
    format_date,
    format_datetime,
    format_money,
    format_points,
    format_price,
    translations,
)
from tokenmall.web.session import SESSION_COOKIE, Session, open_session, tokens_match

__all__ = [
    "ConsoleError",
    "FormError",
    "LoginRequired",
    "Viewer",
    "operator_only",
    "parse_amount",
    "parse_text",
    "posted",
    "render",
    "services",
    "viewer",
]

P = ParamSpec("P")
T = TypeVar("T")
TEMPLATES: Final = Path(__file__).parent / "templates"
LANG_COOKIE: Final = "tm_lang"
MAX_AMOUNT: Final = Decimal("1000000000")  # an order's most (MAX_ORDER_TOTAL); no more here
_AMOUNT_RE: Final = re.compile(r"[0-9]{1,13}(\.[0-9]{1,2})?")
MAX_FORM_FIELDS: Final = 100  # the parameters form has one field per parameter
MAX_FORM_BYTES: Final = 64 * 1024  # a console form is a few hundred bytes
# the pages load only their own scripts, styles and images; ECharts sets inline styles on the
# elements it draws in, so styles may be inline; no frame may embed the console.  Set on each
# page here, not by a middleware, which would cost every API request too.
_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters["money"] = format_money
env.filters["points"] = format_points
env.filters["price"] = format_price
env.filters["day"] = format_date


class ConsoleError(Exception):
    """An answer as a page: 403 (role), 404 (absent or another tenant's), 400 (bad form)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message  # an msgid: translated when shown


class LoginRequired(Exception):
    """No live session: the answer is the login page."""


class FormError(Exception):
    """A field's value refused before any service ran: shown on the form, nothing changed."""

    def __init__(self, message: str, **params: Any) -> None:
        super().__init__(message)
        self.message = message
        self.params = params


def tr(request: Request, message: str, **params: Any) -> str:
    """``message`` (an msgid) in the visitor's language, with its ``%(name)s`` filled in."""
    text = translations(lang_of(request)).gettext(message)
    return text % params if params else text


def form_error(request: Request, exc: FormError) -> str:
    return tr(request, exc.message, **exc.params)


def service_error(request: Request, exc: Exception) -> str:
    """A service's refusal (its own English words, which name the rule) behind a translated
    lead: the page says in its language that nothing was done."""
    return tr(request, "Not done: %(reason)s", reason=str(exc))


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def lang_of(request: Request) -> str:
    asked = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
    return asked if asked in LANGS else DEFAULT_LANG


@dataclass(frozen=True, slots=True)
class Viewer:
    """A logged-in caller of the console, admitted to the tenant in the path."""

    session: Session
    zone: ZoneInfo

    @property
    def operator(self) -> bool:
        return self.session.scope == "operator"


def _secret(request: Request) -> str:
    return services(request).settings.secret_key.get_secret_value()


def viewer(request: Request, tenant: str) -> Viewer:
    """The session's caller, for ``tenant``.  No session (or its key revoked): the login page;
    a session of another tenant: 404, as for a tenant that does not exist (as the API)."""
    session = open_session(_secret(request), request.cookies.get(SESSION_COOKIE))
    if session is None or session.scope not in ("operator", "merchant"):
        raise LoginRequired
    if session.tenant != tenant:
        raise ConsoleError(404, N_("No such page."))
    with read_only(services(request).engine).connect() as conn:
        if live_api_key(conn, session.tenant_id, session.key_id) is None:
            raise LoginRequired
        clock = dayclose.tenant_clock(conn, session.tenant_id)
    return Viewer(session, clock.zone)


def operator_only(who: Viewer) -> None:
    if not who.operator:
        raise ConsoleError(403, N_("This page is for the operator."))


def render(
    request: Request,
    template: str,
    who: Viewer | None = None,
    *,
    http_status: int = 200,
    **context: Any,
) -> HTMLResponse:
    lang = lang_of(request)
    tr = translations(lang)
    zone = who.zone if who is not None else ZoneInfo("Asia/Shanghai")
    body = env.get_template(template).render(
        request=request,
        who=who,
        lang=lang,
        _=tr.gettext,
        when=lambda ts: format_datetime(ts, zone),
        tenant=who.session.tenant if who is not None else None,
        csrf=who.session.csrf if who is not None else context.pop("csrf", ""),
        **context,
    )
    response = HTMLResponse(body, status_code=http_status, headers=_HEADERS)
    if request.query_params.get("lang") in LANGS:
        response.set_cookie(
            LANG_COOKIE, lang, max_age=365 * 86400, httponly=True, samesite="lax", path="/"
        )
    return response


async def read_form(request: Request) -> FormData:
    """The posted form (``application/x-www-form-urlencoded``, what the pages send), read up
    to MAX_FORM_BYTES and no further (413), also when the body comes without its length."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise ConsoleError(400, N_("The form could not be read."))
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_FORM_BYTES):
        raise ConsoleError(413, N_("The form is too large."))
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise ConsoleError(413, N_("The form is too large."))
    try:
        pairs: list[tuple[str, str | UploadFile]] = [
            *parse_qsl(
                body.decode("utf-8"),
                keep_blank_values=True,
                strict_parsing=False,
                max_num_fields=MAX_FORM_FIELDS,
            )
        ]
    except (UnicodeDecodeError, ValueError):
        raise ConsoleError(400, N_("The form could not be read.")) from None
    return FormData(pairs)


async def posted(request: Request, who: Viewer) -> FormData:
    """The posted form, once its CSRF token is the session's (else 403, nothing done)."""
    form = await read_form(request)
    token = form.get("csrf")
    if not tokens_match(who.session.csrf, token if isinstance(token, str) else None):
        raise ConsoleError(403, N_("The form has expired or did not come from this console."))
    return form


def field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def parse_amount(text: str, *, required: bool) -> Decimal | None:
    """A CNY amount as typed: digits with at most two places, above zero, at most 10^9."""
    text = text.strip().replace(",", "")
    if not text:
        if required:
            raise FormError(N_("Enter an amount."))
        return None
    if not _AMOUNT_RE.fullmatch(text):
        raise FormError(
            N_("An amount is a positive number of yuan with at most two decimal places.")
        )
    try:
        amount = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise FormError(N_("An amount is a positive number of yuan.")) from None
    if amount <= 0:
        raise FormError(N_("The amount must be above zero."))
    if amount > MAX_AMOUNT:
        raise FormError(N_("The amount is too large."))
    return amount


def parse_text(text: str, *, required: bool, limit: int) -> str | None:
    """A line a person types (a reason, a name): trimmed, at most ``limit`` characters, no
    control characters.  Shown later, it is escaped by the templates like every value."""
    text = text.strip()
    if not text:
        if required:
            raise FormError(N_("Enter a reason."))
        return None
    if len(text) > limit:
        raise FormError(N_("At most %(limit)s characters."), limit=limit)
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in text):
        raise FormError(N_("Control characters are not allowed."))
    return text


async def in_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """A service call (blocking I/O) from an ``async`` page, in the thread pool."""
    return await run_in_threadpool(fn, *args, **kwargs)
