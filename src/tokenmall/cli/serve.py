"""``tokenmall serve``: the HTTP API, the operator console and the member pages, with the
scheduler inside unless ``tokenmall worker`` runs it."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from sqlalchemy import inspect

from tokenmall.cli.common import DbOption, fail, safe_url, user_errors
from tokenmall.logs import log_config
from tokenmall.service.ledger import Ledger
from tokenmall.settings import DEFAULT_ADMIN_TOKEN, DEFAULT_DB_URL, InsecureSettings, Settings
from tokenmall.store import schema
from tokenmall.store.db import create_db_engine, migrate

__all__ = ["serve"]


def _check_port(host: str, port: int) -> None:
    """Fail before touching the database if ``host:port`` cannot be listened on: a second
    ``serve`` on a busy port must not migrate, seed, or revoke the running one's demo keys.
    SO_REUSEADDR as uvicorn sets it, so a port left in TIME_WAIT by a stopped server is free."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (OSError, UnicodeError) as exc:
        fail(f"cannot listen on {host}:{port}: {exc}", 1)
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            busy = exc.errno == errno.EADDRINUSE
            fail(
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
        fail(str(exc))
    run_scheduler = settings.serve_scheduler if scheduler is None else scheduler
    _check_port(host, port)
    url = settings.db_url
    seed = demo_mall if demo_mall is not None else url == DEFAULT_DB_URL
    with user_errors(url):
        engine = create_db_engine(url)
        if seed:
            migrate(engine)
        elif not inspect(engine).has_table(schema.api_keys.name):
            engine.dispose()
            fail(f"no tokenmall service schema at {safe_url(url)}: run `tokenmall db upgrade`")
        elif not inspect(engine).has_table(schema.scheduler_lease.name):
            engine.dispose()
            fail(f"the schema at {safe_url(url)} is out of date: run `tokenmall db upgrade`")
        # one worker: the app is built here; several: each worker builds its own (serve_app)
        app_ = None
        if workers == 1:
            app_ = create_app(settings, engine=engine, scheduler=run_scheduler)
        creds = (
            seed_demo_mall(Ledger(engine), settings.secret_key.get_secret_value()) if seed else None
        )
    base = f"http://{host}:{port}"
    typer.echo(
        f"tokenmall serve: {settings.environment} mode, database {safe_url(url)}, "
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
