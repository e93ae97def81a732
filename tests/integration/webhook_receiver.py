"""A webhook receiver on 127.0.0.1 for the tests: checks the signature, de-duplicates by
event id, and misbehaves on command (answers 500, answers too late, is not listening)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tokenmall.service.webhooks.signing import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    SignatureError,
    verify_signature,
)


class Receiver:
    """``script``: what the first requests get, in order ("500", "slow": answered after the
    sender gave up, "ok"); every later request is accepted."""

    def __init__(self, script: list[str] | None = None, *, slow: float = 1.0) -> None:
        self.secret = ""
        self.script = list(script or [])
        self.slow = slow
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []  # (event id, what it got)
        self.accepted: list[dict[str, Any]] = []  # every accepted body, duplicates included
        self.bad_signatures = 0
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        self.port: int = self._sock.getsockname()[1]
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def unique(self) -> list[dict[str, Any]]:
        """The accepted events de-duplicated by id, in the order first accepted."""
        seen: dict[str, dict[str, Any]] = {}
        with self.lock:
            for body in self.accepted:
                seen.setdefault(body["id"], body)
        return list(seen.values())

    def _handle(self, handler: BaseHTTPRequestHandler) -> tuple[int, bytes]:
        body = handler.rfile.read(int(handler.headers.get("Content-Length", "0")))
        try:
            verify_signature(self.secret, handler.headers.get(SIGNATURE_HEADER), body)
        except SignatureError:
            with self.lock:
                self.bad_signatures += 1
            return 400, b"bad signature"
        event = json.loads(body)
        assert handler.headers[EVENT_ID_HEADER] == event["id"]
        with self.lock:
            what = self.script.pop(0) if self.script else "ok"
            self.requests.append((event["id"], what))
        if what == "500":
            return 500, b"oops"
        if what == "slow":
            time.sleep(self.slow)  # the sender has given up; this one is processed anyway
        with self.lock:
            self.accepted.append(event)
        return 200, b"ok"

    @contextmanager
    def serving(self) -> Iterator[Receiver]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                status, text = receiver._handle(self)
                self.send_response(status)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(text)  # the sender may have timed out and left

            def log_message(self, *_args: Any) -> None:
                pass

        self._sock.close()
        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)

    def close(self) -> None:
        self._sock.close()
