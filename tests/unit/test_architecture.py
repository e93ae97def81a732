"""The shape the code must keep: what the restructuring promised, checked on every run.

- nothing outside the ledger package touches a private member of a ledger object;
- the tenant lock is taken in one place (``Ledger.lock``): no other module locks the
  tenant's state row;
- only the order flow's ``providers`` module names a payment provider;
- no service module grows past 800 lines, no file of the order package past 500.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "tokenmall"
LEDGER = SRC / "service" / "ledger"
ORDERS = SRC / "service" / "orders"


def _py_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "migrations" not in p.parts)


def test_no_private_ledger_member_is_touched_outside_the_ledger_package() -> None:
    offenders = []
    for path in _py_files(SRC):
        if LEDGER in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                owner = node.value
                name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
                if name.lower().endswith("ledger"):
                    offenders.append(f"{path.relative_to(SRC)}:{node.lineno} .{node.attr}")
    assert offenders == []


def test_the_tenant_state_row_is_locked_only_by_the_ledger() -> None:
    offenders = []
    for path in _py_files(SRC):
        if LEDGER in path.parents:
            continue
        tree = ast.parse(path.read_text())
        names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)]
        locks = "with_for_update" in names or any(
            isinstance(v, str) and "FOR UPDATE" in v for v in strings
        )
        state = "tenant_state" in names or any(
            isinstance(v, str) and "tenant_state" in v for v in strings
        )
        if locks and state:
            offenders.append(str(path.relative_to(SRC)))
    assert offenders == []


def test_only_the_providers_module_names_a_payment_provider() -> None:
    offenders = []
    for path in _py_files(ORDERS):
        if path.name == "providers.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in ("sandbox", "wechat", "wallet"):
                offenders.append(f"{path.name}:{node.lineno} {node.value!r}")
    assert offenders == []


def test_service_modules_stay_small() -> None:
    sizes = {p: len(p.read_text().splitlines()) for p in _py_files(SRC / "service")}
    assert {str(p.relative_to(SRC)): n for p, n in sizes.items() if n > 800} == {}
    big = {p.name: n for p, n in sizes.items() if ORDERS in p.parents and n > 500}
    assert big == {}
