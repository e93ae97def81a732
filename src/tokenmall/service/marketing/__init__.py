"""Marketing models in the service: per-tenant configuration (audited, with the compliance
guard), the handlers that run the models on the order flow's events, their persisted state,
and the rewards they paid.  The rules are the domain's (:mod:`tokenmall.domain.marketing`).

``config``     which models a tenant has on, with which parameters; the audit trail
``state``      the models' state in ``marketing_state``, loaded as far as an event needs
``handlers``   the event handlers registered in :func:`tokenmall.bootstrap.event_handlers`
``rewards``    paying rewards through the ledger; reading them back; frozen SP
"""

from tokenmall.service.marketing.config import (
    ModelChange,
    ModelConfig,
    active_models,
    get_config,
    list_changes,
    set_models,
)
from tokenmall.service.marketing.handlers import (
    on_day_closed,
    on_member_joined,
    on_refunded,
    on_settled,
    on_task_done,
)
from tokenmall.service.marketing.rewards import (
    ModelTotal,
    Move,
    RewardEntry,
    frozen_sp,
    list_moves,
    list_rewards,
    member_totals,
    tenant_totals,
)

__all__ = [
    "ModelChange",
    "ModelConfig",
    "ModelTotal",
    "Move",
    "RewardEntry",
    "active_models",
    "frozen_sp",
    "get_config",
    "list_changes",
    "list_moves",
    "list_rewards",
    "member_totals",
    "on_day_closed",
    "on_member_joined",
    "on_refunded",
    "on_settled",
    "on_task_done",
    "set_models",
    "tenant_totals",
]
