"""Settings are validated at start-up: production refuses default, missing or short secrets;
``tokenmall serve`` migrates and seeds the demo mall and prints working credentials."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest
from api_helpers import assert_error, bearer, ok
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tokenmall.api import create_app
from tokenmall.cli import app as cli
from tokenmall.settings import (
    DEFAULT_ADMIN_TOKEN,
    DEFAULT_SECRET_KEY,
    InsecureSettings,
    Settings,
)

STRONG = "k" * 40
STRONG_ADMIN = "a" * 40


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TOKENMALL_") and name != "TOKENMALL_TEST_PG_URL":
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("secret", "admin", "fragment"),
    [
        (None, STRONG_ADMIN, "TOKENMALL_SECRET_KEY is not set"),
        (DEFAULT_SECRET_KEY, STRONG_ADMIN, "TOKENMALL_SECRET_KEY is not set"),
        ("   ", STRONG_ADMIN, "TOKENMALL_SECRET_KEY is not set"),
        ("short-secret", STRONG_ADMIN, "TOKENMALL_SECRET_KEY is 12 characters long"),
        (STRONG, None, "TOKENMALL_ADMIN_TOKEN is not set"),
        (STRONG, DEFAULT_ADMIN_TOKEN, "TOKENMALL_ADMIN_TOKEN is not set"),
        (STRONG, "x" * 31, "TOKENMALL_ADMIN_TOKEN is 31 characters long"),
        (STRONG, STRONG, "must differ"),
    ],
)
def test_production_refuses_weak_secrets(
    monkeypatch: pytest.MonkeyPatch, secret: str | None, admin: str | None, fragment: str
) -> None:
    monkeypatch.setenv("TOKENMALL_ENVIRONMENT", "production")
    if secret is not None:
        monkeypatch.setenv("TOKENMALL_SECRET_KEY", secret)
    if admin is not None:
        monkeypatch.setenv("TOKENMALL_ADMIN_TOKEN", admin)
    settings = Settings(db_url="sqlite://")
    with pytest.raises(InsecureSettings, match=fragment):
        settings.check_for_serving()
    with pytest.raises(InsecureSettings, match=fragment):
        create_app(settings)
    result = CliRunner().invoke(cli, ["serve", "--db", "sqlite://"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("tokenmall: error: TOKENMALL_")
    assert "refusing to start in production" in result.stderr
    assert "Traceback" not in result.stderr


def test_production_starts_with_strong_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENMALL_ENVIRONMENT", "production")
    monkeypatch.setenv("TOKENMALL_SECRET_KEY", STRONG)
    monkeypatch.setenv("TOKENMALL_ADMIN_TOKEN", STRONG_ADMIN)
    settings = Settings()
    assert settings.production
    settings.check_for_serving()
    # development accepts the defaults: a first `tokenmall serve` needs no setup
    Settings(environment="development").check_for_serving()


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENMALL_RATE_LIMIT_PER_SECOND", "5")
    monkeypatch.setenv("TOKENMALL_RATE_LIMIT_BURST", "7")
    monkeypatch.setenv("TOKENMALL_MEMBER_TOKEN_TTL_SECONDS", "120")
    s = Settings()
    assert (s.rate_limit_per_second, s.rate_limit_burst, s.member_token_ttl_seconds) == (5, 7, 120)
    assert "secret" not in repr(s.secret_key).lower().replace("secretstr", "")
    monkeypatch.setenv("TOKENMALL_ENVIRONMENT", "staging")
    with pytest.raises(ValueError, match="environment"):
        Settings()


# ----------------------------------------------------------------------------- serve


def _serve(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *args: str
) -> tuple[Any, dict[str, Any]]:
    """Run `tokenmall serve` in tmp_path with uvicorn.run replaced by a recorder."""
    import uvicorn  # noqa: PLC0415

    called: dict[str, Any] = {}

    def fake_run(app: Any, **kwargs: Any) -> None:
        called["app"] = app
        called.update(kwargs)

    monkeypatch.setattr(uvicorn, "run", fake_run)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["serve", *args])
    return result, called


def _credentials(output: str) -> dict[str, str]:
    out = {}
    for line in output.splitlines():
        parts = line.split()
        if parts and parts[-1].startswith(("tmk_", "tmt_")):
            out[" ".join(parts[:-1])] = parts[-1]
    return out


def test_serve_seeds_the_demo_mall_and_prints_working_credentials(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    result, called = _serve(monkeypatch, tmp_path, "--port", "8123")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "tokenmall.db").exists()
    assert "API docs at http://127.0.0.1:8123/docs" in result.output
    assert called["host"] == "127.0.0.1"
    assert called["port"] == 8123
    creds = _credentials(result.output)
    assert set(creds) == {
        "operator key",
        "merchant key (Tea House)",
        "member token (alice)",
        "member token (bob)",
    }
    assert re.search(rf"platform admin token +{DEFAULT_ADMIN_TOKEN} ", result.output)
    with TestClient(called["app"]) as client:
        base = "/v1/tenants/demo-mall"
        products = ok(client.get(f"{base}/products", headers=bearer(creds["operator key"])))
        assert len(products["items"]) >= 3
        product = ok(
            client.get(
                f"{base}/products/{products['items'][0]['id']}",
                headers=bearer(creds["member token (bob)"]),
            )
        )
        assert product["skus"][0]["stock"] > 0
        bob = ok(client.get(f"{base}/me", headers=bearer(creds["member token (bob)"])))
        assert bob["referrer"] == "alice"
        ok(client.get(f"{base}/merchants", headers=bearer(creds["merchant key (Tea House)"])))
        ok(client.get("/v1/tenants", headers=bearer(DEFAULT_ADMIN_TOKEN)))
    old = creds

    # a second start keeps the mall, issues new keys and revokes the old ones
    result, called = _serve(monkeypatch, tmp_path)
    assert result.exit_code == 0, result.output
    creds = _credentials(result.output)
    assert creds["operator key"] != old["operator key"]
    with TestClient(called["app"]) as client:
        base = "/v1/tenants/demo-mall"
        assert_error(client.get(base, headers=bearer(old["operator key"])), 401)
        products = ok(client.get(f"{base}/products", headers=bearer(creds["operator key"])))
        assert len(products["items"]) == 3
        members = ok(client.get(f"{base}/members", headers=bearer(creds["operator key"])))
        assert [m["code"] for m in members["items"]] == ["alice", "bob"]


def test_serve_on_another_database_needs_its_schema(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'other.db'}"
    result, called = _serve(monkeypatch, tmp_path, "--db", url)
    assert result.exit_code == 2
    assert "tokenmall db upgrade" in result.stderr
    assert not called
    assert CliRunner().invoke(cli, ["db", "upgrade", "--db", url]).exit_code == 0
    result, called = _serve(monkeypatch, tmp_path, "--db", url, "--host", "0.0.0.0")
    assert result.exit_code == 0, result.output
    assert "demo tenant" not in result.output
    # without the demo it says how to create the first tenant and key (tests/e2e/test_serve.py
    # runs these commands against a real server)
    assert "create a tenant (a mall) and its first operator API key" in result.output
    assert "http://0.0.0.0:8000/v1/tenants/my-mall/api-keys" in result.output
    assert "API docs at http://0.0.0.0:8000/docs" in result.output
    assert called["host"] == "0.0.0.0"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_runs_a_real_server(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENMALL_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tokenmall", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx2.get(f"{base}/v1/health").status_code == 200:
                    break
            except httpx2.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert httpx2.get(f"{base}/docs").status_code == 200
        r = httpx2.get(f"{base}/v1/tenants/demo-mall")
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthenticated"
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
    assert f"API docs at http://127.0.0.1:{port}/docs" in output
    assert "operator key" in output
