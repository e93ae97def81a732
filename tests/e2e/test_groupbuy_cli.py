"""``tokenmall groupbuy draw``: an operator draws a lottery campaign from the command line and
gets the public record, which ``tokenmall groupbuy verify`` recomputes."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

from tokenmall import bootstrap
from tokenmall.cli import app
from tokenmall.domain.params import TenantParams
from tokenmall.service import catalog, members
from tokenmall.settings import Settings
from tokenmall.store.db import create_db_engine, migrate

D = Decimal


def test_a_campaign_drawn_from_the_command_line_verifies(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mall.db'}"
    engine = create_db_engine(url)
    migrate(engine)
    services = bootstrap.build(Settings(db_url=url), engine)
    tid = services.store.ledger.create_tenant("t1", TenantParams(settle_days=D(0)))
    with engine.begin() as conn:
        merchant = catalog.create_merchant(conn, tid, code="m", name="M")
        product = catalog.create_product(conn, tid, merchant_id=merchant.id, name="Tea")
        sku = catalog.create_sku(conn, tid, product_id=product.id, name="1", price=D(100), stock=9)
        for code in ("ann", "ben", "cat", "dan"):
            members.create_member(conn, tid, code)
    gbs, orders = services.groupbuys, services.orders
    orders.clock = time.time
    gbs.create_campaign(tid, code="c1", winners=1, actor="op")
    gbs.create_offer(
        tid,
        actor="op",
        code="lot",
        sku_id=sku.id,
        mode="lottery",
        price=D(70),
        size=2,
        campaign="c1",
        compensation=D(5),
    )
    for leader, other in (("ann", "ben"), ("cat", "dan")):
        g = gbs.open_group(tid, offer="lot", member=leader)
        g = gbs.join(tid, g.public_id, member=other)
        for place in g.places:
            pay = orders.start_payment(tid, "t1", place.order)
            assert pay.intent_id is not None
            orders.complete_sandbox(tid, "t1", pay.intent_id)
    engine.dispose()
    done = CliRunner().invoke(app, ["groupbuy", "draw", "-t", "t1", "-c", "c1", "--db", url])
    assert done.exit_code == 0, done.output
    record = json.loads(done.output)
    assert len(record["candidates"]) == 2
    assert len(record["winners"]) == 1
    file = tmp_path / "draw.json"
    file.write_text(done.output, encoding="utf-8")
    checked = CliRunner().invoke(app, ["groupbuy", "verify", str(file)])
    assert checked.exit_code == 0, checked.output
    assert checked.output.split() == record["winners"]
    # a campaign that does not exist: one line, exit 2, nothing drawn
    missing = CliRunner().invoke(app, ["groupbuy", "draw", "-t", "t1", "-c", "nope", "--db", url])
    assert missing.exit_code == 2
    assert "nope" in missing.output
