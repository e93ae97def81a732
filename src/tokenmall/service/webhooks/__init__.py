"""Webhooks for integrators: a tenant's endpoints, an outbox written with each fact, and the
scheduler's signed, retried deliveries (docs/WEBHOOKS.md).

* :mod:`.endpoints` register (the secret shown once), list, disable;
* :mod:`.outbox` the event handler that writes delivery rows in the fact's transaction;
* :mod:`.delivery` the scheduler's job, the retry schedule, listing and replaying;
* :mod:`.signing` the signature, and :func:`verify_signature` for receivers (stdlib only).
"""

from __future__ import annotations

from tokenmall.service.webhooks.delivery import (
    RetryPolicy,
    WebhookSender,
    get_delivery,
    list_deliveries,
    replay_delivery,
)
from tokenmall.service.webhooks.endpoints import (
    create_endpoint,
    disable_endpoint,
    get_endpoint,
    list_endpoints,
)
from tokenmall.service.webhooks.models import DELIVERY_STATES, EVENT_TYPES, Delivery, Endpoint
from tokenmall.service.webhooks.outbox import event_id, facts_of, record_event
from tokenmall.service.webhooks.signing import SignatureError, signature_header, verify_signature

__all__ = [
    "DELIVERY_STATES",
    "EVENT_TYPES",
    "Delivery",
    "Endpoint",
    "RetryPolicy",
    "SignatureError",
    "WebhookSender",
    "create_endpoint",
    "disable_endpoint",
    "event_id",
    "facts_of",
    "get_delivery",
    "get_endpoint",
    "list_deliveries",
    "list_endpoints",
    "record_event",
    "replay_delivery",
    "signature_header",
    "verify_signature",
]
