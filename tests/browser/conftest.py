"""Fixtures of the browser tests: Debian's Chromium driven by Playwright (one browser per test
session, a fresh context per test), the served app (API and console) run by uvicorn in a
thread on each backend, and a page that fails its test on any console error or any request
leaving 127.0.0.1."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import uvicorn
from console_helpers import ADMIN_TOKEN, SECRET_KEY, Served, Watch
from playwright.sync_api import Browser, Page, Route, sync_playwright

from tokenmall.asgi import create_app
from tokenmall.settings import Settings
from tokenmall.store.db import create_db_engine, migrate

CHROMIUM = "/usr/bin/chromium"
START_TIMEOUT = 30.0


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is not installed (scripts/test.sh installs it)")
    with sync_playwright() as p:
        found = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        yield found
        found.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """The app on one backend, served over a real socket (tests are isolated by tenant)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('console') / 'console.db'}"
        engine = create_db_engine(url)
        migrate(engine)
        engine.dispose()
    else:
        url = request.getfixturevalue("_pg_url")
    settings = Settings(
        db_url=url, admin_token=ADMIN_TOKEN, secret_key=SECRET_KEY, rate_limit_per_second=0
    )
    app = create_app(settings)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the console's server did not start")
        time.sleep(0.02)
    try:
        yield Served(f"http://127.0.0.1:{port}", app.state.services)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def watch() -> Watch:
    return Watch()


@pytest.fixture
def page(browser: Browser, watch: Watch) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="zh-CN")

    def guard(route: Route) -> None:
        host = urlsplit(route.request.url).hostname
        if route.request.url.startswith("data:") or host == "127.0.0.1":
            route.continue_()
        else:
            watch.outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    found = context.new_page()

    def on_console(msg: Any) -> None:
        if msg.type == "error":
            watch.errors.append(msg.text)

    def on_dialog(dialog: Any) -> None:
        watch.dialogs.append(dialog.message)
        dialog.dismiss()

    found.on("console", on_console)
    found.on("pageerror", lambda exc: watch.errors.append(str(exc)))
    found.on("dialog", on_dialog)
    yield found
    context.close()
    assert watch.outside == [], f"requests left 127.0.0.1: {watch.outside}"
    assert watch.dialogs == [], f"a script ran: {watch.dialogs}"
