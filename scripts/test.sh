#!/usr/bin/env bash
# The whole test suite, on SQLite and on PostgreSQL, plus ruff, mypy --strict and the import
# contracts (lint-imports, [tool.importlinter] in pyproject.toml).
# Starts the local PostgreSQL server if it is down (as CI needs) and creates the test database.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_HOST=127.0.0.1
PG_DB=tokenmall_test
if ! pg_isready -q -h "$PG_HOST" -p 5432; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  for _ in $(seq 1 30); do pg_isready -q -h "$PG_HOST" -p 5432 && break; sleep 1; done
fi
if ! psql -h "$PG_HOST" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$PG_DB'" | grep -q 1; then
  psql -h "$PG_HOST" -U postgres -qc "CREATE DATABASE $PG_DB"
fi
export TOKENMALL_TEST_PG_URL="postgresql://postgres@$PG_HOST:5432/$PG_DB"
# the console's browser tests (tests/browser): Debian's Chromium, driven by Playwright through
# executable_path (never `playwright install`), and CJK fonts so Chinese renders in screenshots
if ! command -v chromium >/dev/null || [ ! -d /usr/share/fonts/opentype/noto ]; then
  echo "installing chromium and fonts-noto-cjk"
  apt-get install -y -q chromium fonts-noto-cjk \
    || { apt-get update -q && apt-get install -y -q chromium fonts-noto-cjk; }
fi

.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/mypy
.venv/bin/lint-imports
# Two workers (this machine has two cores); each has its own PostgreSQL database (tests/conftest.py)
# and SQLite files.  TOKENMALL_TEST_WORKERS=0 runs in one process.
.venv/bin/pytest -q -p no:cacheprovider -n "${TOKENMALL_TEST_WORKERS:-2}" "$@"
