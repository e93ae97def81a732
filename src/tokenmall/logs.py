"""Logging of the long-running commands (``tokenmall serve``, ``tokenmall worker``).

One configuration for tokenmall's loggers and uvicorn's, as a :func:`logging.config.dictConfig`
dictionary: uvicorn applies it itself in every worker process it starts (a worker is a fresh
interpreter that inherits no logging set-up), and ``worker`` applies it directly.  Every line
carries the process id, so the lines of ``serve --workers N`` can be told apart: which worker
answered a request, which one runs the scheduler.  ``json``: one JSON object per line, for a
log collector; an access log line also carries its client, method, path and status as fields.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any, TextIO

__all__ = ["JsonFormatter", "StderrHandler", "log_config"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"
_ACCESS_ARGS = 5  # uvicorn.access: client, method, path, http version, status


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON: time (UTC, ISO 8601), level, logger, pid, message."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        args = record.args
        access = record.name == "uvicorn.access" and isinstance(args, tuple)
        if access and isinstance(args, tuple) and len(args) == _ACCESS_ARGS:
            client, method, path, _version, status = args
            line.update(client=client, method=method, path=path, status=status)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record comes, not the stream it was at
    set-up: a command run inside another program (a test runner) sees stderr swapped and
    closed after it returns, and a handler holding the old stream would fail on it."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def log_config(*, json_lines: bool = False, level: str = "INFO") -> dict[str, Any]:
    """The :func:`logging.config.dictConfig` of ``serve`` and ``worker``: everything to
    stderr through one handler, tokenmall's and uvicorn's loggers at ``level``."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if json_lines else {"format": TEXT_FORMAT}
    )
    named = {"level": level, "handlers": [], "propagate": True}
    return {
        "version": 1,
        # loggers made at import time (every module's ``log``) must keep working
        "disable_existing_loggers": False,
        "formatters": {"tokenmall": formatter},
        "handlers": {"stderr": {"class": f"{__name__}.StderrHandler", "formatter": "tokenmall"}},
        "loggers": {
            "tokenmall": dict(named),
            "uvicorn": dict(named),
            "uvicorn.error": dict(named),
            "uvicorn.access": dict(named),
        },
        "root": {"level": "WARNING", "handlers": ["stderr"]},
    }
