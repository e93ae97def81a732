"""The platform's own answers (not a tenant's)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

__all__ = ["Health"]


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str
    # the server process that answered: which worker, under `tokenmall serve --workers N`
    pid: int
