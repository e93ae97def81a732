"""``tokenmall groupbuy``: check a published draw offline, or draw a lottery campaign now."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from tokenmall import bootstrap
from tokenmall.cli.common import (
    DbOption,
    TenantOption,
    db_url,
    fail,
    open_engine,
    require_schema,
    user_errors,
)
from tokenmall.domain import draw
from tokenmall.settings import Settings

__all__ = ["groupbuy_app"]

groupbuy_app = typer.Typer(
    help="Group buys (docs/RULES.md section 4): check a published draw.", no_args_is_help=True
)


def _draw_record(file: Path) -> dict[str, Any]:
    """The public record in FILE; a scenario's group or draw entry (``members``, no ``k``)
    is read as candidates and k = the number of winners."""
    try:
        record = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        fail(f"{file}: not valid JSON: {exc}")
    if not isinstance(record, dict):
        fail(f"{file}: a draw record is an object with commitment, seed, candidates, k, winners")
    if "candidates" not in record and isinstance(record.get("members"), list):
        record = {**record, "candidates": record["members"]}
        if isinstance(record.get("winners"), list):
            record.setdefault("k", len(record["winners"]))
    if record.get("seed") is None:
        fail(f"{file}: the draw has not revealed its seed yet")
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
    with user_errors():
        winners = draw.verify(_draw_record(file))
    for w in winners:
        typer.echo(w)


@groupbuy_app.command("draw")
def groupbuy_draw(
    tenant: TenantOption,
    campaign: Annotated[str, typer.Option("--campaign", "-c", help="Campaign code.")],
    db: DbOption = None,
) -> None:
    """Draw a lottery campaign now (its own number of winners; nobody names them); print the
    public record, which `tokenmall groupbuy verify` recomputes."""
    url = db_url(db)
    with user_errors(url), open_engine(url) as engine:
        require_schema(engine, url)
        services = bootstrap.build(Settings(db_url=url), engine)
        record = services.groupbuys.draw_campaign(services.store.ledger.tenant_id(tenant), campaign)
    typer.echo(json.dumps(record, indent=2))
