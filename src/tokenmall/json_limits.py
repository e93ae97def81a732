"""JSON from outside, with its nesting bounded before it is parsed.

The standard library's parser recurses once per nested array or object: a document a few
thousand levels deep (``[[[[...]]]]`` fits many times over in a 64 KiB notification) raises
``RecursionError``, which no caller expects and which became a 500.  Nothing tokenmall reads
from a provider, a cursor or a file nests more than a handful of levels, so anything deeper
than :data:`MAX_JSON_DEPTH` is refused as malformed, with a clear message, before the parser
sees it.  The check itself is a flat scan (no recursion), linear in the text.

A leaf module (standard library only), so :mod:`tokenmall.payments` stays free of the service.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["MAX_JSON_DEPTH", "JsonTooDeep", "check_json_depth", "loads_bounded"]

MAX_JSON_DEPTH = 64

# a string literal (skipped whole, so brackets inside it do not count) or one bracket
_PART = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_OPENING = frozenset("[{")
_CLOSING = frozenset("]}")


class JsonTooDeep(ValueError):
    """The JSON nests arrays and objects deeper than allowed."""


def check_json_depth(text: str, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise :class:`JsonTooDeep` if ``text`` nests deeper than ``max_depth``.

    Only the nesting is checked; whether ``text`` is valid JSON is the parser's question.  An
    unterminated string is not skipped, so brackets after it count: such text is invalid JSON
    anyway, and refusing it for its depth is as good as refusing it for its syntax.
    """
    depth = 0
    for match in _PART.finditer(text):
        part = match.group()
        if part in _OPENING:
            depth += 1
            if depth > max_depth:
                raise JsonTooDeep(f"nested deeper than {max_depth} levels")
        elif part in _CLOSING:
            depth -= 1


def loads_bounded(text: str, *, max_depth: int = MAX_JSON_DEPTH, **kwargs: Any) -> Any:
    """``json.loads(text, **kwargs)`` for text no deeper than ``max_depth``.

    Raises :class:`JsonTooDeep` (a ``ValueError``) or ``json.JSONDecodeError``.
    """
    check_json_depth(text, max_depth)
    return json.loads(text, **kwargs)
