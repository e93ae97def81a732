"""``tokenmall demo``: the seed's worked example (docs/RULES.md section 2) through the real
ledger, printed as a table."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tokenmall.cli.common import fail, safe_url, stdout_console, user_errors
from tokenmall.domain.economy import Purchase
from tokenmall.scenario import Scenario, open_store, parse_scenario, run_on
from tokenmall.service.codec import dec

__all__ = ["demo"]

DEMO_DB = "tokenmall-demo.db"
DEMO_TENANT = "demo"
DEMO_PURCHASES = 100


def _demo_scenario() -> Scenario:
    """docs/RULES.md section 2: A, B, C, D buy 100 CNY each, then 96 more buyers, no referrers."""
    buyers = ["A", "B", "C", "D"] + [f"M{i:03d}" for i in range(5, DEMO_PURCHASES + 1)]
    events: list[dict[str, Any]] = [
        {"type": "purchase", "member": b, "amount": "100"} for b in buyers
    ]
    # referral_ratio plays no part (nobody has a referrer); default parameters otherwise
    return parse_scenario({"events": events})


def _pct(rate: Decimal) -> str:
    return f"{dec(rate * 100)}%"


def _fresh_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def demo(
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            metavar="URL",
            help=f"Database to run on (default: ./{DEMO_DB}, recreated each run). On another "
            f"database the tenant {DEMO_TENANT!r} is reused and its events replayed.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the seed's worked example through the real ledger and print its table."""
    url = db or f"sqlite:///{Path.cwd() / DEMO_DB}"
    scenario = _demo_scenario()
    with user_errors(url):
        if db is None:
            try:
                _fresh_sqlite(Path.cwd() / DEMO_DB)
            except OSError as exc:
                fail(f"cannot recreate ./{DEMO_DB}: {exc.strerror or exc}")
        with open_store(url) as engine:
            run = run_on(engine, scenario, tenant=DEMO_TENANT)
    params = scenario.params
    console = stdout_console()
    console.print(
        f"The seed's worked example through the ledger on {safe_url(url)}: each purchase of "
        f"100 CNY puts {_pct(params.pool_rate)} of it into the pool and gives the buyer EP "
        f"worth {_pct(params.gift_ratio)} of that at the price before the purchase "
        f"(initial price {dec(params.initial_price)} CNY).",
        soft_wrap=True,
    )
    table = Table(title="docs/RULES.md section 2")
    for title in ("purchase", "EP to buyer", "pool", "circulating", "price after"):
        table.add_column(title, justify="left" if title == "purchase" else "right")
    for event, step in list(zip(scenario.events, run.steps, strict=True))[:4]:
        assert isinstance(event.command, Purchase)
        table.add_row(
            event.command.member,
            step["figures"]["points"],
            step["pool"],
            step["circulating"],
            step["price"],
        )
    console.print(table)
    last = run.steps[-1]
    console.print(
        f"After purchase {len(run.steps)} (A-D, then {len(run.steps) - 4} more buyers of 100 "
        f"CNY): pool {last['pool']}, circulating {last['circulating']}, "
        f"price {last['price']}.",
        soft_wrap=True,
    )
    console.print(
        "Mechanism: price = pool / circulating EP. A purchase adds CNY to the pool and issues "
        "EP worth less than that at the current price, and a sale pays out less than the price "
        f"(the {_pct(params.sell_fee)} fee stays in the pool), so with these parameters the "
        "price goes up - by how much depends entirely on new money coming in. It is an "
        "accounting ratio backed by the pool, not a promised return.",
        soft_wrap=True,
    )
    if run.replayed:
        console.print(f"({run.replayed} events were already in the store and were replayed.)")
