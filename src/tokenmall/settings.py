"""Process-wide settings, read from the environment in one validated place.

Only what every entry point shares lives here; per-tenant economics are
:class:`~tokenmall.domain.params.TenantParams`, stored with the tenant, never in the environment.
"""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_DB_URL", "Settings"]

DEFAULT_DB_URL = "sqlite:///tokenmall.db"


class Settings(BaseSettings):
    """``TOKENMALL_*`` environment variables.

    Read when a command runs (not at import), so a test or an operator can change the
    environment between two invocations in one process.
    """

    model_config = SettingsConfigDict(env_prefix="TOKENMALL_", extra="ignore")

    db_url: str = DEFAULT_DB_URL
