"""The ``tokenmall`` command line, end to end: what an operator types and what they get back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tokenmall.cli import app
from tokenmall.domain import draw
from tokenmall.service.ledger import Ledger
from tokenmall.store.db import create_db_engine

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

# docs/RULES.md section 2: (buyer, EP to buyer, pool, circulating, price after)
SEED_TABLE = [
    ("A", "21", "30", "21", "1.4286"),
    ("B", "14.7", "60", "35.7", "1.6807"),
    ("C", "12.495", "90", "48.195", "1.8674"),
    ("D", "11.2455", "120", "59.4405", "2.0188"),
]
STEP_KEYS = {"price", "pool", "circulating", "burned", "treasury", "dividend_fund"}
MEMBER_KEYS = {"points", "stable", "quota_remaining", "spent", "dividends", "exited"}


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def write(tmp_path: Path, doc: Any, name: str = "scenario.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return path


def assert_user_error(result: Result, *fragments: str) -> str:
    """Exit status 2, one line on stderr that says what is wrong, no traceback, no stdout."""
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    err = result.stderr
    assert "Traceback" not in err
    assert err.count("\n") == 1, err
    assert err.startswith("tokenmall: error: "), err
    for fragment in fragments:
        assert fragment in err, err
    return err


def purchase(member: str, amount: str = "100", **extra: str) -> dict[str, str]:
    return {"type": "purchase", "member": member, "amount": amount, **extra}


# ----------------------------------------------------------------------------- the seed example


def test_seed_example_json_matches_rules_section_2() -> None:
    result = invoke("scenario", "run", str(EXAMPLES / "seed.json"), "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) == {"steps", "members"}
    assert len(out["steps"]) == 4
    for step, (buyer, ep, pool, circulating, price) in zip(out["steps"], SEED_TABLE, strict=True):
        assert set(step) == STEP_KEYS
        assert (step["pool"], step["circulating"], step["price"]) == (pool, circulating, price)
        assert (step["burned"], step["treasury"]) == ("0", "0")
        assert out["members"][buyer]["points"] == ep
    assert [s["dividend_fund"] for s in out["steps"]] == ["30", "60", "90", "120"]
    assert out["members"]["A"] == {
        "points": "21",
        "stable": "0",
        "quota_remaining": "200",
        "spent": "100",
        "dividends": "0",
        "exited": False,
    }


def test_exit_example_pays_the_whole_quota_then_the_points() -> None:
    """docs/RULES.md R7's worked example: the quota caps dividends, not what a member takes."""
    result = invoke("scenario", "run", str(EXAMPLES / "exit_after_quota.json"), "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    before_close, close = out["steps"][-2], out["steps"][-1]
    assert (before_close["pool"], before_close["circulating"]) == ("81.78", "21")
    assert before_close["dividend_fund"] == "210"
    assert (close["pool"], close["circulating"], close["dividend_fund"]) == ("8.18", "0", "10")
    assert close["price"] == "3.8943"  # the last price points had
    assert out["members"]["A"] == {
        "points": "0",
        "stable": "273.6",
        "quota_remaining": "0",
        "spent": "100",
        "dividends": "200",
        "exited": True,
    }
    payouts = [out["members"][f"B{i}"]["stable"] for i in range(1, 7)]
    assert payouts == ["22.23", "21.79", "21.43", "21.15", "20.91", "20.71"]


def test_console_script_and_module_print_the_same_json() -> None:
    """The installed ``tokenmall`` script and ``python -m tokenmall`` are the same program."""
    seed = str(EXAMPLES / "seed.json")
    commands = [[sys.executable, "-m", "tokenmall", "scenario", "run", seed, "--json"]]
    script = Path(sys.executable).parent / "tokenmall"
    if script.exists():
        commands.append([str(script), "scenario", "run", seed, "--json"])
    outputs = []
    for cmd in commands:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""
        outputs.append(json.loads(proc.stdout))
    assert outputs[0]["steps"][3]["price"] == "2.0188"
    assert all(o == outputs[0] for o in outputs)


def test_subprocess_user_error_is_one_line_without_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, {"events": [purchase("A"), {"type": "sell", "member": "A"}]})
    proc = subprocess.run(
        [sys.executable, "-m", "tokenmall", "scenario", "run", str(path), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == "tokenmall: error: event 1: missing field 'points'\n"


def test_table_output_without_json() -> None:
    result = invoke("scenario", "run", str(EXAMPLES / "seed.json"))
    assert result.exit_code == 0, result.stderr
    for text in ("Steps", "Members", "1.4286", "59.4405", "11.2455", "4 events: 4 applied."):
        assert text in result.stdout


def test_demo_prints_the_seed_table_and_the_hundredth_price(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for _ in range(2):  # the demo database is recreated, so a second run prints the same
        result = invoke("demo")
        assert result.exit_code == 0, result.stderr
        lines = result.stdout.splitlines()
        for buyer, ep, pool, circulating, price in SEED_TABLE:
            row = next(line for line in lines if line.strip("│ ").startswith(buyer + " "))
            assert row.replace("│", " ").split() == [buyer, ep, pool, circulating, price]
        assert "docs/RULES.md section 2" in result.stdout
        assert "price 5.1731" in result.stdout
        assert "price = pool / circulating" in result.stdout
        assert "replayed" not in result.stdout
        assert "guarantee" not in result.stdout.lower()
        assert "only rise" not in result.stdout.lower()
    assert (tmp_path / "tokenmall-demo.db").exists()


# ----------------------------------------------------------------------------- invalid events


@pytest.mark.parametrize(
    ("events", "fragments"),
    [
        pytest.param(
            [purchase("A"), {"type": "teleport", "member": "A"}],
            ["event 1: unknown event type 'teleport'"],
            id="unknown-type",
        ),
        pytest.param(
            [purchase("A"), purchase("B"), purchase("C", "-100")],
            ["event 2: amount must not be negative"],
            id="negative-amount",
        ),
        pytest.param(
            [purchase("A", "one hundred")],
            ["event 0: amount is not a number"],
            id="non-numeric-amount",
        ),
        pytest.param(
            [purchase("A"), {"type": "sell", "member": "A", "points": "21.00000001"}],
            ["event 1: ", "cannot sell 21.00000001"],
            id="sell-more-than-held",
        ),
        pytest.param(
            [purchase("A"), {"type": "sell", "member": "Z", "points": "1"}],
            ["event 1: unknown member 'Z'"],
            id="sell-by-unknown-member",
        ),
        pytest.param(
            [{"type": "purchase", "amount": "100"}],
            ["event 0: missing field 'member'"],
            id="missing-field",
        ),
        pytest.param(
            [purchase("A"), {"type": "exchange", "member": "A", "points": True}],
            ["event 1: points must be a decimal string"],
            id="bool-amount",
        ),
        pytest.param(
            [purchase("A", "1e400")],
            ["event 0: amount", "larger than the supported maximum"],
            id="absurd-amount",
        ),
        pytest.param(
            [purchase("A", id="x"), purchase("B", id="x")],
            ["event 1: id 'x' is also event 0's"],
            id="duplicate-id",
        ),
        pytest.param(
            [{"type": "close_day", "day": "d1"}, {"type": "close_day", "day": "d1"}],
            ["event 1: day 'd1' is already closed by event 0"],
            id="day-closed-twice",
        ),
        pytest.param(
            ["purchase"],
            ["event 0: an event must be an object"],
            id="not-an-object",
        ),
    ],
)
def test_invalid_event_names_its_index(
    events: list[Any], fragments: list[str], tmp_path: Path
) -> None:
    path = write(tmp_path, {"events": events})
    assert_user_error(invoke("scenario", "run", str(path), "--json"), *fragments)


def test_every_invalid_event_is_counted_and_nothing_is_applied(tmp_path: Path) -> None:
    db = tmp_path / "kept.db"
    path = write(
        tmp_path,
        {"events": [purchase("A"), purchase("B", "-1"), {"type": "nope"}, purchase("C", "x")]},
    )
    result = invoke("scenario", "run", str(path), "--json", "--db", f"sqlite:///{db}")
    assert_user_error(result, "event 1: amount must not be negative", "(and 2 more invalid events)")
    assert not db.exists()  # the store is not even opened when the file is invalid


def test_a_refused_event_stops_the_run_where_it_is(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kept.db'}"
    path = write(
        tmp_path,
        {"events": [purchase("A"), {"type": "sell", "member": "A", "points": "50"}, purchase("B")]},
    )
    assert_user_error(invoke("scenario", "run", str(path), "--db", url), "event 1: ")
    engine = create_db_engine(url)
    try:
        ledger = Ledger(engine)
        members = ledger.members(ledger.tenant_id("scenario"))
    finally:
        engine.dispose()
    assert set(members) == {"A"}  # event 0 committed; event 2, after the refusal, not applied
    assert members["A"]["points"] == "21"


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("broken.json", '{"events": [', "broken.json: not valid JSON"),
        ("nan.json", '{"events": [{"type": "purchase", "member": "A", "amount": NaN}]}', "NaN"),
        ("broken.yaml", "events:\n  - {type: purchase\n", "broken.yaml: not valid YAML"),
        ("list.json", "[]", "a scenario must be an object with an 'events' list"),
        ("noevents.json", "{}", "a scenario must have an 'events' list"),
        ("extra.json", '{"events": [], "evnts": []}', "unknown top-level field(s): evnts"),
        ("config.json", '{"config": {"sell_fee": "1.5"}, "events": []}', "config: sell_fee"),
        ("param.json", '{"config": {"bonus": "1"}, "events": []}', "unknown parameter(s): bonus"),
    ],
)
def test_bad_files_are_user_errors(name: str, content: str, fragment: str, tmp_path: Path) -> None:
    path = write(tmp_path, content, name)
    assert_user_error(invoke("scenario", "run", str(path), "--json"), fragment)


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    assert_user_error(
        invoke("scenario", "run", str(tmp_path / "nope.json")), "cannot read", "nope.json"
    )


def test_bad_database_url_is_a_user_error() -> None:
    result = invoke("scenario", "run", str(EXAMPLES / "seed.json"), "--db", "nosuchdb://x")
    assert_user_error(result, "bad database URL")


# ----------------------------------------------------------------------------- YAML, members


def test_yaml_example_runs_with_exact_amounts() -> None:
    result = invoke("scenario", "run", str(EXAMPLES / "basic.yaml"), "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert len(out["steps"]) == 9
    assert set(out["members"]) == {"A", "B", "C", "D"}
    assert out["members"]["C"]["spent"] == "250.5"  # YAML 250.50 read as a decimal, not a float
    assert out["steps"][6]["dividend_fund"] != out["steps"][5]["dividend_fund"]  # day closed
    assert all(set(m) == MEMBER_KEYS for m in out["members"].values())


def test_json_and_yaml_of_the_same_events_give_the_same_output(tmp_path: Path) -> None:
    doc = {"config": {"referral_ratio": "0.05"}, "events": [purchase("A"), purchase("B")]}
    as_json = json.loads(invoke("scenario", "run", str(write(tmp_path, doc)), "--json").stdout)
    yaml_text = (
        "config: {referral_ratio: 0.05}\n"
        "events:\n"
        "  - {type: purchase, member: A, amount: 100}\n"
        "  - {type: purchase, member: B, amount: 100.00}\n"
    )
    path = write(tmp_path, yaml_text, "same.yml")
    as_yaml = json.loads(invoke("scenario", "run", str(path), "--json").stdout)
    assert as_json == as_yaml


def test_members_include_referrers_who_never_bought(tmp_path: Path) -> None:
    doc = {
        "events": [
            purchase("B", referrer="R"),
            purchase("C", referrer="R"),
            {"type": "close_day"},
        ]
    }
    result = invoke("scenario", "run", str(write(tmp_path, doc)), "--json")
    assert result.exit_code == 0, result.stderr
    members = json.loads(result.stdout)["members"]
    assert list(members) == ["B", "R", "C"]
    referrer = members["R"]
    assert referrer["spent"] == "0"
    # 10% of each 30 CNY pool contribution: 3 EP at price 1, then 2.4 at 30 / (21 + 3)
    assert referrer["points"] == "5.4"
    assert referrer["quota_remaining"] == "0"
    assert referrer["dividends"] == "0"  # no quota, no dividends (R9)


# ----------------------------------------------------------------------------- re-runs


def test_rerun_on_a_kept_database_replays_and_prints_the_same(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kept.db'}"
    seed = str(EXAMPLES / "seed.json")
    first = invoke("scenario", "run", seed, "--json", "--db", url)
    second = invoke("scenario", "run", seed, "--json", "--db", url)
    assert first.exit_code == second.exit_code == 0
    assert first.stdout == second.stdout
    table = invoke("scenario", "run", seed, "--db", url)
    assert "4 events: 0 applied, 4 replayed (already in the store)." in table.stdout


def test_reusing_a_tenant_with_other_parameters_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kept.db'}"
    seed = str(EXAMPLES / "seed.json")
    assert invoke("scenario", "run", seed, "--db", url, "--tenant", "t1").exit_code == 0
    other = write(tmp_path, {"config": {"sell_fee": "0.2"}, "events": [purchase("A")]})
    result = invoke("scenario", "run", str(other), "--db", url, "--tenant", "t1")
    assert_user_error(result, "tenant 't1' exists with other parameters", "sell_fee=0.1")
    assert invoke("scenario", "run", str(other), "--db", url, "--tenant", "t2").exit_code == 0


def test_changed_event_on_rerun_is_an_idempotency_conflict(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kept.db'}"
    doc: dict[str, Any] = {"events": [purchase("A"), purchase("B")]}
    assert invoke("scenario", "run", str(write(tmp_path, doc)), "--db", url).exit_code == 0
    doc["events"][1]["amount"] = "200"
    result = invoke("scenario", "run", str(write(tmp_path, doc)), "--db", url)
    assert_user_error(result, "event 1: key 'event:1' was used for different content")


# ----------------------------------------------------------------------------- db and tenants


def test_db_upgrade_tenant_create_and_show(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ops.db'}"
    env = {"TOKENMALL_DB_URL": url}
    assert_user_error(invoke("tenant", "create", "mall", env=env), "tokenmall db upgrade")

    result = invoke("db", "upgrade", env=env)
    assert result.exit_code == 0, result.stderr
    assert "up to date" in result.stdout
    assert invoke("db", "upgrade", "--db", url).exit_code == 0  # idempotent

    result = invoke(
        "tenant", "create", "mall", "-p", "referral_ratio=0.05", "--param", "sell_fee=0.2", env=env
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("created tenant mall (id ")
    assert "referral_ratio=0.05" in result.stdout
    shown = invoke("tenant", "show", "mall", "--db", url)
    assert shown.exit_code == 0
    assert "sell_fee=0.2" in shown.stdout
    assert "pool_rate=0.30" in shown.stdout

    assert_user_error(invoke("tenant", "create", "mall", env=env), "already exists")
    assert_user_error(invoke("tenant", "show", "nobody", env=env), "no tenant 'nobody'")
    assert_user_error(
        invoke("tenant", "create", "x", "-p", "bonus=1", env=env), "unknown parameter(s): bonus"
    )
    assert_user_error(
        invoke("tenant", "create", "x", "-p", "sell_fee=2", env=env), "sell_fee must be between"
    )
    assert_user_error(
        invoke("tenant", "create", "x", "-p", "sell_fee", env=env), "expected NAME=VALUE"
    )
    assert_user_error(invoke("tenant", "create", "bad code", env=env), "tenant code")


@pytest.mark.parametrize(
    "command",
    [
        ["tenant", "show", "mall"],
        ["day", "status", "--tenant", "mall"],
        ["day", "close", "--tenant", "mall"],
        ["tenant", "create", "mall"],
        ["worker", "--once"],
    ],
)
def test_a_missing_sqlite_file_is_refused_not_created(tmp_path: Path, command: list[str]) -> None:
    """A mistyped --db must not leave an empty database file behind."""
    missing = tmp_path / "typo" / "nothere.db"
    (tmp_path / "typo").mkdir()
    err = assert_user_error(
        invoke(*command, "--db", f"sqlite:///{missing}"), "no database file", str(missing)
    )
    assert "tokenmall db upgrade" in err
    assert list((tmp_path / "typo").iterdir()) == []
    # the same through the environment's URL
    assert_user_error(
        invoke(*command, env={"TOKENMALL_DB_URL": f"sqlite:///{missing}"}), "no database file"
    )
    assert not missing.exists()


def test_default_database_url_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TOKENMALL_DB_URL", raising=False)
    assert invoke("db", "upgrade").exit_code == 0
    assert (tmp_path / "tokenmall.db").exists()  # sqlite:///tokenmall.db, relative to cwd
    env_db = tmp_path / "from-env.db"
    assert invoke("db", "upgrade", env={"TOKENMALL_DB_URL": f"sqlite:///{env_db}"}).exit_code == 0
    assert env_db.exists()


def test_help_lists_the_commands() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("scenario", "demo", "db", "tenant"):
        assert command in result.stdout


def test_no_tokenmall_db_url_leaks_into_scenario_runs(tmp_path: Path) -> None:
    """Without --db a scenario runs on a throw-away store, whatever TOKENMALL_DB_URL says."""
    target = tmp_path / "should-not-exist.db"
    env = {**os.environ, "TOKENMALL_DB_URL": f"sqlite:///{target}"}
    result = invoke("scenario", "run", str(EXAMPLES / "seed.json"), "--json", env=env)
    assert result.exit_code == 0
    assert not target.exists()


# ----------------------------------------------------------------------------- groupbuy verify


def _record(tmp_path: Path, **change: Any) -> Path:
    seed = bytes(range(32))
    record = {**draw.public_record(seed, ["g1", "g2", "g3", "g4"], 2), **change}
    return write(tmp_path, record, "draw.json")


def test_groupbuy_verify_prints_the_winners_of_a_matching_record(tmp_path: Path) -> None:
    path = _record(tmp_path)
    published = json.loads(path.read_text())
    result = invoke("groupbuy", "verify", str(path))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == published["winners"]
    assert len(published["winners"]) == 2


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"winners": "reversed"}, "are not the draw's winners"),
        ({"seed": "00" * 32}, "does not match the published commitment"),
        ({"k": 3}, "are not the draw's winners"),
        ({"seed": "xyz"}, "not hexadecimal"),
    ],
)
def test_groupbuy_verify_refuses_a_record_that_does_not_match(
    tmp_path: Path, change: dict[str, Any], fragment: str
) -> None:
    if change.get("winners") == "reversed":  # the right winners in the wrong order
        change = {"winners": json.loads(_record(tmp_path).read_text())["winners"][::-1]}
    path = _record(tmp_path, **change)
    result = invoke("groupbuy", "verify", str(path))
    assert result.exit_code == 2
    assert fragment in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_groupbuy_verify_checks_a_draw_of_a_scenario_run(tmp_path: Path) -> None:
    out = json.loads(invoke("scenario", "run", str(EXAMPLES / "groups.json"), "--json").output)
    for name, record in [("c1.json", out["draws"]["c1"]), ("s1.json", out["groups"]["s1"])]:
        result = invoke("groupbuy", "verify", str(write(tmp_path, record, name)))
        assert result.exit_code == 0, result.output
        assert result.output.splitlines() == record["winners"]
