"""``tokenmall serve`` as an operator runs it: real processes, real sockets, SQLite and
PostgreSQL.

``serve --workers 2``: orders are paid through the sandbox with the payment started on one
worker and completed on the other; of the two workers' schedulers exactly one runs the jobs
(the lease table names it, only its process logs the expiry, the other logs that it stands
by); a restart keeps the sandbox's intents, so a payment started before it is completed after.
A second ``serve`` on the busy port fails before it touches the database.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import make_url, select, text
from typer.testing import CliRunner

from tokenmall.cli import app
from tokenmall.store import schema as s
from tokenmall.store.db import create_db_engine, migrate

PG_URL = os.environ.get("TOKENMALL_TEST_PG_URL")
ADMIN = {"Authorization": "Bearer tokenmall-dev-admin"}
START_TIMEOUT = 120.0  # two fresh interpreters importing the app on a busy two-core machine


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database of this test's own: the server's scheduler runs on every tenant of
    its database, which must not be another test's."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'mall.db'}"
        engine = create_db_engine(url)
        migrate(engine)
        engine.dispose()
        yield url
        return
    if not PG_URL:
        pytest.skip("TOKENMALL_TEST_PG_URL is not set (make test sets it)")
    name = f"tm_serve_{uuid.uuid4().hex[:10]}"
    admin = create_db_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    engine = create_db_engine(url)
    migrate(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Server:
    """``python -m tokenmall serve`` in a subprocess, its logs (JSON lines) in a file."""

    def __init__(self, tmp_path: Path, url: str, *args: str) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = url
        self.args = args
        self.tmp_path = tmp_path
        self.runs = 0
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.runs += 1
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENMALL_")}
        env["TOKENMALL_SCHEDULER_INTERVAL"] = "0.5"
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self.stdout = self.tmp_path / f"stdout-{self.runs}.txt"
        self.stderr = self.tmp_path / f"stderr-{self.runs}.txt"
        command = [sys.executable, "-m", "tokenmall", "serve", "--port", str(self.port)]
        with self.stdout.open("w") as out, self.stderr.open("w") as err:
            self.proc = subprocess.Popen(
                [*command, "--db", self.url, "--log-json", *self.args],
                cwd=self.tmp_path,
                env=env,
                stdout=out,
                stderr=err,
                text=True,
            )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
        self.proc = None

    def logs(self) -> list[dict[str, Any]]:
        lines = self.stderr.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def output(self) -> str:
        return self.stdout.read_text()

    def health(self, client: httpx.Client) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                answer = client.get("/v1/health")
                if answer.status_code == 200:
                    return int(answer.json()["pid"])
            except httpx.TransportError:
                pass
            assert self.proc is not None
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start:\n{self.stderr.read_text()[-3000:]}")
            time.sleep(0.2)

    def clients(self, count: int) -> dict[int, httpx.Client]:
        """``count`` clients, each on a kept-alive connection to another worker (a connection
        is served by one worker for its lifetime), by the worker's pid."""
        clients: dict[int, httpx.Client] = {}
        deadline = time.monotonic() + START_TIMEOUT
        while len(clients) < count:
            assert time.monotonic() < deadline, f"only workers {sorted(clients)} answered"
            client = httpx.Client(base_url=self.base, timeout=30)
            pid = self.health(client)
            if pid in clients:
                client.close()
            else:
                clients[pid] = client
        return clients


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[list[Server]]:
    servers: list[Server] = []
    yield servers
    for server in servers:
        server.stop()


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def on(server: Server, clients: dict[int, httpx.Client], pid: int) -> httpx.Client:
    """The client whose connection worker ``pid`` serves (re-pinned if the server closed an
    idle connection and the client reconnected elsewhere)."""
    if server.health(clients[pid]) != pid:
        clients[pid].close()
        while True:
            client = httpx.Client(base_url=server.base, timeout=30)
            if server.health(client) == pid:
                clients[pid] = client
                break
            client.close()
    return clients[pid]


def _first_tenant(server: Server) -> dict[str, str]:
    """Run the commands ``serve`` printed for creating the first tenant and its key."""
    commands = [line.strip() for line in server.output().splitlines() if "curl" in line]
    assert len(commands) == 2, server.output()
    answers = []
    for command in commands:
        done = subprocess.run(shlex.split(command), capture_output=True, text=True, check=True)
        answers.append(json.loads(done.stdout))
    assert answers[0]["code"] == "my-mall", answers
    return {"Authorization": f"Bearer {answers[1]['key']}"}


def _stock_the_mall(client: httpx.Client, operator: dict[str, str]) -> int:
    base = "/v1/tenants/my-mall"
    merchant = ok(
        client.post(f"{base}/merchants", json={"code": "m1", "name": "Tea"}, headers=operator),
        201,
    )
    product = ok(
        client.post(
            f"{base}/products",
            json={
                "merchant_id": merchant["id"],
                "name": "Green tea",
                "skus": [{"name": "250g", "price": "100.00", "stock": 50}],
            },
            headers=operator,
        ),
        201,
    )
    ok(client.post(f"{base}/members", json={"code": "bob"}, headers=operator), 201)
    return int(product["skus"][0]["id"])


def _order(client: httpx.Client, operator: dict[str, str], sku: int) -> str:
    body = {"member": "bob", "lines": [{"sku_id": sku, "quantity": 1}]}
    order = ok(client.post("/v1/tenants/my-mall/orders", json=body, headers=operator), 201)
    return str(order["ref"])


def _start(client: httpx.Client, operator: dict[str, str], ref: str) -> dict[str, Any]:
    url = f"/v1/tenants/my-mall/orders/{ref}/payments"
    answer: dict[str, Any] = ok(client.post(url, json={}, headers=operator), 201)
    return answer


def _complete(client: httpx.Client, operator: dict[str, str], intent_id: str) -> None:
    url = f"/v1/tenants/my-mall/payments/sandbox/intents/{intent_id}/complete"
    ok(client.post(url, json={}, headers=operator))


def _status(client: httpx.Client, operator: dict[str, str], ref: str) -> str:
    return str(ok(client.get(f"/v1/tenants/my-mall/orders/{ref}", headers=operator))["status"])


def _served_by(logs: list[dict[str, Any]], fragment: str) -> set[int]:
    return {line["pid"] for line in logs if fragment in str(line.get("path", ""))}


def test_two_workers_pay_across_workers_run_one_scheduler_and_survive_a_restart(
    database: str, tmp_path: Path, serve: list[Server]
) -> None:
    server = Server(tmp_path, database, "--workers", "2", "--no-demo")
    serve.append(server)
    server.start()
    clients = server.clients(2)
    one, two = sorted(clients)
    assert "create a tenant" in server.output()
    operator = _first_tenant(server)
    sku = _stock_the_mall(on(server, clients, one), operator)

    # each order's payment is started on one worker and completed on the other
    refs = []
    for i in range(6):
        first, second = (one, two) if i % 2 == 0 else (two, one)
        ref = _order(on(server, clients, first), operator, sku)
        intent = _start(on(server, clients, first), operator, ref)["intent_id"]
        _complete(on(server, clients, second), operator, intent)
        assert _status(on(server, clients, first), operator, ref) == "paid"
        refs.append((ref, intent, first, second))
    logs = server.logs()
    for ref, intent, first, second in refs:
        assert _served_by(logs, f"/orders/{ref}/payments") == {first}
        assert _served_by(logs, f"/intents/{intent}/complete") == {second}

    # an unpaid order past its deadline expires once, by the one scheduler
    ok(
        on(server, clients, one).post(
            "/v1/tenants/my-mall/param-changes",
            json={"params": {"order_ttl_minutes": "0.01"}},
            headers=operator,
        ),
        201,
    )
    late = _order(on(server, clients, one), operator, sku)
    deadline = time.monotonic() + 30
    while _status(on(server, clients, two), operator, late) != "expired":
        assert time.monotonic() < deadline, "the scheduler never expired the order"
        time.sleep(0.3)
    time.sleep(1.5)  # a few more ticks: a second scheduler would show up now

    logs = server.logs()
    taken = [line for line in logs if "lease taken" in line["message"]]
    standby = [line for line in logs if "on standby" in line["message"]]
    expired = [line for line in logs if line["message"].startswith("expired ")]
    assert len(taken) == 1, taken
    holder_pid = taken[0]["pid"]
    assert holder_pid in (one, two)
    assert [line["pid"] for line in standby] == [({one, two} - {holder_pid}).pop()]
    assert [(line["pid"], line["message"].split()[1]) for line in expired] == [(holder_pid, "1")]
    engine = create_db_engine(database)
    try:
        with engine.connect() as conn:
            holder = conn.execute(select(s.scheduler_lease.c.holder)).scalars().all()
        assert len(holder) == 1
        assert holder[0].split(":")[1] == str(holder_pid)

        # a payment started before a restart is completed after it: its intent survived
        ok(
            on(server, clients, one).post(
                "/v1/tenants/my-mall/param-changes",
                json={"params": {"order_ttl_minutes": "15"}},
                headers=operator,
            ),
            201,
        )
        waiting = _order(on(server, clients, one), operator, sku)
        before = _start(on(server, clients, one), operator, waiting)
        for client in clients.values():
            client.close()
        server.stop()
        with engine.connect() as conn:  # a clean stop gives the lease up at once
            assert conn.execute(select(s.scheduler_lease.c.expires_at)).scalar() == 0.0
    finally:
        engine.dispose()
    server.start()
    clients = server.clients(2)
    client = next(iter(clients.values()))
    after = _start(client, operator, waiting)
    assert (after["attempt"], after["intent_id"]) == (before["attempt"], before["intent_id"])
    _complete(client, operator, after["intent_id"])
    assert _status(client, operator, waiting) == "paid"
    for client in clients.values():
        client.close()


def test_a_second_serve_on_a_busy_port_fails_before_touching_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        db = tmp_path / "mall.db"
        result = CliRunner().invoke(
            app, ["serve", "--port", str(port), "--db", f"sqlite:///{db}", "--demo"]
        )
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().splitlines() == [
        f"tokenmall: error: port {port} on 127.0.0.1 is already in use (another tokenmall "
        "serve?): choose another with --port"
    ]
    assert not db.exists()  # neither migrated nor seeded: the running server's keys stand
    assert "operator key" not in result.stdout
