"""``tokenmall scenario``: run a scenario file through the ledger and print what it did."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tokenmall.cli.common import stdout_console, user_errors
from tokenmall.cli_render import members_table, steps_table
from tokenmall.scenario import CHUNK_SIZE, DEFAULT_TENANT, load_scenario, open_store, run_on

__all__ = ["scenario_app"]

_PROGRESS_FROM = 1000  # events; shorter runs finish before a bar is worth drawing

scenario_app = typer.Typer(
    help="Run scenario files (docs/RULES.md section 7).", no_args_is_help=True
)


@scenario_app.command("run")
def scenario_run(
    file: Annotated[Path, typer.Argument(help="Scenario file, JSON or YAML.", show_default=False)],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print only the JSON result (docs/RULES.md section 7).")
    ] = False,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            metavar="URL",
            help="Run on this database and keep the result (default: a temporary SQLite file). "
            "Re-running on the same URL resumes: events already committed are replayed.",
            show_default=False,
        ),
    ] = None,
    tenant: Annotated[
        str, typer.Option("--tenant", help="Tenant code to run on (created if missing).")
    ] = DEFAULT_TENANT,
    chunk_size: Annotated[
        int, typer.Option("--chunk-size", min=1, help="Events per database transaction.")
    ] = CHUNK_SIZE,
) -> None:
    """Run every event of FILE through the ledger and print the steps and the members."""
    with user_errors(db):
        scenario = load_scenario(file)
        total = len(scenario.events)
        with open_store(db) as engine:
            if as_json or total < _PROGRESS_FROM:
                run = run_on(engine, scenario, tenant=tenant, chunk_size=chunk_size)
            else:
                with Progress(
                    TextColumn("events"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    console=Console(stderr=True),
                    transient=True,
                ) as progress:
                    bar = progress.add_task("events", total=total)
                    run = run_on(
                        engine,
                        scenario,
                        tenant=tenant,
                        chunk_size=chunk_size,
                        on_progress=lambda done, _total: progress.update(bar, completed=done),
                    )
    if as_json:
        typer.echo(json.dumps(run.output(), indent=2, ensure_ascii=False))
        return
    console = stdout_console()
    console.print(steps_table(scenario, run))
    console.print(members_table(run))
    resumed = f", {run.replayed} replayed (already in the store)" if run.replayed else ""
    console.print(f"{total} events: {run.applied} applied{resumed}.")
