"""Alembic environment: runs on the connection tokenmall hands over (see store.db.migrate),
or on TOKENMALL_DB_URL when called from the alembic command line."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

from tokenmall.store.db import create_db_engine
from tokenmall.store.schema import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


conn = config.attributes.get("connection")
if conn is not None:
    _run(conn)
else:
    engine = create_db_engine(os.environ.get("TOKENMALL_DB_URL", "sqlite:///tokenmall.db"))
    with engine.begin() as c:
        _run(c)
