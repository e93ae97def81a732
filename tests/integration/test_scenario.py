"""The scenario runner on real stores (SQLite file, and PostgreSQL when configured)."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tokenmall.scenario import (
    ScenarioError,
    load_scenario,
    parse_scenario,
    run_scenario,
)

SEED = Path(__file__).resolve().parents[2] / "examples" / "seed.json"


def purchase(member: str, amount: str = "100", **extra: str) -> dict[str, str]:
    return {"type": "purchase", "member": member, "amount": amount, **extra}


MIXED: list[dict[str, Any]] = [
    purchase("A"),
    purchase("B", referrer="A"),
    {"type": "sell", "member": "A", "points": "5"},
    {"type": "exchange", "member": "B", "points": "2"},
    {"type": "close_day", "day": "2024-05-01"},
    purchase("C", "250.50", referrer="B"),
    {"type": "buy_points", "member": "B", "stable": "1"},
    {"type": "refund", "order": "order:5", "amount": "50"},
    {"type": "close_day"},
]


def test_seed_on_the_store(db_url: str, tenant_code: str) -> None:
    run = run_scenario(load_scenario(SEED), db_url=db_url, tenant=tenant_code)
    assert [s["price"] for s in run.steps] == ["1.4286", "1.6807", "1.8674", "2.0188"]
    assert [s["figures"]["points"] for s in run.steps] == ["21", "14.7", "12.495", "11.2455"]
    assert (run.applied, run.replayed) == (4, 0)


def test_store_and_throw_away_store_agree(db_url: str, tenant_code: str) -> None:
    """SQLite and PostgreSQL give the same output as the default temporary store."""
    scenario = parse_scenario({"config": {"referral_ratio": "0.05"}, "events": MIXED})
    kept = run_scenario(scenario, db_url=db_url, tenant=tenant_code).output()
    assert kept == run_scenario(scenario).output()
    assert kept["members"]["C"]["spent"] == "200.5"  # 250.50 less the 50 refunded


def test_rerun_replays_every_event_with_its_first_result(db_url: str, tenant_code: str) -> None:
    scenario = parse_scenario({"events": MIXED})
    first = run_scenario(scenario, db_url=db_url, tenant=tenant_code)
    again = run_scenario(scenario, db_url=db_url, tenant=tenant_code)
    assert (first.applied, first.replayed) == (len(MIXED), 0)
    assert (again.applied, again.replayed) == (0, len(MIXED))
    assert again.output() == first.output()
    assert again.steps == first.steps  # figures too: the stored results, not recomputed ones


def test_a_longer_file_continues_where_a_prefix_stopped(db_url: str, tenant_code: str) -> None:
    head = parse_scenario({"events": MIXED[:4]})
    run_scenario(head, db_url=db_url, tenant=tenant_code, chunk_size=3)
    whole = parse_scenario({"events": MIXED})
    resumed = run_scenario(whole, db_url=db_url, tenant=tenant_code, chunk_size=2)
    assert (resumed.applied, resumed.replayed) == (len(MIXED) - 4, 4)
    assert resumed.output() == run_scenario(whole).output()


def test_refused_event_keeps_what_came_before_and_applies_nothing_after(
    db_url: str, tenant_code: str
) -> None:
    events = [
        purchase("A"),
        purchase("B"),
        {"type": "sell", "member": "B", "points": "100"},  # B holds 14.7
        purchase("C"),
    ]
    with pytest.raises(ScenarioError, match=r"^event 2: member 'B' holds 14\.7"):
        run_scenario(parse_scenario({"events": events}), db_url=db_url, tenant=tenant_code)
    fixed = [*events[:2], {"type": "sell", "member": "B", "points": "10"}, events[3]]
    run = run_scenario(parse_scenario({"events": fixed}), db_url=db_url, tenant=tenant_code)
    # events 0 and 1 were committed by the failed run; the fixed sell and C are new
    assert (run.applied, run.replayed) == (2, 2)
    assert run.output() == run_scenario(parse_scenario({"events": fixed})).output()


def test_a_named_day_closes_once_across_files(db_url: str, tenant_code: str) -> None:
    day_one = {"type": "close_day", "day": "2024-05-01"}
    first = parse_scenario({"events": [purchase("A"), day_one]})
    run_scenario(first, db_url=db_url, tenant=tenant_code)
    # another file on the same tenant: its purchases are new, day one was closed already
    later = parse_scenario(
        {
            "events": [
                purchase("B", id="buy-b", order="o-b"),
                purchase("C", id="buy-c", order="o-c"),
                day_one,
                {"type": "close_day", "day": "d2"},
            ]
        }
    )
    run = run_scenario(later, db_url=db_url, tenant=tenant_code)
    assert (run.applied, run.replayed) == (3, 1)
    assert run.steps[2] == run_scenario(first).steps[1]  # the first close's stored result
    assert Decimal(run.steps[3]["figures"]["paid"]) > 0


def test_parameters_of_an_existing_tenant_must_match(db_url: str, tenant_code: str) -> None:
    run_scenario(parse_scenario({"events": [purchase("A")]}), db_url=db_url, tenant=tenant_code)
    other = parse_scenario({"config": {"gift_ratio": "0.5"}, "events": [purchase("A")]})
    with pytest.raises(ScenarioError, match=re.escape("gift_ratio=0.70 (file: 0.5)")):
        run_scenario(other, db_url=db_url, tenant=tenant_code)


@pytest.mark.usefixtures("default_recursion_limit")
@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("deep.json", "[" * 30_000 + "]" * 30_000),
        ("deep.json", '{"events": ' + "[" * 100 + "]" * 100 + "}"),
        ("deep.yaml", "[" * 5_000 + "]" * 5_000),
        ("deep", "[" * 30_000 + "]" * 30_000),  # JSON by its content
    ],
    ids=["json", "json-just-past-the-bound", "yaml", "no-suffix"],
)
def test_a_scenario_file_nested_too_deep_is_a_scenario_error(
    tmp_path: Path, name: str, text: str
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError, match="nested"):
        load_scenario(path)


def test_a_refund_of_the_last_points_keeps_their_price_on_the_store(
    db_url: str, tenant_code: str
) -> None:
    # pool 30 over 24 EP (21 to A, 3 to B) is 1.25; the refund burns all 24 and gives the 30
    # back: the price stays 1.25 (it once showed 10, the pool over B's 3 EP mid-refund), and
    # C's 30 CNY of pool buys floor8(30 * 0.7 / 1.25) = 16.8 EP
    scenario = parse_scenario(
        {
            "events": [
                purchase("A", order="o1", referrer="B"),
                {"type": "refund", "order": "o1"},
                purchase("C", order="o2"),
            ]
        }
    )
    run = run_scenario(scenario, db_url=db_url, tenant=tenant_code)
    assert [s["price"] for s in run.steps] == ["1.2500", "1.2500", "1.7857"]
    assert [(s["pool"], s["circulating"]) for s in run.steps[:2]] == [("30", "24"), ("0", "0")]
    assert run.steps[2]["figures"]["points"] == "16.8"
    assert run.output() == run_scenario(scenario).output()
