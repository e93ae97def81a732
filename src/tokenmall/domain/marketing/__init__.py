"""Marketing models (the rules, docs/RULES.md section 5) as typed plug-ins over small events.

Pure domain: no I/O.  :class:`ModelSet` validates a tenant's configuration (with the compliance
guard) and runs the enabled models for an event; each model lives in its own module.
"""

from tokenmall.domain.marketing.base import (
    Context,
    DayClosed,
    Event,
    MarketingModel,
    MemberJoined,
    OrderRefunded,
    OrderSettled,
    Reward,
    TaskDone,
    reward_key,
)
from tokenmall.domain.marketing.guard import ComplianceRefused
from tokenmall.domain.marketing.runner import MODELS, ORDER, ModelSet

__all__ = [
    "MODELS",
    "ORDER",
    "ComplianceRefused",
    "Context",
    "DayClosed",
    "Event",
    "MarketingModel",
    "MemberJoined",
    "ModelSet",
    "OrderRefunded",
    "OrderSettled",
    "Reward",
    "TaskDone",
    "reward_key",
]
