"""API keys of a tenant."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from tokenmall.api.schemas.common import DbId, InputModel, Name, utc
from tokenmall.service.credentials import ApiKeyRecord

__all__ = ["ApiKeyCreate", "ApiKeyCreated", "ApiKeyOut"]


class ApiKeyCreate(InputModel):
    scope: Literal["operator", "merchant"]
    name: Name
    merchant_id: DbId | None = Field(default=None, description="Required for a merchant key.")


class ApiKeyOut(BaseModel):
    id: str = Field(description="The public part of the key (tmk_<id>_...).")
    scope: Literal["operator", "merchant"]
    merchant_id: int | None
    name: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None

    @classmethod
    def of(cls, k: ApiKeyRecord) -> ApiKeyOut:
        return cls(
            id=k.key_id,
            scope=k.scope,
            merchant_id=k.merchant_id,
            name=k.name,
            created_at=utc(k.created_at),
            created_by=k.created_by,
            revoked_at=None if k.revoked_at is None else utc(k.revoked_at),
        )


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The whole key. Shown this once; only its hash is stored.")
