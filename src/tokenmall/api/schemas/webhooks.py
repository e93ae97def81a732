"""Webhook endpoints and deliveries (docs/WEBHOOKS.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from tokenmall.api.schemas.common import InputModel, Name, utc, utc_or_none
from tokenmall.service.webhooks import Delivery, Endpoint

__all__ = [
    "EventType",
    "WebhookCreate",
    "WebhookCreated",
    "WebhookDeliveryOut",
    "WebhookOut",
]

EventType = Literal[
    "order.paid",
    "order.settled",
    "order.refunded",
    "withdrawal.paid",
    "withdrawal.failed",
    "day.closed",
]
DeliveryStatus = Literal["pending", "delivered", "failed"]


class WebhookCreate(InputModel):
    url: Annotated[str, StringConstraints(min_length=8, max_length=500)] = Field(
        description="https:// (http:// only to 127.0.0.1 or localhost, for development).",
        examples=["https://shop.example.com/hooks/tokenmall"],
    )
    events: list[EventType] = Field(min_length=1, max_length=20)
    description: Name | None = None


class WebhookOut(BaseModel):
    id: int
    url: str
    events: list[str]
    description: str | None
    created_at: datetime
    created_by: str
    disabled_at: datetime | None

    @classmethod
    def of(cls, e: Endpoint) -> WebhookOut:
        return cls(
            id=e.id,
            url=e.url,
            events=list(e.events),
            description=e.description,
            created_at=utc(e.created_at),
            created_by=e.created_by,
            disabled_at=utc_or_none(e.disabled_at),
        )


class WebhookCreated(WebhookOut):
    secret: str = Field(
        description="The signing secret (whsec_...). Shown this once: store it to verify "
        "the Tokenmall-Signature header of every delivery."
    )


class WebhookDeliveryOut(BaseModel):
    id: int
    endpoint_id: int
    event_id: str = Field(description="The event's id: de-duplicate on it.")
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None = Field(description="When it is tried next (pending).")
    last_status: int | None = Field(description="The receiver's HTTP status at the last try.")
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    event: dict[str, Any] = Field(description="The body sent, as JSON.")

    @classmethod
    def of(cls, d: Delivery) -> WebhookDeliveryOut:
        return cls(
            id=d.id,
            endpoint_id=d.endpoint_id,
            event_id=d.event_id,
            event_type=d.event_type,
            status=d.status,  # type: ignore[arg-type]  # the table's CHECK constraint
            attempts=d.attempts,
            next_attempt_at=utc(d.next_attempt_at) if d.status == "pending" else None,
            last_status=d.last_status,
            last_error=d.last_error,
            created_at=utc(d.created_at),
            delivered_at=utc_or_none(d.delivered_at),
            event=d.event,
        )
