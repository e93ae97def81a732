"""The ``tokenmall`` command line: the service and its worker, day closes, scenarios, the seed
demo, schema and tenants.

Every command goes through the same :class:`~tokenmall.service.ledger.Ledger` as the API, so
what the CLI prints is what the engine does.  A mistake by the user (a bad file, an invalid
event, an unknown tenant, a bad parameter or database URL) ends with one line on stderr and exit
status 2, never a traceback: operators script these commands and read their logs.  A
traceback means a bug.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import logging.config
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine, inspect, make_url, select
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from tokenmall import bootstrap
from tokenmall.cli_render import close_json, close_line, members_table, steps_table
from tokenmall.domain import draw
from tokenmall.domain.economy import Purchase
from tokenmall.domain.params import TenantParams
from tokenmall.errors import InvariantViolation, TokenmallError
from tokenmall.logs import log_config
from tokenmall.scenario import (
    CHUNK_SIZE,
    DEFAULT_TENANT,
    Scenario,
    check_tenant_code,
    load_scenario,
    open_store,
    parse_scenario,
    run_on,
)
from tokenmall.service import dayclose, marketing
from tokenmall.service.codec import dec
from tokenmall.service.ledger import Ledger
from tokenmall.service.nfg import log as nfg_log
from tokenmall.service.uow import Store
from tokenmall.settings import DEFAULT_ADMIN_TOKEN, DEFAULT_DB_URL, InsecureSettings, Settings
from tokenmall.store import schema
from tokenmall.store.db import create_db_engine, migrate
from tokenmall.worker import DEFAULT_INTERVAL

__all__ = ["app", "main"]

USER_ERROR = 2
DEMO_DB = "tokenmall-demo.db"
DEMO_TENANT = "demo"
DEMO_PURCHASES = 100
_PROGRESS_FROM = 1000  # events; shorter runs finish before a bar is worth drawing

app = typer.Typer(
    name="tokenmall",
    help="An exact, auditable engine for incentive commerce (appreciating points, dividends).",
    no_args_is_help=True,
    add_completion=False,
    # locals can hold database URLs with passwords; a bug's traceback must not print them
    pretty_exceptions_show_locals=False,
)
scenario_app = typer.Typer(
    help="Run scenario files (docs/RULES.md section 7).", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
tenant_app = typer.Typer(help="Tenants (one mall each) and their parameters.", no_args_is_help=True)
app.add_typer(scenario_app, name="scenario")
app.add_typer(db_app, name="db")
app.add_typer(tenant_app, name="tenant")
day_app = typer.Typer(
    help="Day close (R9): per tenant, at local midnight, idempotent per date.",
    no_args_is_help=True,
)
app.add_typer(day_app, name="day")
groupbuy_app = typer.Typer(
    help="Group buys (docs/RULES.md section 4): check a published draw.", no_args_is_help=True
)
app.add_typer(groupbuy_app, name="groupbuy")
nfg_app = typer.Typer(
    help="NFG: anchor token events, fetch and check inclusion proofs, mirror onto the EVM.",
    no_args_is_help=True,
)
app.add_typer(nfg_app, name="nfg")

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


# ----------------------------------------------------------------------------- errors


def _console() -> Console:
    """stdout console; when it is not a terminal (a pipe, a log, a test), wide enough that
    tables keep their numbers whole instead of folding them at 80 columns."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


def _fail(message: str, code: int = USER_ERROR) -> NoReturn:
    typer.echo(f"tokenmall: error: {' '.join(message.split())}", err=True)
    raise typer.Exit(code)


def _safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"


@contextmanager
def _user_errors(db_url: str | None = None) -> Iterator[None]:
    """Turn the errors a user can cause into one line and an exit status."""
    try:
        yield
    except InvariantViolation as exc:  # the engine refused to commit a broken state: a bug
        _fail(f"internal error, nothing was committed: {exc}", 1)
    except TokenmallError as exc:
        _fail(str(exc))
    except OverflowError:  # sums past the store's 64-bit atoms (SQLite raises it unwrapped)
        _fail("a balance would exceed what the store can hold; nothing of this batch was kept")
    except ArgumentError as exc:
        _fail(f"bad database URL: {exc}")
    except OperationalError as exc:
        where = f" at {_safe_url(db_url)}" if db_url else ""
        first = str(exc.orig or exc).strip().splitlines()[0] if str(exc.orig or exc) else ""
        _fail(f"database unavailable{where}: {first}", 1)
    except DBAPIError as exc:
        first = str(exc.orig or exc).strip().splitlines()[0] if str(exc.orig or exc) else ""
        _fail(f"database error: {first}", 1)


def _db_url(db: str | None) -> str:
    return db or Settings().db_url


@contextmanager
def _engine(url: str) -> Iterator[Engine]:
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


def _require_schema(engine: Engine, url: str) -> None:
    # Connecting to a SQLite file that does not exist creates it, empty: a mistyped --db of
    # a command that only reads would leave a stray file behind and report "no schema".
    missing = _missing_sqlite_file(url)
    if missing is not None:
        _fail(
            f"no database file {missing}: check --db, or create it with "
            "`tokenmall db upgrade --db URL`"
        )
    if not inspect(engine).has_table(schema.tenants.name):
        _fail(f"no tokenmall schema at {_safe_url(url)}: run `tokenmall db upgrade` first")


# ----------------------------------------------------------------------------- scenario run


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
    with _user_errors(db):
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
    console = _console()
    console.print(steps_table(scenario, run))
    console.print(members_table(run))
    resumed = f", {run.replayed} replayed (already in the store)" if run.replayed else ""
    console.print(f"{total} events: {run.applied} applied{resumed}.")


# ----------------------------------------------------------------------------- group buys


def _draw_record(file: Path) -> dict[str, Any]:
    """The public record in FILE; a scenario's group or draw entry (``members``, no ``k``)
    is read as candidates and k = the number of winners."""
    try:
        record = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror or exc}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        _fail(f"{file}: not valid JSON: {exc}")
    if not isinstance(record, dict):
        _fail(f"{file}: a draw record is an object with commitment, seed, candidates, k, winners")
    if "candidates" not in record and isinstance(record.get("members"), list):
        record = {**record, "candidates": record["members"]}
        if isinstance(record.get("winners"), list):
            record.setdefault("k", len(record["winners"]))
    if record.get("seed") is None:
        _fail(f"{file}: the draw has not revealed its seed yet")
    return record


@groupbuy_app.command("verify")
def groupbuy_verify(
    file: Annotated[
        Path,
        typer.Argument(
            help="The draw's public record: JSON with commitment, seed, candidates, k, winners.",
            show_default=False,
        ),
    ],
) -> None:
    """Recompute a draw from its public record alone: the seed must hash to the commitment
    and the k smallest tickets sha256(seed:candidate) must be the published winners.  Prints
    the winners, one a line; a mismatch is one line on stderr and exit status 2."""
    with _user_errors():
        winners = draw.verify(_draw_record(file))
    for w in winners:
        typer.echo(w)


@groupbuy_app.command("draw")
def groupbuy_draw(
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant code.", show_default=False)],
    campaign: Annotated[str, typer.Option("--campaign", "-c", help="Campaign code.")],
    db: DbOption = None,
) -> None:
    """Draw a lottery campaign now (its own number of winners; nobody names them); print the
    public record, which `tokenmall groupbuy verify` recomputes."""
    url = _db_url(db)
    with _user_errors(url), _engine(url) as engine:
        _require_schema(engine, url)
        services = bootstrap.build(Settings(db_url=url), engine)
        record = services.groupbuys.draw_campaign(services.store.ledger.tenant_id(tenant), campaign)
    typer.echo(json.dumps(record, indent=2))


# ----------------------------------------------------------------------------- nfg

TenantOption = Annotated[
    str, typer.Option("--tenant", "-t", help="Tenant code.", show_default=False)
]


@nfg_app.command("anchor")
def nfg_anchor(tenant: TenantOption, db: DbOption = None) -> None:
    """Publish the Merkle root (RFC 6962) of every token event since the last anchor."""
    url = _db_url(db)
    with _user_errors(url), _engine(url) as engine:
        _require_schema(engine, url)
        with Store(engine).tenant_tx(Ledger(engine).tenant_id(tenant)) as tx:
            a = nfg_log.anchor(tx)
    typer.echo(f"anchor {a.id}: events {a.first_seq}-{a.last_seq} ({a.tree_size}), root {a.root}")


@nfg_app.command("proof")
def nfg_proof(
    tenant: TenantOption,
    seq: Annotated[int, typer.Option("--seq", min=1, help="Token event number.")],
    db: DbOption = None,
) -> None:
    """Print the inclusion proof of a token event as JSON (check it with verify-proof)."""
    url = _db_url(db)
    with _user_errors(url), _engine(url) as engine:
        _require_schema(engine, url)
        tid = Ledger(engine).tenant_id(tenant)
        with engine.connect() as conn:
            doc = nfg_log.proof(conn, tid, seq)
    typer.echo(json.dumps(doc, indent=2))


@nfg_app.command("verify-proof")
def nfg_verify_proof(
    file: Annotated[Path, typer.Argument(help="A proof JSON (from `nfg proof`).")],
) -> None:
    """Offline: the entry hashes to the leaf and the path leads to the root.  Exit 0 and one
    line when it does; one line on stderr and exit 2 when it does not."""
    with _user_errors():
        try:
            doc = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            _fail(f"{file}: cannot read a proof: {exc}")
        if not isinstance(doc, dict):
            _fail(f"{file}: a proof is a JSON object")
        if not nfg_log.check_proof(doc):
            _fail(f"{file}: the proof does NOT verify against root {doc.get('root')}")
    typer.echo(
        f"ok: event {doc.get('seq')} is leaf {doc['index']} of {doc['tree_size']} "
        f"under root {doc['root']}"
    )


@nfg_app.command("mirror")
def nfg_mirror(
    tenant: TenantOption,
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection code.")],
    db: DbOption = None,
) -> None:
    """Replay the collection's history onto a fresh ERC-721 contract on titanoboa's EVM and
    check every ownerOf against the database (needs the `chain` extra)."""
    url = _db_url(db)
    with _user_errors(url), _engine(url) as engine:
        _require_schema(engine, url)
        try:
            from tokenmall.service.nfg import mirror  # noqa: PLC0415 - the optional extra
        except ImportError:
            _fail("the mirror needs the chain extra: pip install 'tokenmall[chain]'")
        tid = Ledger(engine).tenant_id(tenant)
        with engine.connect() as conn:
            result = mirror.mirror_collection(conn, tid, collection)
    if result.chain_break is not None:
        typer.echo(f"token event {result.chain_break}: its hashes do not hold", err=True)
    if result.refused is not None:
        typer.echo(f"the contract refused the history: {result.refused}", err=True)
    for d in result.differences:
        typer.echo(
            f"{d.token}: database says {d.expected or 'burned'}, ownerOf says "
            f"{d.on_chain or 'nonexistent'}",
            err=True,
        )
    if not result.ok:
        _fail(f"mirror of {collection} disagrees with the database")
    typer.echo(
        f"mirrored {result.replayed} events of {collection}: {result.checked} tokens, "
        "every ownerOf equals the database"
    )


# ----------------------------------------------------------------------------- demo


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


@app.command()
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
    with _user_errors(url):
        if db is None:
            try:
                _fresh_sqlite(Path.cwd() / DEMO_DB)
            except OSError as exc:
                _fail(f"cannot recreate ./{DEMO_DB}: {exc.strerror or exc}")
        with open_store(url) as engine:
            run = run_on(engine, scenario, tenant=DEMO_TENANT)
    params = scenario.params
    console = _console()
    console.print(
        f"The seed's worked example through the ledger on {_safe_url(url)}: each purchase of "
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


# ----------------------------------------------------------------------------- db, tenant


@db_app.command("upgrade")
def db_upgrade(db: DbOption = None) -> None:
    """Create or upgrade the schema to the newest revision (idempotent)."""
    url = _db_url(db)
    with _user_errors(url), _engine(url) as engine:
        migrate(engine)
    typer.echo(f"schema at {_safe_url(url)} is up to date")


def _parse_params(pairs: list[str]) -> TenantParams:
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            _fail(f"--param {pair!r}: expected NAME=VALUE, e.g. --param referral_ratio=0.05")
        if name in values:
            _fail(f"--param {name} given twice")
        values[name] = value.strip()
    return TenantParams.from_mapping(values)


def _params_line(params: TenantParams) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.to_mapping().items())


@tenant_app.command("create")
def tenant_create(
    code: Annotated[str, typer.Argument(help="Tenant code, e.g. brand-mall.", show_default=False)],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            metavar="NAME=VALUE",
            help="A tenant parameter (docs/RULES.md section 1), repeatable; others take defaults.",
            show_default=False,
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Create a tenant with its economic parameters."""
    url = _db_url(db)
    with _user_errors(url):
        check_tenant_code(code)
        params = _parse_params(param or [])
        with _engine(url) as engine:
            _require_schema(engine, url)
            tid = Ledger(engine).create_tenant(code, params)
    typer.echo(f"created tenant {code} (id {tid}): {_params_line(params)}")


@tenant_app.command("show")
def tenant_show(
    code: Annotated[str, typer.Argument(help="Tenant code.", show_default=False)],
    db: DbOption = None,
) -> None:
    """Print a tenant's parameters."""
    url = _db_url(db)
    with _user_errors(url), _engine(url) as engine:
        _require_schema(engine, url)
        tid = Ledger(engine).tenant_id(code)
        with engine.connect() as conn:
            raw = conn.execute(
                select(schema.tenants.c.params).where(schema.tenants.c.id == tid)
            ).scalar_one()
        params = TenantParams.from_json(raw)
    typer.echo(f"tenant {code} (id {tid}): {_params_line(params)}")


@tenant_app.command("models")
def tenant_models(
    code: Annotated[str, typer.Argument(help="Tenant code.", show_default=False)],
    set_: Annotated[
        str | None,
        typer.Option(
            "--set",
            metavar="JSON",
            help='The models to have on, e.g. \'{"distribution": {"ratios": ["0.10"]}}\' '
            "({} switches every model off; docs/MODELS.md).  Without it: show them.",
            show_default=False,
        ),
    ] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (kept in the audit trail).")
    ] = None,
    override: Annotated[
        str | None,
        typer.Option(
            "--compliance-override",
            metavar="REASON",
            help="Allow more than two paying referral levels (chain21, three ratios); recorded.",
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Show or replace a tenant's marketing models (audited, like parameter changes)."""
    url = _db_url(db)
    with _user_errors(url), _engine(url) as engine:
        _require_schema(engine, url)
        tid = Ledger(engine).tenant_id(code)
        if set_ is not None:
            try:
                wanted = json.loads(set_)
            except ValueError as exc:
                _fail(f"--set is not JSON: {exc}")
            if not isinstance(wanted, dict):
                _fail('--set must be a JSON object {"model": {parameters}}')
            with Store(engine).tenant_tx(tid) as tx:
                marketing.set_models(
                    tx, wanted, actor="cli", reason=reason, compliance_override=override
                )
        with engine.connect() as conn:
            config = marketing.get_config(conn, tid)
    if not config.models:
        typer.echo(f"tenant {code}: no marketing model is on")
    for name, params in config.models.items():
        typer.echo(f"{name}: {json.dumps(params, sort_keys=True)}")
    if config.override_reason:
        typer.echo(f"compliance override: {config.override_reason}")


# ----------------------------------------------------------------------------- serve


def _check_port(host: str, port: int) -> None:
    """Fail before touching the database if ``host:port`` cannot be listened on: a second
    ``serve`` on a busy port must not migrate, seed, or revoke the running one's demo keys.
    SO_REUSEADDR as uvicorn sets it, so a port left in TIME_WAIT by a stopped server is free."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (OSError, UnicodeError) as exc:
        _fail(f"cannot listen on {host}:{port}: {exc}", 1)
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            busy = exc.errno == errno.EADDRINUSE
            _fail(
                f"port {port} on {host} is already in use (another tokenmall serve?): choose "
                "another with --port"
                if busy
                else f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                1,
            )


def _first_tenant_help(base: str, settings: Settings) -> list[str]:
    """What to type to create a tenant and its first key on a service without the demo."""
    admin = settings.admin_token.get_secret_value()
    token = admin if admin == DEFAULT_ADMIN_TOKEN else "$TOKENMALL_ADMIN_TOKEN"
    auth = f'-H "Authorization: Bearer {token}" -H "Content-Type: application/json"'
    return [
        "create a tenant (a mall) and its first operator API key with the platform admin token:",
        f'  curl {auth} -d \'{{"code": "my-mall"}}\' {base}/v1/tenants',
        f'  curl {auth} -d \'{{"scope": "operator", "name": "back office"}}\' '
        f"{base}/v1/tenants/my-mall/api-keys",
        "the second answer's \"key\" (tmk_...) is the operator's credential; it is shown once",
    ]


@app.command()
def serve(  # noqa: PLR0917 - typer passes the options by keyword
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    db: DbOption = None,
    demo_mall: Annotated[
        bool | None,
        typer.Option(
            "--demo/--no-demo",
            help="Migrate the schema and seed the demo mall, printing fresh credentials "
            "(default: on for the default SQLite database only).",
            show_default=False,
        ),
    ] = None,
    scheduler: Annotated[
        bool | None,
        typer.Option(
            "--scheduler/--no-scheduler",
            help="Run the scheduler (day closes at local midnight, order expiry and "
            "settlement, payout retries) inside the server; off when `tokenmall worker` does. "
            "Of all the processes on one database, one runs it (a lease in the database). "
            "Default: $TOKENMALL_SERVE_SCHEDULER, else on.",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            "-w",
            min=1,
            max=64,
            help="Worker processes (uvicorn); about one per CPU core.",
        ),
    ] = 1,
    log_json: Annotated[
        bool | None,
        typer.Option(
            "--log-json/--log-text",
            help="Logs as one JSON object per line (default: $TOKENMALL_LOG_JSON, else text).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs) until interrupted."""
    import uvicorn  # noqa: PLC0415 - only this command needs the server

    from tokenmall.asgi import create_app  # noqa: PLC0415 - keeps FastAPI off other commands
    from tokenmall.service.demo_mall import seed_demo_mall  # noqa: PLC0415

    settings = Settings() if db is None else Settings(db_url=db)
    try:
        settings.check_for_serving()
    except InsecureSettings as exc:
        _fail(str(exc))
    run_scheduler = settings.serve_scheduler if scheduler is None else scheduler
    _check_port(host, port)
    url = settings.db_url
    seed = demo_mall if demo_mall is not None else url == DEFAULT_DB_URL
    with _user_errors(url):
        engine = create_db_engine(url)
        if seed:
            migrate(engine)
        elif not inspect(engine).has_table(schema.api_keys.name):
            engine.dispose()
            _fail(f"no tokenmall service schema at {_safe_url(url)}: run `tokenmall db upgrade`")
        elif not inspect(engine).has_table(schema.scheduler_lease.name):
            engine.dispose()
            _fail(f"the schema at {_safe_url(url)} is out of date: run `tokenmall db upgrade`")
        # one worker: the app is built here; several: each worker builds its own (serve_app)
        app_ = None
        if workers == 1:
            app_ = create_app(settings, engine=engine, scheduler=run_scheduler)
        creds = (
            seed_demo_mall(Ledger(engine), settings.secret_key.get_secret_value()) if seed else None
        )
    base = f"http://{host}:{port}"
    typer.echo(
        f"tokenmall serve: {settings.environment} mode, database {_safe_url(url)}, "
        f"{workers} worker{'s' if workers > 1 else ''}"
        + ("" if run_scheduler else ", no scheduler (run `tokenmall worker`)")
    )
    if creds is not None:
        typer.echo(f"demo tenant {creds.tenant!r} (new credentials on every start):")
        rows = [
            ("operator key", creds.operator_key),
            (f"merchant key ({creds.merchant})", creds.merchant_key),
            *((f"member token ({m})", t) for m, t in creds.member_tokens.items()),
        ]
        admin = settings.admin_token.get_secret_value()
        if admin == DEFAULT_ADMIN_TOKEN:  # only the public default is printed, never a real one
            rows.append(("platform admin token", f"{admin} (development default)"))
        width = max(len(label) for label, _ in rows)
        for label, value in rows:
            typer.echo(f"  {label:<{width}}  {value}")
        typer.echo(
            f'try: curl -H "Authorization: Bearer {creds.operator_key}" '
            f"{base}/v1/tenants/{creds.tenant}/products"
        )
    else:
        for line in _first_tenant_help(base, settings):
            typer.echo(line)
    typer.echo(f"API docs at {base}/docs")
    if creds is not None:
        typer.echo(
            f"operator console at {base}/console/login?tenant={creds.tenant} "
            "(log in with the operator key above; the merchant key shows the merchant's view)"
        )
        for code, token in creds.member_tokens.items():
            typer.echo(
                f"member home of {code} (phone): {base}/m/{creds.tenant}/login?token={token}"
            )
    else:
        typer.echo(
            f"operator console at {base}/console (log in with a tenant's code and one of its "
            "API keys)"
        )
    logging_config = log_config(
        json_lines=settings.log_json if log_json is None else log_json, level=settings.log_level
    )
    level = settings.log_level.lower()
    if app_ is not None:
        try:
            uvicorn.run(app_, host=host, port=port, log_config=logging_config, log_level=level)
        finally:
            engine.dispose()
        return
    engine.dispose()
    # the workers are fresh interpreters: what they need goes through the environment
    with _environment(
        TOKENMALL_DB_URL=url,
        TOKENMALL_SERVE_SCHEDULER="1" if run_scheduler else "0",
    ):
        uvicorn.run(
            "tokenmall.asgi:serve_app",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            log_config=logging_config,
            log_level=level,
        )


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables for the processes started inside, then restore them."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# ----------------------------------------------------------------------------- day, worker


@day_app.command("close")
def day_close(
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant code.", show_default=False)],
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
    url = _db_url(db)
    with _user_errors(url), _engine(url) as engine:
        _require_schema(engine, url)
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
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Tenant code.", show_default=False)],
    db: DbOption = None,
) -> None:
    """The tenant's local date, the last date closed and the dates still to close."""
    url = _db_url(db)
    with _user_errors(url), _engine(url) as engine:
        _require_schema(engine, url)
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


@app.command()
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
    with _user_errors(url), _engine(url) as engine:
        _require_schema(engine, url)
        if not inspect(engine).has_table(schema.scheduler_lease.name):
            _fail(f"the schema at {_safe_url(url)} is out of date: run `tokenmall db upgrade`")
        # the server's services (payouts through the same sandbox secrets, payout
        # notifications recorded in provider_events, the same event handlers)
        jobs = bootstrap.scheduler(bootstrap.build(settings, engine), interval=interval)
        typer.echo(f"tokenmall worker: database {_safe_url(url)}", err=True)
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


def main() -> None:
    """Console-script entry point (``tokenmall``, ``python -m tokenmall``)."""
    try:
        app(prog_name="tokenmall")
    except KeyboardInterrupt:  # pragma: no cover - interactive only
        sys.exit(130)
