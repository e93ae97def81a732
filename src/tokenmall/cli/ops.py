"""Operations: ``tokenmall db`` (the schema), ``tokenmall day`` (day closes by hand) and
``tokenmall worker`` (the scheduler without the HTTP server)."""

from __future__ import annotations

import datetime as dt
import json
import logging.config
import signal
import time
from typing import Annotated

import typer
from sqlalchemy import inspect

from tokenmall import bootstrap
from tokenmall.cli.common import (
    DbOption,
    TenantOption,
    db_url,
    fail,
    open_engine,
    require_schema,
    safe_url,
    user_errors,
)
from tokenmall.cli_render import close_json, close_line
from tokenmall.logs import log_config
from tokenmall.service import dayclose
from tokenmall.service.ledger import Ledger
from tokenmall.settings import Settings
from tokenmall.store import schema
from tokenmall.store.db import migrate
from tokenmall.worker import DEFAULT_INTERVAL

__all__ = ["day_app", "db_app", "worker"]

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
day_app = typer.Typer(
    help="Day close (R9): per tenant, at local midnight, idempotent per date.",
    no_args_is_help=True,
)


# ----------------------------------------------------------------------------- db


@db_app.command("upgrade")
def db_upgrade(db: DbOption = None) -> None:
    """Create or upgrade the schema to the newest revision (idempotent)."""
    url = db_url(db)
    with user_errors(url), open_engine(url) as engine:
        migrate(engine)
    typer.echo(f"schema at {safe_url(url)} is up to date")


# ----------------------------------------------------------------------------- day, worker


@day_app.command("close")
def day_close(
    tenant: TenantOption,
    date: Annotated[
        str | None,
        typer.Option(
            "--date",
            "-d",
            metavar="YYYY-MM-DD",
            help="The tenant-local date to close (today closes it early). Default: every past "
            "date since the tenant was created that is not closed yet, oldest first.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    db: DbOption = None,
) -> None:
    """Close a day: pay the dividend fund out, then run exits.  Closing twice pays once."""
    url = db_url(db)
    with user_errors(url), open_engine(url) as engine:
        require_schema(engine, url)
        ledger = Ledger(engine)
        tid = ledger.tenant_id(tenant)
        with engine.connect() as conn:
            clock = dayclose.tenant_clock(conn, tid)
        now = time.time()
        if date is not None:
            outcomes = [dayclose.close_day(ledger, clock, dayclose.parse_date(date), now=now)]
        else:
            outcomes = dayclose.catch_up(ledger, clock, now)
    if as_json:
        typer.echo(json.dumps([close_json(o) for o in outcomes], indent=2))
        return
    if not outcomes:
        typer.echo(f"nothing to close for tenant {tenant}: every past date is closed")
    for outcome in outcomes:
        typer.echo(close_line(outcome))


@day_app.command("status")
def day_status(
    tenant: TenantOption,
    db: DbOption = None,
) -> None:
    """The tenant's local date, the last date closed and the dates still to close."""
    url = db_url(db)
    with user_errors(url), open_engine(url) as engine:
        require_schema(engine, url)
        tid = Ledger(engine).tenant_id(tenant)
        now = time.time()
        with engine.connect() as conn:
            clock = dayclose.tenant_clock(conn, tid)
            closed = dayclose.closed_dates(conn, tid)
            due = dayclose.due_dates(conn, clock, now)
    last = max(closed).isoformat() if closed else "none"
    midnight = dt.datetime.fromtimestamp(dayclose.next_midnight(clock, now), clock.zone)
    typer.echo(
        f"tenant {tenant}: time zone {clock.zone.key}, today {clock.today(now)}, "
        f"last closed {last}, next close at {midnight.isoformat()}"
    )
    typer.echo(f"to close: {', '.join(d.isoformat() for d in due)}" if due else "to close: nothing")


def worker(
    db: DbOption = None,
    interval: Annotated[
        float | None,
        typer.Option(
            "--interval",
            min=0.1,
            help="Seconds between rounds when no tenant's midnight comes sooner "
            f"(default: $TOKENMALL_SCHEDULER_INTERVAL, else {DEFAULT_INTERVAL:g}).",
            show_default=False,
        ),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="One round, then exit.")] = False,
    log_json: Annotated[
        bool | None,
        typer.Option(
            "--log-json/--log-text",
            help="Logs as one JSON object per line (default: $TOKENMALL_LOG_JSON, else text).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the scheduler without the HTTP server: day closes at each tenant's local midnight
    (and, on start, every missed one), WeChat Pay reconciliation (lost notifications, orders to
    close, rotated certificates), order expiry and settlement, payout and refund resends.

    Of every `tokenmall worker` and `tokenmall serve` process on one database, one runs the
    jobs (it holds the scheduler's lease in the database); the others stand by and take over
    when its lease expires."""
    settings = Settings() if db is None else Settings(db_url=db)
    url = settings.db_url
    logging.config.dictConfig(
        log_config(
            json_lines=settings.log_json if log_json is None else log_json,
            level=settings.log_level,
        )
    )
    with user_errors(url), open_engine(url) as engine:
        require_schema(engine, url)
        if not inspect(engine).has_table(schema.scheduler_lease.name):
            fail(f"the schema at {safe_url(url)} is out of date: run `tokenmall db upgrade`")
        # the server's services (payouts through the same sandbox secrets, payout
        # notifications recorded in provider_events, the same event handlers)
        jobs = bootstrap.scheduler(bootstrap.build(settings, engine), interval=interval)
        typer.echo(f"tokenmall worker: database {safe_url(url)}", err=True)
        try:
            if once:
                report = jobs.tick()
                jobs.release()
                if report.standby:
                    typer.echo(
                        "another process runs the scheduler on this database (it holds the "
                        "lease): nothing done",
                        err=True,
                    )
                for outcome in report.closes:
                    typer.echo(close_line(outcome))
                for error in report.errors:
                    typer.echo(f"tokenmall: error: {error}", err=True)
                if report.errors:
                    raise typer.Exit(1)
            else:
                # SIGTERM (systemd, docker stop) ends the round in course, then the lease is
                # given up, so a standby process takes over at once instead of after its expiry
                signal.signal(signal.SIGTERM, lambda *_: jobs.halt())
                jobs.run()
                jobs.release()
        except KeyboardInterrupt:  # pragma: no cover - interactive stop
            jobs.stop()
