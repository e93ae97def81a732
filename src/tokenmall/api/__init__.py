"""The HTTP API (FastAPI): ``create_app(settings)`` builds it; ``tokenmall serve`` runs it."""

from tokenmall.api.app import API_PREFIX, create_app

__all__ = ["API_PREFIX", "create_app"]
