"""``tokenmall nfg``: anchor, proof, verify-proof (offline) and mirror, end to end on SQLite."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner, Result

from tokenmall.cli import app
from tokenmall.domain.nfg import Collection, Mode
from tokenmall.service.ledger import Ledger
from tokenmall.service.nfg import collections, tokens
from tokenmall.service.uow import Store
from tokenmall.store import schema as s
from tokenmall.store.db import create_db_engine, migrate


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def mall(tmp_path: Path) -> tuple[str, str]:
    url = f"sqlite:///{tmp_path / 'nfg.db'}"
    engine = create_db_engine(url)
    migrate(engine)
    code = f"t-{uuid.uuid4().hex[:8]}"
    tid = Ledger(engine).create_tenant(code)
    coll = Collection(
        code="CARD",
        name="Card",
        max_supply=10,
        price=Decimal(0),
        transfer_policy=Mode.GIFT_ONLY,
    )
    with Store(engine).tenant_tx(tid) as tx:
        collections.create_collection(tx, coll)
        tokens.airdrop(tx, "CARD", ["ann", "bob", "cat"], at=1.0)
        tokens.transfer(tx, "CARD", 2, caller="bob", from_="bob", to="ann", at=2.0)
    engine.dispose()
    return url, code


def test_anchor_proof_verify(mall: tuple[str, str], tmp_path: Path) -> None:
    url, code = mall
    r = invoke("nfg", "anchor", "--tenant", code, "--db", url)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith("anchor 1: events 1-4 (4), root ")
    r = invoke("nfg", "proof", "--tenant", code, "--seq", "4", "--db", url)
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert json.loads(doc["entry"])["kind"] == "transfer"
    good = tmp_path / "proof.json"
    good.write_text(r.stdout)
    r = invoke("nfg", "verify-proof", str(good))
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith("ok: event 4 is leaf 3 of 4"), r.stdout
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(dict(doc, entry=doc["entry"].replace('"to":"ann"', '"to":"eve"'))))
    r = invoke("nfg", "verify-proof", str(forged))
    assert r.exit_code == 2
    assert "does NOT verify" in r.stderr
    junk = tmp_path / "junk.json"
    junk.write_text("[1, 2]")
    r = invoke("nfg", "verify-proof", str(junk))
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1
    r = invoke("nfg", "proof", "--tenant", code, "--seq", "99", "--db", url)
    assert r.exit_code == 2
    assert "no token event 99" in r.stderr


def test_mirror_and_tamper(mall: tuple[str, str]) -> None:
    pytest.importorskip("boa")
    url, code = mall
    r = invoke("nfg", "mirror", "--tenant", code, "--collection", "CARD", "--db", url)
    assert r.exit_code == 0, r.stderr
    assert "3 tokens, every ownerOf equals the database" in r.stdout
    engine = create_db_engine(url)
    with engine.begin() as conn:
        conn.execute(update(s.nfg_tokens).where(s.nfg_tokens.c.serial == 3).values(owner="eve"))
    engine.dispose()
    r = invoke("nfg", "mirror", "--tenant", code, "--collection", "CARD", "--db", url)
    assert r.exit_code == 2
    assert "CARD#3: database says eve" in r.stderr
