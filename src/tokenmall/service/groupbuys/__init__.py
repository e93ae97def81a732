"""Group buys (拼团) in the running service: offers, groups and places, verifiable draws.

One role per module:

=============  ======================================================================
``service``    the facade (:class:`GroupBuys`): what routes, jobs and tests call
``models``     read models, errors and limits
``rows``       rows <-> the pure rules' objects (:mod:`tokenmall.domain.groupbuy`)
``offers``     what an operator defines: offers on a SKU, lottery campaigns
``places``     open a group, join, cancel (a place is an order held in escrow)
``reactions``  the order flow's events: paid, refunded, closed, settled
``moves``      carrying out what the rules decided (confirm, refund, SP, funds)
``draws``      lottery campaigns' draws and the public draw records
``funds``      activity winners' locked shopping funds and tasks
``jobs``       the scheduler's: expired groups fail, due campaigns draw
=============  ======================================================================
"""

from tokenmall.service.groupbuys.models import (
    Campaign,
    GroupFull,
    GroupStateError,
    GroupView,
    Offer,
    PlaceView,
)
from tokenmall.service.groupbuys.service import GroupBuys

__all__ = [
    "Campaign",
    "GroupBuys",
    "GroupFull",
    "GroupStateError",
    "GroupView",
    "Offer",
    "PlaceView",
]
