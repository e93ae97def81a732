"""The application factory: ``create_app(settings)`` builds the whole HTTP service.

Tests build it on a throw-away database; ``tokenmall serve`` builds it from the environment.
Settings are checked here, so no way of starting the service skips the production checks.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from sqlalchemy import Engine
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

from tokenmall import bootstrap
from tokenmall.api.deps import AppContext
from tokenmall.api.errors import install_error_handlers
from tokenmall.api.routes import (
    API_PREFIX,
    aftersales,
    catalog,
    groupbuys,
    imports,
    keys,
    marketing,
    members,
    merchant_orders,
    nfg,
    operations,
    orders,
    reads,
    tenants,
    wallet,
    webhooks,
)
from tokenmall.api.schemas.platform import Health
from tokenmall.settings import Settings
from tokenmall.store.db import create_db_engine

__all__ = ["API_PREFIX", "create_app", "serve_app"]

VERSION = importlib.metadata.version("tokenmall")

_DESCRIPTION = """\
The tokenmall service: multi-tenant malls with appreciating points (EP), stable points (SP),
dividends and their ledger.

**Authentication**: `Authorization: Bearer <credential>` with an API key (`tmk_...`, scope
operator or merchant), a member token (`tmt_...`, issued by the tenant's operator) or the platform
admin token. Tenant routes are `/v1/tenants/{tenant}/...`; a credential of another tenant gets
404 as if the tenant did not exist.

**Conventions**: amounts are decimal strings (`"99.00"`), never JSON numbers; lists take
`?limit=&cursor=` and answer `{"items": [...], "next_cursor": ...}`; every error is
`{"error": {"code": ..., "message": ...}}`.
"""


_DOCS_STATIC = "/docs/static"


def _serve_docs(app: FastAPI) -> None:
    """The Swagger UI page at ``/docs`` with its script and styles served by this app (the
    ``swagger-ui-bundle`` package ships them): FastAPI's own page fetches them from a CDN, so
    it is blank offline and where that CDN is blocked (behind the Great Firewall)."""
    app.mount(_DOCS_STATIC, StaticFiles(directory=swagger_ui_path), name="docs-static")

    async def docs(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="tokenmall API",
            swagger_js_url=f"{_DOCS_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{_DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{_DOCS_STATIC}/favicon-32x32.png",
        )

    app.add_route("/docs", docs, include_in_schema=False)


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    scheduler: bool = False,
) -> FastAPI:
    """The service on ``settings.db_url`` (or ``engine``), whose schema must be migrated.

    ``scheduler``: run :class:`~tokenmall.worker.Scheduler` (day closes at each tenant's
    local midnight, order expiry and settlement, payout retries) in a thread for the
    app's lifetime, as ``tokenmall serve`` does; tests leave it off.  It runs the jobs only
    while this process holds the database's scheduler lease, so of N workers one runs them.

    Raises :class:`~tokenmall.settings.InsecureSettings` in production with weak secrets.
    """
    settings = settings or Settings()
    settings.check_for_serving()
    own_engine = engine is None
    db = engine if engine is not None else create_db_engine(settings.db_url)

    @asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[None]:
        jobs = bootstrap.scheduler(app_.state.services) if scheduler else None
        if jobs is not None:
            jobs.start()
        yield
        if jobs is not None:
            jobs.stop()
        if own_engine:
            db.dispose()

    app = FastAPI(
        title="tokenmall",
        version=VERSION,
        description=_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served below from vendored files: FastAPI's page loads them from a CDN
        redoc_url=None,
    )
    _serve_docs(app)
    # the composition root's services: one orders service per app, shared by the order
    # routes, the wallet's payouts and the scheduler (it holds the tenants' sandbox gateways
    # and the notification handlers), and the store whose units of work carry the events
    services = bootstrap.build(settings, db)
    app.state.services = services
    app.state.tokenmall = AppContext(settings, db, store=services.store)
    app.state.orders = services.orders
    app.state.payouts = services.payouts
    install_error_handlers(app)

    @app.get(API_PREFIX + "/health", tags=["platform"])
    def health() -> Health:
        """Liveness: answers without credentials and without touching the database."""
        return Health(version=VERSION, pid=os.getpid())

    # The routers' own routes go straight into the app's table.  include_router would put each
    # behind two layers of included routers, which FastAPI matches route by route on every
    # request, twice per layer: 24 route checks and about 0.1 ms of CPU per request here
    # (bench/README.md, fifth session).  Order still decides: imports before orders, so its
    # fixed path wins over orders' {order_ref} paths.
    routers = (tenants, keys, members, catalog, imports, orders, merchant_orders, aftersales)
    for module in (*routers, wallet, reads, operations, webhooks, marketing, groupbuys, nfg):
        app.router.routes.extend(module.router.routes)
    return app


def serve_app() -> FastAPI:
    """The app of one worker of ``tokenmall serve --workers N``, from the environment.

    uvicorn starts each worker as a fresh interpreter and builds the app there from this
    import string (``tokenmall.api.app:serve_app``, ``factory=True``), so everything comes
    from ``TOKENMALL_*`` variables, which ``serve`` sets before it starts them.
    """
    settings = Settings()
    return create_app(settings, scheduler=settings.serve_scheduler)
