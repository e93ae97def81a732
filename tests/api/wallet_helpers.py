"""Helpers of the wallet tests that other test modules use too (the route-table isolation
test needs a real withdrawal id)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from api_helpers import Mall
from fastapi.testclient import TestClient

from tokenmall.domain.economy import Purchase, Sell
from tokenmall.service import wallet


def wallet_path_values(client: TestClient, mall: Mall) -> dict[str, str]:
    """A requested withdrawal of alice's: she buys for 100 and sells her 21 EP (27.00 SP)."""
    app: Any = client.app
    ctx = app.state.tokenmall
    tid = ctx.tenant_id(mall.code)
    out = ctx.ledger.submit(
        tid,
        [
            ("wpv:buy", Purchase("wpv-order", "alice", Decimal(100))),
            ("wpv:sell", Sell("alice", Decimal(21))),
        ],
    )
    assert all(o.status != "rejected" for o in out), out
    wd, _ = wallet.request_withdrawal(
        ctx.ledger, tid, "alice", amount=Decimal("5.00"), account="oid-alice", key="wpv"
    )
    return {"withdrawal_id": wd.id}
