"""``tokenmall nfg``: anchor token events, fetch and check inclusion proofs, mirror a
collection onto the EVM."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from tokenmall.cli.common import (
    DbOption,
    TenantOption,
    db_url,
    fail,
    open_engine,
    require_schema,
    user_errors,
)
from tokenmall.service.ledger import Ledger
from tokenmall.service.nfg import log as nfg_log
from tokenmall.service.uow import Store

__all__ = ["nfg_app"]

nfg_app = typer.Typer(
    help="NFG: anchor token events, fetch and check inclusion proofs, mirror onto the EVM.",
    no_args_is_help=True,
)


@nfg_app.command("anchor")
def nfg_anchor(tenant: TenantOption, db: DbOption = None) -> None:
    """Publish the Merkle root (RFC 6962) of every token event since the last anchor."""
    url = db_url(db)
    with user_errors(url), open_engine(url) as engine:
        require_schema(engine, url)
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
    url = db_url(db)
    with user_errors(url), open_engine(url) as engine:
        require_schema(engine, url)
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
    with user_errors():
        try:
            doc = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            fail(f"{file}: cannot read a proof: {exc}")
        if not isinstance(doc, dict):
            fail(f"{file}: a proof is a JSON object")
        if not nfg_log.check_proof(doc):
            fail(f"{file}: the proof does NOT verify against root {doc.get('root')}")
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
    url = db_url(db)
    with user_errors(url), open_engine(url) as engine:
        require_schema(engine, url)
        try:
            from tokenmall.service.nfg import mirror  # noqa: PLC0415 - the optional extra
        except ImportError:
            fail("the mirror needs the chain extra: pip install 'tokenmall[chain]'")
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
        fail(f"mirror of {collection} disagrees with the database")
    typer.echo(
        f"mirrored {result.replayed} events of {collection}: {result.checked} tokens, "
        "every ownerOf equals the database"
    )
