"""The read models of webhooks: an endpoint, a delivery, and the event types one may ask for."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["DELIVERY_STATES", "EVENT_TYPES", "Delivery", "Endpoint", "delivery_of", "endpoint_of"]

# every type an endpoint may subscribe to; a feature that adds an event adds its name here
EVENT_TYPES = (
    "order.paid",
    "order.settled",
    "order.refunded",
    "withdrawal.paid",
    "withdrawal.failed",
    "day.closed",
    "member.exited",
)
DELIVERY_STATES = ("pending", "delivered", "failed")


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: int
    url: str
    events: tuple[str, ...]
    description: str | None
    created_at: float
    created_by: str
    disabled_at: float | None


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    endpoint_id: int
    event_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: float
    last_status: int | None
    last_error: str | None
    created_at: float
    delivered_at: float | None
    payload: str  # the JSON body, exactly as signed

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.payload)
        return parsed


def endpoint_of(row: Any) -> Endpoint:
    return Endpoint(
        id=row.id,
        url=row.url,
        events=tuple(row.events.split(",")),
        description=row.description,
        created_at=row.created_at,
        created_by=row.created_by,
        disabled_at=row.disabled_at,
    )


def delivery_of(row: Any) -> Delivery:
    return Delivery(
        id=row.id,
        endpoint_id=row.endpoint_id,
        event_id=row.event_id,
        event_type=row.event_type,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_status=row.last_status,
        last_error=row.last_error,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
        payload=row.payload,
    )
