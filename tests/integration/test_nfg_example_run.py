"""examples/nfg_black_card.py (docs/NFG.md's worked example) runs and prints the figures the
docs quote."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "nfg_black_card.py"


def test_the_worked_example(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("nfg_black_card", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lines: list[str] = []
    module.main(lines)
    text = "\n".join(lines)
    assert "minted BLACK#1 to ann" in text
    assert "refused, nfg_holding_period" in text
    assert "518400 s left" in text
    assert "price 1288.00, fee 32.20 (pool 16.10), royalty 64.40, bob receives 1191.40" in text
    assert "SP after: bob 1191.4, cat 712, issuer 64.4; pool +16.1" in text
    assert '"value": 11, "max_value": 12' in text
    assert [line.split()[1] for line in lines if line.startswith("   #")] == [
        "mint",
        "transfer",
        "sale",
        "redeem",
    ]
    assert "verifies offline: True" in text
    if importlib.util.find_spec("boa") is not None:
        assert "ownerOf equals the database: True; proof on chain True, forged False" in text
