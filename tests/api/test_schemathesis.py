"""Property-based fuzzing of every operation in the OpenAPI schema (schemathesis).

For each operation, Hypothesis generates requests from the schema (bodies, query strings) and
sends them to the app in-process (ASGI) with the seeded tenant's operator key; every answer
must not be a 5xx, its status code must be one the schema lists for the operation, it must
carry the content type the schema declares, and its body must conform to the schema of its
status code.  Path parameters name the seeded tenant's real resources, so
the generated bodies reach the services instead of stopping at a 404 (tests/api/test_api_errors
already sends garbage ids and cursors to every route).

Bounded for the suite (``TOKENMALL_FUZZ_EXAMPLES``, default 12 examples per operation, about
a minute on 2 cores); ``make fuzz`` runs the same test with many more.
"""

from __future__ import annotations

import atexit
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from api_helpers import Mall, make_mall, make_settings
from fastapi.testclient import TestClient
from groupbuy_api_helpers import groupbuy_path_values
from hypothesis import HealthCheck, Phase, settings
from orders_helpers import aftersales_path_values, order_path_values
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from wallet_helpers import wallet_path_values

from tokenmall.api import create_app
from tokenmall.store.db import create_db_engine, migrate

EXAMPLES = int(os.environ.get("TOKENMALL_FUZZ_EXAMPLES", "12"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# TOKENMALL_FUZZ_CHECKS=all: every check schemathesis has (status codes the schema does not
# list, negative data accepted, ...): a finder of things to look at, not a gate
ALL_CHECKS = os.environ.get("TOKENMALL_FUZZ_CHECKS") == "all"


# The schema is loaded when the module is collected (schemathesis parametrizes from it), so
# the app exists from then on; its database is migrated and seeded by the fixture below.
_DIR = tempfile.TemporaryDirectory(prefix="tokenmall-fuzz-")
atexit.register(_DIR.cleanup)
_URL = f"sqlite:///{Path(_DIR.name) / 'tokenmall.db'}"
APP = create_app(make_settings(_URL))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module")
def fuzz_target() -> Iterator[tuple[Mall, dict[str, str]]]:
    """A mall, an order waiting for its sandbox payment and a withdrawal on the app's fresh
    SQLite file: the values of every path parameter."""
    engine = create_db_engine(_URL)
    migrate(engine)
    engine.dispose()
    with TestClient(APP) as client:
        mall = make_mall(client)
        values = dict(mall.path_values)
        values.update(order_path_values(client, mall))
        values.update(aftersales_path_values(client, mall))
        values.update(wallet_path_values(client, mall))
        values.update(groupbuy_path_values(client, mall))
        yield mall, values


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same cases every run: a suite that passes keeps passing
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_no_5xx_and_every_answer_matches_the_schema(
    case: schemathesis.Case, fuzz_target: tuple[Mall, dict[str, str]]
) -> None:
    mall, values = fuzz_target
    for name in list(case.path_parameters or {}):
        if name in values:
            case.path_parameters[name] = values[name]  # type: ignore[index]
    case.call_and_validate(headers=dict(mall.operator), checks=None if ALL_CHECKS else CHECKS)
