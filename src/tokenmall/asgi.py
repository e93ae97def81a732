"""The served application: the JSON API with the operator console mounted on it.

``tokenmall.api`` and ``tokenmall.web`` are siblings (neither imports the other; both call the
services through the composition root), so the app that carries both is put together here,
above them.  ``tokenmall serve`` serves this; tests of the API alone build
:func:`tokenmall.api.create_app`.
"""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import Engine

from tokenmall import api, web
from tokenmall.settings import Settings

__all__ = ["create_app", "serve_app"]


def create_app(
    settings: Settings | None = None, *, engine: Engine | None = None, scheduler: bool = False
) -> FastAPI:
    """:func:`tokenmall.api.create_app` with the console's pages (left out of the OpenAPI
    document) and static files."""
    app = api.create_app(settings, engine=engine, scheduler=scheduler)
    web.install(app)
    return app


def serve_app() -> FastAPI:
    """The app of one worker of ``tokenmall serve --workers N``, from the environment
    (``tokenmall.asgi:serve_app``, ``factory=True``)."""
    settings = Settings()
    return create_app(settings, scheduler=settings.serve_scheduler)
