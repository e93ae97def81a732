"""The ``tokenmall`` command line: the service and its worker, day closes, scenarios, the seed
demo, schema and tenants.

Every command goes through the same :class:`~tokenmall.service.ledger.Ledger` as the API, so
what the CLI prints is what the engine does.  A mistake by the user (a bad file, an invalid
event, an unknown tenant, a bad parameter or database URL) ends with one line on stderr and exit
status 2, never a traceback: operators script these commands and read their logs.  A
traceback means a bug.

One module per command group: ``scenario``, ``groupbuy``, ``nfg``, ``tenants`` (``tenant``),
``demo``, ``serve``, ``ops`` (``db``, ``day``, ``worker``); ``common`` holds what they share
(the ``--db`` option, the engine and schema check, the one-line error).  This module builds
the ``tokenmall`` app from them, in the order ``tokenmall --help`` lists them.
"""

from __future__ import annotations

import sys

import typer

from tokenmall.cli.demo import demo
from tokenmall.cli.groupbuy import groupbuy_app
from tokenmall.cli.nfg import nfg_app
from tokenmall.cli.ops import day_app, db_app, worker
from tokenmall.cli.scenario import scenario_app
from tokenmall.cli.serve import serve
from tokenmall.cli.tenants import tenant_app

__all__ = ["app", "main"]

app = typer.Typer(
    name="tokenmall",
    help="An exact, auditable engine for incentive commerce (appreciating points, dividends).",
    no_args_is_help=True,
    add_completion=False,
    # locals can hold database URLs with passwords; a bug's traceback must not print them
    pretty_exceptions_show_locals=False,
)
app.add_typer(scenario_app, name="scenario")
app.add_typer(db_app, name="db")
app.add_typer(tenant_app, name="tenant")
app.add_typer(day_app, name="day")
app.add_typer(groupbuy_app, name="groupbuy")
app.add_typer(nfg_app, name="nfg")
app.command()(demo)
app.command()(serve)
app.command()(worker)


def main() -> None:
    """Console-script entry point (``tokenmall``, ``python -m tokenmall``)."""
    try:
        app(prog_name="tokenmall")
    except KeyboardInterrupt:  # pragma: no cover - interactive only
        sys.exit(130)
