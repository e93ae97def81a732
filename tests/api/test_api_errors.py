"""Every error is JSON in one shape, and no bad input gets a 500.

The garbage test walks the route table (the OpenAPI schema), so new routes are covered: each
one gets malformed bodies, out-of-range numbers, odd text and bad query strings from a caller
allowed to use it, and must answer with a 4xx in the error shape (or succeed).
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import ADMIN, Mall, assert_error, make_mall, ok
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tokenmall.api import create_app
from tokenmall.api.errors import _HTTP_CODES, ApiError, status_for
from tokenmall.errors import InvalidCommand, TokenmallError
from tokenmall.payments.errors import NotificationRejected
from tokenmall.scenario import ScenarioError
from tokenmall.settings import Settings


def _operations() -> list[tuple[str, str]]:
    schema = create_app(Settings(db_url="sqlite://")).openapi()
    return sorted((m.upper(), p) for p, ops in schema["paths"].items() for m in ops)


OPERATIONS = _operations()

GARBAGE_BODIES: list[Any] = [
    [],
    "text",
    17,
    None,
    {"name": {"$gt": ""}, "code": ["a"]},
    {"price": 1e308, "stock": 2**64, "merchant_id": 2**64, "ttl_seconds": 2**70},
    {"price": "99999999999999999999.99", "stock_delta": -(2**63)},
    {"params": {"pool_rate": "1" * 1000, "total_supply": "-5"}},
    {"params": {"total_supply": "1e999999"}},
    {"code": "nul\u0000byte", "name": "nul\u0000byte", "display_name": "\u0000"},
    {"name": "lone \ud800 surrogate", "code": "x\ud800"},
    # valid except for one text field, so the text reaches the database
    {"code": "nul1", "name": "nul\u0000", "display_name": "nul\u0000", "description": "\u0000"},
    {"code": "sur1", "name": "\ud800", "display_name": "\udfff", "description": "\ud800"},
    # a lone surrogate in a name the service itself repeats in its message (not a validation)
    {"params": {"\ud800": "1"}},
    {"params": {"\ud800": "1" * 41}},
    {"name": "名" * 300, "description": "长" * 30_000},
    {"scope": "merchant", "name": "k", "merchant_id": -1},
    {"invite_code": "'; DROP TABLE members; --", "referrer_invite_code": "%00"},
]
GARBAGE_QUERIES = [
    {"limit": "0"},
    {"limit": "501"},
    {"limit": "abc"},
    {"cursor": "%%%"},
    {"cursor": "YzE6LTE"},  # "c1:-1"
    {"cursor": "Yzo5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5"},
    {"merchant_id": "-3", "product_id": str(2**80)},
]


@pytest.fixture
def lenient(app: FastAPI) -> Iterator[TestClient]:
    """A client that reports a 500 as a response instead of raising the server's error."""
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _headers(path: str, mall: Mall) -> dict[str, str]:
    return mall.operator if "{tenant}" in path else ADMIN


def _check(r: Any) -> None:
    assert r.status_code < 500, (r.status_code, r.text)
    if r.status_code >= 400:
        assert_error(r, r.status_code)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_garbage_gets_a_500(lenient: TestClient, method: str, path: str) -> None:
    mall = make_mall(lenient)
    headers = _headers(path, mall)
    # ids this test does not know (routes added later) get a placeholder: a 404 is fine here
    values = {**dict.fromkeys(re.findall(r"\{(\w+)\}", path), "1"), **mall.path_values}
    url = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)
    as_json = {**headers, "content-type": "application/json"}
    for body in GARBAGE_BODIES:  # ASCII-escaped JSON, so lone surrogates get through as \ud800
        _check(lenient.request(method, url, content=json.dumps(body).encode(), headers=as_json))
    for query in GARBAGE_QUERIES:
        _check(lenient.request(method, url, params=query, headers=headers))
    _check(
        lenient.request(
            method,
            url,
            content=b"{not json",
            headers={**headers, "content-type": "application/json"},
        )
    )
    _check(lenient.request(method, url, content=b"\xff\xfe", headers=headers))
    for name, bad in (
        ("merchant_id", ["0", "-1", "abc", str(2**80), "1.5"]),
        ("product_id", ["0", "abc", str(2**80)]),
        ("sku_id", ["0", "abc", str(2**31)]),
        ("member", ["x" * 65, "%00", "..", "a b"]),
        ("key_id", ["x" * 33, "%00"]),
    ):
        if "{" + name + "}" not in path:
            continue
        for value in bad:
            url = re.sub(
                r"\{(\w+)\}",
                lambda m, n=name, v=value: v if m.group(1) == n else values[m.group(1)],
                path,
            )
            _check(lenient.request(method, url, json={}, headers=headers))


def test_unknown_routes_and_methods(client: TestClient, mall: Mall) -> None:
    for url in ("/nope", "/v1", "/v1/nope", "/v2/tenants", mall.url("/nope")):
        error = assert_error(client.get(url, headers=mall.operator), 404, "not_found")
        assert error["message"] == "no such resource"
    assert_error(client.delete("/v1/tenants", headers=ADMIN), 405, "method_not_allowed")
    assert_error(client.put(mall.url(""), headers=ADMIN, json={}), 405, "method_not_allowed")


def test_validation_errors_have_details(client: TestClient, mall: Mall) -> None:
    r = client.post(
        mall.url(f"/products/{mall.product_id}/skus"),
        json={"price": 1, "stock": -1, "colour": "red"},
        headers=mall.operator,
    )
    error = assert_error(r, 422, "validation_error")
    locs = {tuple(d["loc"]) for d in error["details"]}
    assert locs == {("body", "name"), ("body", "price"), ("body", "stock"), ("body", "colour")}
    assert all(d["message"] and d["type"] for d in error["details"])
    assert error["message"].startswith("body.")
    r = client.post(
        mall.url("/members"),
        content=b"{",
        headers={**mall.operator, "content-type": "application/json"},
    )
    assert_error(r, 422, "validation_error")


def test_pagination_parameters(client: TestClient, mall: Mall) -> None:
    url = mall.url("/members")
    for params in ({"limit": 0}, {"limit": 501}, {"limit": "x"}):
        assert_error(client.get(url, params=params, headers=mall.operator), 422, "validation_error")
    for cursor in ("garbage", "YWJj", "YzE6eA"):  # "abc", "c1:x"
        assert_error(
            client.get(url, params={"cursor": cursor}, headers=mall.operator), 422, "invalid_cursor"
        )
    page = ok(client.get(url, params={"limit": 500}, headers=mall.operator))
    assert len(page["items"]) == 2
    assert page["next_cursor"] is None


def test_server_errors_are_json_and_say_nothing_internal(app: FastAPI, mall: Mall) -> None:
    ctx = app.state.tokenmall

    class Boom:
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError("secret internals")

    ctx.ledger = Boom()
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get(mall.url("/members/alice"), headers=mall.operator)
    error = assert_error(r, 500, "internal_error")
    assert "secret" not in r.text
    assert error["message"] == "internal error"


# ----------------------------------------------------------------------------- unencodable text


@pytest.mark.parametrize(
    ("route", "body", "named"),
    [
        ("/param-changes", b'{"params": {"\\ud800": "1"}}', "\\ud800"),
        ("/param-changes", b'{"params": {"pool_rate": "0.1", "a\\udfffb": "1"}}', "a\\udfffb"),
        # pydantic's own message names the key with U+FFFD in place of each invalid byte
        ("/param-changes", b'{"params": {"\\ud800": "' + b"1" * 41 + b'"}}', "40 characters"),
        ("", b'{"code": "sur-2", "name": "x", "params": {"\\ud800": "1"}}', "\\ud800"),
    ],
    ids=["param-change", "param-change-second", "param-change-too-long", "new-tenant"],
)
def test_a_lone_surrogate_in_a_name_answers_422_with_the_name_escaped(
    client: TestClient, mall: Mall, route: str, body: bytes, named: str
) -> None:
    # JSON allows the \ud800 escape, which decodes to a lone surrogate: a str UTF-8 cannot
    # encode.  The service names the unknown parameter in its message, which once made the
    # error answer itself fail (500).
    url = mall.url(route) if route else "/v1/tenants"
    changes = ok(client.get(mall.url("/param-changes"), headers=ADMIN))["items"]
    headers = {**ADMIN, "content-type": "application/json"}
    error = assert_error(client.post(url, content=body, headers=headers), 422)
    assert named in error["message"]
    assert ok(client.get(mall.url("/param-changes"), headers=ADMIN))["items"] == changes
    assert_error(client.get("/v1/tenants/sur-2", headers=ADMIN), 404)


def test_every_error_message_is_encodable_whatever_it_holds(app: FastAPI) -> None:
    """The one place that renders errors escapes what UTF-8 cannot carry, so no message built
    from input (today's or a future one's) can turn a refusal into a 500."""

    @app.get("/test-surrogate/{kind}")
    def _raise(kind: str) -> None:
        if kind == "api":
            raise ApiError(403, "forbidden\ud800", "no \ud800 here", headers={})
        raise InvalidCommand("bad \udfff name \U0001f600")

    with TestClient(app, raise_server_exceptions=False) as c:
        error = assert_error(c.get("/test-surrogate/api"), 403)
        assert error == {"code": "forbidden\\ud800", "message": "no \\ud800 here"}
        error = assert_error(c.get("/test-surrogate/command"), 422, "invalid_command")
        # a lone surrogate is escaped; a valid pair (an emoji) was text and stays as it is
        assert error["message"] == "bad \\udfff name \U0001f600"


# ----------------------------------------------------------------------------- the error table

_ROOT = Path(__file__).resolve().parents[2]
_SRC = _ROOT / "src" / "tokenmall"


def _error_table() -> dict[str, str]:
    """docs/API.md's error table: code -> status (one row may name several codes)."""
    text = (_ROOT / "docs" / "API.md").read_text(encoding="utf-8")
    block = text[text.index("| status | code | meaning |") :]
    table: dict[str, str] = {}
    for line in block.splitlines()[2:]:
        if not line.startswith("|"):
            break
        status, codes = (cell.strip() for cell in line.strip("|").split("|")[:2])
        for code in re.findall(r"`([a-z0-9_]+)`", codes):
            table[code] = status
    return table


def _error_classes() -> list[type[TokenmallError]]:
    for info in pkgutil.walk_packages([str(_SRC)], "tokenmall."):
        if ".migrations" not in info.name and not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    found: list[type[TokenmallError]] = []
    todo: list[type[TokenmallError]] = [TokenmallError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def _raised_codes() -> set[str]:
    """Codes the API answers with by name: ApiError(...) in the routes, _error(...) in the
    handlers, and the HTTP codes of api/errors.py."""
    source = "\n".join(p.read_text(encoding="utf-8") for p in (_SRC / "api").rglob("*.py"))
    named = set(re.findall(r'(?:ApiError|_error)\(\s*\d+,\s*"([a-z_]+)"', source))
    return named | set(_HTTP_CODES.values())


def test_every_error_code_is_in_the_table_with_its_status() -> None:
    table = _error_table()
    missing = set()
    for cls in _error_classes():
        if cls.code not in table:
            missing.add(cls.code)
            continue
        if issubclass(cls, NotificationRejected):
            expected = "400"  # the notify route answers them 400 with their own code
        elif issubclass(cls, ScenarioError):
            expected = "—"  # the command line's only
        else:
            expected = str(status_for(cls.__new__(cls)))
        assert table[cls.code] == expected, (cls.code, table[cls.code], expected)
    missing |= _raised_codes() - set(table)
    assert not missing, f"codes missing from docs/API.md's error table: {sorted(missing)}"
    # and the table names nothing that does not exist
    known = {cls.code for cls in _error_classes()} | _raised_codes()
    assert set(table) <= known, sorted(set(table) - known)
