"""Logging in to the console with one of the tenant's API keys, and out.

The login form asks for the tenant's code and a key of that tenant (operator or merchant
scope, :mod:`tokenmall.service.credentials`); a key of another tenant is refused with the
same words as a wrong key, so the form tells nobody which tenants exist.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from tokenmall.errors import NotFound
from tokenmall.service.credentials import find_api_key
from tokenmall.service.tenants import tenant_id_for
from tokenmall.store.db import read_only
from tokenmall.web.base import (
    ConsoleError,
    field,
    in_thread,
    posted,
    read_form,
    render,
    services,
    tr,
    viewer,
)
from tokenmall.web.i18n import N_
from tokenmall.web.session import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    SESSION_SECONDS,
    new_token,
    open_session,
    seal_session,
    tokens_match,
)

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
MAX_KEY = 200


def _login_page(request: Request, *, error: str | None = None, tenant: str = "") -> Response:
    token = new_token()
    response = render(
        request,
        "login.html",
        http_status=401 if error else 200,
        csrf=token,
        error=error,
        tenant_code=tenant,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/console",
    )
    return response


@router.get("/console")
def console_home(request: Request) -> Response:
    secret = services(request).settings.secret_key.get_secret_value()
    session = open_session(secret, request.cookies.get(SESSION_COOKIE))
    if session is None:
        return RedirectResponse("/console/login", status_code=303)
    return RedirectResponse(f"/console/{session.tenant}/", status_code=303)


@router.get("/console/login")
def login_form(request: Request) -> Response:
    """The form; ``?tenant=`` fills in the mall's code (the link ``tokenmall serve`` prints)."""
    return _login_page(request, tenant=(request.query_params.get("tenant") or "")[:64])


def _check_key(request: Request, tenant: str, key: str) -> tuple[int, str, str, int | None] | None:
    with read_only(services(request).engine).connect() as conn:
        record = find_api_key(conn, key)
        try:
            tenant_id = tenant_id_for(conn, tenant)
        except NotFound:
            return None
    if record is None or record.tenant_id != tenant_id:
        return None
    return tenant_id, record.key_id, record.scope, record.merchant_id


@router.post("/console/login")
async def login(request: Request) -> Response:
    form = await read_form(request)
    token = form.get("csrf")
    if not tokens_match(
        request.cookies.get(LOGIN_COOKIE), token if isinstance(token, str) else None
    ):
        raise ConsoleError(403, N_("The form has expired or did not come from this console."))
    tenant = field(form, "tenant").strip()[:64]
    key = field(form, "key").strip()[:MAX_KEY]
    found = await in_thread(_check_key, request, tenant, key) if tenant and key else None
    if found is None:
        return _login_page(request, error=tr(request, N_("Wrong tenant or key.")), tenant=tenant)
    tenant_id, key_id, scope, merchant_id = found
    secret = services(request).settings.secret_key.get_secret_value()
    cookie, _ = seal_session(
        secret,
        tenant_id=tenant_id,
        tenant=tenant,
        key_id=key_id,
        scope=scope,
        merchant_id=merchant_id,
    )
    response = RedirectResponse(f"/console/{tenant}/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/console",
    )
    response.delete_cookie(LOGIN_COOKIE, path="/console")
    return response


@router.post("/console/{tenant}/logout")
async def logout(request: Request, tenant: str) -> Response:
    who = await in_thread(viewer, request, tenant)
    await posted(request, who)
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response
