"""The least a paid-order request can do on this stack, served for ``http_ceiling.py``.

FastAPI + uvicorn as tokenmall serves them (sync route in the thread pool, Pydantic body and
answer, uvicorn's access log on), and per request what every order request of tokenmall does
at the very least: check a bearer token's HMAC, then one durable SQLite write (WAL,
``synchronous=FULL``, ``BEGIN IMMEDIATE``, one INSERT, COMMIT), writers queued on a lock as
tokenmall's writer gate queues them.  No tenant, no stock, no ledger: a ceiling, not a model.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
import threading
import time

from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel

DB = os.environ["CEILING_DB"]
KEY = b"ceiling-secret"
app = FastAPI()
_local = threading.local()
_gate = threading.Lock()


def token(member: str) -> str:
    return member + "." + hmac.new(KEY, member.encode(), hashlib.sha256).hexdigest()


def _conn() -> sqlite3.Connection:
    c: sqlite3.Connection | None = getattr(_local, "conn", None)
    if c is None:
        c = sqlite3.connect(DB, isolation_level=None, check_same_thread=False, timeout=60)
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=FULL")
        c.execute("PRAGMA busy_timeout=60000")
        _local.conn = c
    return c


class OrderIn(BaseModel):
    sku: int
    quantity: int
    client_ref: str


class OrderOut(BaseModel):
    id: int
    member: str
    sku: int
    quantity: int
    status: str


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/orders", status_code=201)
def create(body: OrderIn, authorization: str = Header()) -> OrderOut:
    member, _, mac = authorization.removeprefix("Bearer ").rpartition(".")
    if not hmac.compare_digest(token(member), f"{member}.{mac}"):
        raise HTTPException(401, "bad token")
    c = _conn()
    with _gate:
        c.execute("BEGIN IMMEDIATE")
        try:
            cur = c.execute(
                "INSERT INTO orders (member, sku, quantity, client_ref, at) VALUES (?, ?, ?, ?, ?)",
                (member, body.sku, body.quantity, body.client_ref, time.time()),
            )
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
    return OrderOut(
        id=cur.lastrowid or 0, member=member, sku=body.sku, quantity=body.quantity, status="new"
    )
