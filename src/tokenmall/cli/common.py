"""What every command group shares: the ``--db`` and ``--tenant`` options, the database engine
and its schema check, and the one-line error with its exit status (see the package docstring).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from sqlalchemy import Engine, inspect, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from tokenmall.errors import InvariantViolation, TokenmallError
from tokenmall.settings import Settings
from tokenmall.store import schema
from tokenmall.store.db import create_db_engine

__all__ = [
    "USER_ERROR",
    "DbOption",
    "TenantOption",
    "db_url",
    "fail",
    "open_engine",
    "require_schema",
    "safe_url",
    "stdout_console",
    "user_errors",
]

USER_ERROR = 2

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="URL",
        help="SQLAlchemy URL, e.g. sqlite:///tokenmall.db or postgresql://user@host/db "
        "(default: $TOKENMALL_DB_URL, else sqlite:///tokenmall.db).",
        show_default=False,
    ),
]

TenantOption = Annotated[
    str, typer.Option("--tenant", "-t", help="Tenant code.", show_default=False)
]


# ----------------------------------------------------------------------------- errors


def stdout_console() -> Console:
    """stdout console; when it is not a terminal (a pipe, a log, a test), wide enough that
    tables keep their numbers whole instead of folding them at 80 columns."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


def fail(message: str, code: int = USER_ERROR) -> NoReturn:
    typer.echo(f"tokenmall: error: {' '.join(message.split())}", err=True)
    raise typer.Exit(code)


def safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"


@contextmanager
def user_errors(db_url: str | None = None) -> Iterator[None]:
    """Turn the errors a user can cause into one line and an exit status."""
    try:
        yield
    except InvariantViolation as exc:  # the engine refused to commit a broken state: a bug
        fail(f"internal error, nothing was committed: {exc}", 1)
    except TokenmallError as exc:
        fail(str(exc))
    except OverflowError:  # sums past the store's 64-bit atoms (SQLite raises it unwrapped)
        fail("a balance would exceed what the store can hold; nothing of this batch was kept")
    except ArgumentError as exc:
        fail(f"bad database URL: {exc}")
    except OperationalError as exc:
        where = f" at {safe_url(db_url)}" if db_url else ""
        first = str(exc.orig or exc).strip().splitlines()[0] if str(exc.orig or exc) else ""
        fail(f"database unavailable{where}: {first}", 1)
    except DBAPIError as exc:
        first = str(exc.orig or exc).strip().splitlines()[0] if str(exc.orig or exc) else ""
        fail(f"database error: {first}", 1)


# ----------------------------------------------------------------------------- database


def db_url(db: str | None) -> str:
    return db or Settings().db_url


@contextmanager
def open_engine(url: str) -> Iterator[Engine]:
    engine = create_db_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def _missing_sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names when it does not exist (None for other URLs, memory)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None  # reported as a bad URL where the engine is made
    database = parsed.database
    if not parsed.drivername.startswith("sqlite") or database in (None, "", ":memory:"):
        return None
    if database.startswith("file:") or parsed.query.get("mode") == "memory":
        return None  # a URI filename: SQLite's own options decide
    path = Path(database)
    return None if path.exists() else path


def require_schema(engine: Engine, url: str) -> None:
    # Connecting to a SQLite file that does not exist creates it, empty: a mistyped --db of
    # a command that only reads would leave a stray file behind and report "no schema".
    missing = _missing_sqlite_file(url)
    if missing is not None:
        fail(
            f"no database file {missing}: check --db, or create it with "
            "`tokenmall db upgrade --db URL`"
        )
    if not inspect(engine).has_table(schema.tenants.name):
        fail(f"no tokenmall schema at {safe_url(url)}: run `tokenmall db upgrade` first")
