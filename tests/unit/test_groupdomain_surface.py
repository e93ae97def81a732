"""The group-buy, draw and marketing domain stays pure, and the runner skips missing hooks."""

from __future__ import annotations

import subprocess
import sys
from datetime import date

from tokenmall.domain.marketing import MODELS, ORDER, DayClosed, ModelSet
from tokenmall.domain.marketing.base import implements


def test_the_new_domain_modules_import_nothing_that_does_io() -> None:
    code = (
        "import sys, tokenmall.domain.draw, tokenmall.domain.groupbuy, tokenmall.domain.groupfund,"
        " tokenmall.domain.marketing;"
        "io = ('sqlalchemy', 'psycopg', 'sqlite3', 'fastapi', 'httpx');"
        "bad = [m for m in io if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_documented_order_of_models() -> None:
    assert ORDER == ("distribution", "refer3", "chain21", "queue_free", "rebate")


def test_hooks_a_model_does_not_implement_are_skipped() -> None:
    ms = ModelSet.from_config({m: {} for m in ORDER}, compliance_override="test")
    day_close = [m.name for m in ms.models if implements(m, "on_day_closed")]
    assert day_close == ["rebate"]
    tasks = [m.name for m in ms.models if implements(m, "on_task_done")]
    assert tasks == ["chain21"]
    assert all(implements(m, "on_settled") for m in ms.models)
    assert ms.handle(ms.new_states(), DayClosed(date(2024, 1, 1)), _NoLinks()) == []
    assert set(MODELS) == set(ORDER)


class _NoLinks:
    def referrer_of(self, member: str) -> str | None:
        return None
