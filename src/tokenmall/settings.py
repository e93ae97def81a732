"""Process-wide settings, read from the environment in one validated place.

Only what every entry point shares lives here; per-tenant economics are
:class:`~tokenmall.domain.params.TenantParams`, stored with the tenant, never in the environment.

The HTTP service signs member tokens with ``secret_key`` and lets the platform administrator in
with ``admin_token``.  Both have development defaults so ``tokenmall serve`` works out of the
box; :meth:`Settings.check_for_serving` refuses them in production.  The check is a method the
service calls at start-up rather than a model validator, so the operator's other commands
(``db upgrade``, ``scenario run``) still work in a production shell that holds no secrets.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "DEFAULT_ADMIN_TOKEN",
    "DEFAULT_DB_URL",
    "DEFAULT_SECRET_KEY",
    "MIN_SECRET_LENGTH",
    "InsecureSettings",
    "Settings",
]

DEFAULT_DB_URL = "sqlite:///tokenmall.db"
# Development defaults: public, so anything signed with them is forgeable by anyone.
DEFAULT_SECRET_KEY = "tokenmall-development-secret-key-do-not-use-in-production"  # noqa: S105
DEFAULT_ADMIN_TOKEN = "tokenmall-dev-admin"  # noqa: S105
# 32 characters of a random token are ~190 bits (urlsafe base64): beyond guessing.
MIN_SECRET_LENGTH = 32


class InsecureSettings(ValueError):
    """The service must not start with these settings (a default or weak secret in production)."""


class Settings(BaseSettings):
    """``TOKENMALL_*`` environment variables.

    Read when a command runs (not at import), so a test or an operator can change the
    environment between two invocations in one process.
    """

    model_config = SettingsConfigDict(env_prefix="TOKENMALL_", extra="ignore")

    db_url: str = DEFAULT_DB_URL
    environment: Literal["development", "production"] = "development"
    # HMAC key of member access tokens; changing it logs every member out
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET_KEY)
    # bearer token of the platform administrator (creates tenants, changes any tenant)
    admin_token: SecretStr = SecretStr(DEFAULT_ADMIN_TOKEN)
    # token bucket per credential: sustained requests per second and burst; 0 turns it off
    rate_limit_per_second: float = Field(default=200.0, ge=0)
    rate_limit_burst: int = Field(default=400, ge=1)
    # how long a verified API key is trusted without reading it again (a revocation made
    # through another server process takes effect after at most this); 0: read every time
    api_key_cache_seconds: float = Field(default=5.0, ge=0)
    # lifetime of member access tokens: default and the most a tenant may ask for
    member_token_ttl_seconds: int = Field(default=3600, ge=60)
    member_token_max_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    # seconds between the scheduler's rounds when no tenant's midnight comes sooner; its
    # lease lasts three rounds (at least 10 s) unrenewed
    scheduler_interval: float = Field(default=30.0, ge=0.1)
    # whether the workers of `tokenmall serve` run the scheduler (`--no-scheduler` turns it
    # off when a `tokenmall worker` runs it instead); either way one process per database runs it
    serve_scheduler: bool = True
    # seconds between scheduled NFG anchors of a tenant's new token events (the scheduler
    # publishes the Merkle root of the events since the last anchor once this long passed
    # since it, and only when there are new events); 0 turns scheduled anchoring off
    nfg_anchor_interval: float = Field(default=3600.0, ge=0)
    # logs of `serve` and `worker`: one JSON object per line instead of text
    log_json: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @property
    def production(self) -> bool:
        return self.environment == "production"

    def check_for_serving(self) -> None:
        """Refuse to serve in production with a missing, default or short secret.

        A default secret would let anyone forge member tokens or act as the platform admin.
        Development accepts the defaults so a first ``tokenmall serve`` needs no setup.
        """
        if not self.production:
            return
        for name, value, default in (
            ("TOKENMALL_SECRET_KEY", self.secret_key, DEFAULT_SECRET_KEY),
            ("TOKENMALL_ADMIN_TOKEN", self.admin_token, DEFAULT_ADMIN_TOKEN),
        ):
            secret = value.get_secret_value()
            if not secret.strip() or secret == default:
                raise InsecureSettings(
                    f"{name} is not set (the development default is public): refusing to "
                    "start in production; set it to a random value of at least "
                    f'{MIN_SECRET_LENGTH} characters, e.g. `python -c "import secrets; '
                    'print(secrets.token_urlsafe(32))"`'
                )
            if len(secret) < MIN_SECRET_LENGTH:
                raise InsecureSettings(
                    f"{name} is {len(secret)} characters long: refusing to start in production "
                    f"with a secret shorter than {MIN_SECRET_LENGTH} characters"
                )
        if self.secret_key.get_secret_value() == self.admin_token.get_secret_value():
            raise InsecureSettings(
                "TOKENMALL_SECRET_KEY and TOKENMALL_ADMIN_TOKEN must differ: refusing to start "
                "in production"
            )
