"""The nesting bound on JSON from outside (tokenmall.json_limits): the flat scan counts what
the parser would nest, ignores brackets inside strings, and never recurses itself."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenmall.json_limits import MAX_JSON_DEPTH, JsonTooDeep, check_json_depth, loads_bounded


def depth_of(value: Any) -> int:
    """How deep the parser nests ``value`` (the reference the scan must agree with)."""
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    return 0


# text that is mostly brackets, quotes and backslashes: what could fool the scan
_tricky_text = st.text(alphabet='[]{}"\\,: ab\n\u00e9\ud7ff', max_size=12)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | _tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_tricky_text, inner, max_size=3),
    max_leaves=40,
)


@given(_json_values, st.integers(min_value=0, max_value=12), st.booleans())
def test_the_scan_agrees_with_the_parsers_nesting(value: Any, limit: int, indent: bool) -> None:
    text = json.dumps(value, indent=1 if indent else None, ensure_ascii=False)
    if depth_of(value) > limit:
        with pytest.raises(JsonTooDeep, match=f"nested deeper than {limit} levels"):
            loads_bounded(text, max_depth=limit)
    else:
        assert loads_bounded(text, max_depth=limit) == value


@pytest.mark.usefixtures("default_recursion_limit")
@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 100_000 + "1" + "}" * 100_000,
        "[" * 100_000,  # not even closed: refused for its depth before the parser sees it
    ],
    ids=["arrays", "objects", "unclosed"],
)
def test_far_too_deep_is_refused_without_recursion(text: str) -> None:
    with pytest.raises(JsonTooDeep):
        loads_bounded(text)


def test_the_bound_is_inclusive() -> None:
    at = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    check_json_depth(at)
    with pytest.raises(JsonTooDeep):
        check_json_depth("[" + at + "]")
    assert issubclass(JsonTooDeep, ValueError)  # callers that refuse bad JSON refuse this too


def test_brackets_in_strings_and_escaped_quotes_are_text() -> None:
    text = json.dumps({"s": "[" * 1000 + '\\"[{' * 100, "t": ["\\", "]]]"]})
    assert loads_bounded(text)["t"] == ["\\", "]]]"]
