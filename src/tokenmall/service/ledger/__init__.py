"""The ledger: applies batches of commands to a tenant, durably and in one total order.

``core`` (the :class:`Ledger`: tenants, the lock, a batch), ``writes`` (the event log and the
rows a batch changes), ``close`` (the day close's bulk path), ``bulk`` (bulk writes per
backend), ``common`` (constants, row mapping, the member source).
"""

from tokenmall.service.ledger.common import GENESIS, Outcome
from tokenmall.service.ledger.core import Ledger

__all__ = ["GENESIS", "Ledger", "Outcome"]
