"""``tokenmall tenant models``: show and replace a tenant's marketing models from the shell."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner, Result

from tokenmall.cli import app


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def test_models_are_set_shown_and_guarded(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    assert invoke("db", "upgrade", "--db", db).exit_code == 0
    assert invoke("tenant", "create", "mall", "--db", db).exit_code == 0
    shown = invoke("tenant", "models", "mall", "--db", db)
    assert shown.exit_code == 0
    assert "no marketing model is on" in shown.output
    refused = invoke("tenant", "models", "mall", "--db", db, "--set", '{"chain21": {}}')
    assert refused.exit_code != 0
    assert "rule max_levels" in refused.output
    assert len(refused.output.strip().splitlines()) == 1
    done = invoke(
        "tenant", "models", "mall", "--db", db,
        "--set", '{"distribution": {"ratios": ["0.08"]}}', "--reason", "launch",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert 'distribution: {"freeze_days": 0, "ratios": ["0.08"]}' in done.output
    bad = invoke("tenant", "models", "mall", "--db", db, "--set", "{not json")
    assert bad.exit_code != 0
    assert "--set is not JSON" in bad.output
    again = invoke("tenant", "models", "mall", "--db", db)
    assert "distribution" in again.output
