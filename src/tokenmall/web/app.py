"""Mounting the console on an app: routes, static files, error pages and security headers."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from tokenmall.web import (
    auth,
    dashboard,
    marketing,
    member,
    member_more,
    member_points,
    member_rewards,
    member_sp,
    member_wallet,
    member_withdraw,
    orders,
    people,
    wallet,
)
from tokenmall.web.base import ConsoleError, LoginRequired, render
from tokenmall.web.group_actions import router as group_actions_router
from tokenmall.web.groups import router as groups_router
from tokenmall.web.member_nfg import router as member_nfg_router
from tokenmall.web.nfg import router as nfg_router

__all__ = ["STATIC_PREFIX", "install"]

STATIC_PREFIX: Final = "/console/static"
STATIC_DIR: Final = Path(__file__).parent / "static"


async def _on_console_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConsoleError)
    return render(request, "error.html", http_status=exc.status, message=exc.message)


async def _on_login_required(request: Request, _exc: Exception) -> Response:
    return RedirectResponse("/console/login", status_code=303)


def install(app: FastAPI) -> None:
    """Add the console's pages and static files to ``app``."""
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="console-static")
    for module in (
        auth,
        dashboard,
        orders,
        wallet,
        people,
        member,
        member_wallet,
        member_sp,
        member_withdraw,
        member_more,
    ):
        app.router.routes.extend(module.router.routes)
    for module in (marketing, member_rewards, member_points):
        app.router.routes.extend(module.router.routes)
    app.router.routes.extend(groups_router.routes)
    app.router.routes.extend([*nfg_router.routes, *member_nfg_router.routes])
    app.router.routes.extend(group_actions_router.routes)
    app.add_exception_handler(ConsoleError, _on_console_error)
    app.add_exception_handler(LoginRequired, _on_login_required)
