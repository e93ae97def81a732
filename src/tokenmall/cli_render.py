"""How the ``tokenmall`` command shows results: a scenario run's tables and a day close's
line or JSON.  Pure rendering, apart from the commands that decide what to run."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from tokenmall.domain.economy import BuyPoints, CloseDay, Exchange, Purchase, Redeem, Refund, Sell
from tokenmall.scenario import STEP_KEYS, Event, Scenario, ScenarioRun
from tokenmall.service.dayclose import CloseOutcome

__all__ = ["close_json", "close_line", "members_table", "steps_table"]

_TABLE_EDGE = 20  # steps shown at each end of a long run's table


def _describe(event: Event) -> tuple[str, str]:
    """(what, who) for a step's row in the table."""
    cmd = event.command
    if isinstance(cmd, Purchase):
        who = cmd.member if cmd.referrer is None else f"{cmd.member} (ref {cmd.referrer})"
        return f"purchase {cmd.amount}", who
    if isinstance(cmd, Sell | Exchange | Redeem):
        return f"{event.kind} {cmd.points} EP", cmd.member
    if isinstance(cmd, Refund):
        return f"refund {cmd.order}", ""
    if isinstance(cmd, BuyPoints):
        return f"buy_points {cmd.stable} SP", cmd.member
    return event.kind if not isinstance(cmd, CloseDay) or not cmd.day else f"close {cmd.day}", ""


def steps_table(scenario: Scenario, run: ScenarioRun) -> Table:
    n = len(run.steps)
    rows = list(range(n))
    if n > 2 * _TABLE_EDGE:
        rows = [*range(_TABLE_EDGE), -1, *range(n - _TABLE_EDGE, n)]
    table = Table(
        title="Steps",
        caption=f"{2 * _TABLE_EDGE} of {n} steps shown; --json prints all" if -1 in rows else None,
    )
    table.add_column("#", justify="right")
    table.add_column("event")
    table.add_column("member")
    for key in STEP_KEYS:
        table.add_column(key.replace("_", " "), justify="right")
    for i in rows:
        if i < 0:
            table.add_row("…", *[""] * (2 + len(STEP_KEYS)))
            continue
        what, who = _describe(scenario.events[i])
        table.add_row(str(i), what, who, *[str(run.steps[i][k]) for k in STEP_KEYS])
    return table


def members_table(run: ScenarioRun) -> Table:
    table = Table(title="Members")
    table.add_column("member")
    for title in ("points", "stable", "quota left", "spent", "dividends"):
        table.add_column(title, justify="right")
    table.add_column("exited")
    for code, m in run.members.items():
        table.add_row(
            code,
            m["points"],
            m["stable"],
            m["quota_remaining"],
            m["spent"],
            m["dividends"],
            "yes" if m["exited"] else "",
        )
    return table


def close_line(outcome: CloseOutcome) -> str:
    if outcome.replayed:
        return (
            f"{outcome.day} was already closed for tenant {outcome.tenant} (ledger seq "
            f"{outcome.seq}): nothing paid now; it paid {outcome.paid} to "
            f"{outcome.recipients} members"
        )
    return (
        f"closed {outcome.day} for tenant {outcome.tenant} (ledger seq {outcome.seq}): paid "
        f"{outcome.paid} SP to {outcome.recipients} members, {outcome.exits} exits, carry "
        f"{outcome.result.get('dividend_fund', '0')}"
    )


def close_json(outcome: CloseOutcome) -> dict[str, Any]:
    return {
        "tenant": outcome.tenant,
        "date": outcome.day.isoformat(),
        "status": "replayed" if outcome.replayed else "applied",
        "seq": outcome.seq,
        "paid": outcome.paid,
        "recipients": outcome.recipients,
        "exits": outcome.exits,
        "carry": outcome.result.get("dividend_fund", "0"),
    }
