"""``tokenmall tenant``: create a tenant, show its parameters, show or set its marketing
models."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from sqlalchemy import select

from tokenmall.cli.common import DbOption, db_url, fail, open_engine, require_schema, user_errors
from tokenmall.domain.params import TenantParams
from tokenmall.scenario import check_tenant_code
from tokenmall.service import marketing
from tokenmall.service.ledger import Ledger
from tokenmall.service.uow import Store
from tokenmall.store import schema

__all__ = ["tenant_app"]

tenant_app = typer.Typer(help="Tenants (one mall each) and their parameters.", no_args_is_help=True)


def _parse_params(pairs: list[str]) -> TenantParams:
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            fail(f"--param {pair!r}: expected NAME=VALUE, e.g. --param referral_ratio=0.05")
        if name in values:
            fail(f"--param {name} given twice")
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
    url = db_url(db)
    with user_errors(url):
        check_tenant_code(code)
        params = _parse_params(param or [])
        with open_engine(url) as engine:
            require_schema(engine, url)
            tid = Ledger(engine).create_tenant(code, params)
    typer.echo(f"created tenant {code} (id {tid}): {_params_line(params)}")


@tenant_app.command("show")
def tenant_show(
    code: Annotated[str, typer.Argument(help="Tenant code.", show_default=False)],
    db: DbOption = None,
) -> None:
    """Print a tenant's parameters."""
    url = db_url(db)
    with user_errors(url), open_engine(url) as engine:
        require_schema(engine, url)
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
    url = db_url(db)
    with user_errors(url), open_engine(url) as engine:
        require_schema(engine, url)
        tid = Ledger(engine).tenant_id(code)
        if set_ is not None:
            try:
                wanted = json.loads(set_)
            except ValueError as exc:
                fail(f"--set is not JSON: {exc}")
            if not isinstance(wanted, dict):
                fail('--set must be a JSON object {"model": {parameters}}')
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
