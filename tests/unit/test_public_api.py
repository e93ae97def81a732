"""The public surface is deliberate: a name added or removed here is an API change."""

import subprocess
import sys

import tokenmall

EXPECTED = {
    "BuyPoints",
    "CloseDay",
    "Command",
    "Economy",
    "Exchange",
    "IdempotencyConflict",
    "InsufficientBalance",
    "InvalidCommand",
    "InvalidParameter",
    "InvariantViolation",
    "Join",
    "Ledger",
    "NotFound",
    "Outcome",
    "Pay",
    "PayoutResult",
    "Purchase",
    "Redeem",
    "Refund",
    "Sell",
    "Settle",
    "SupplyExhausted",
    "TenantParams",
    "TokenmallError",
    "UnknownMember",
    "Withdraw",
    "create_db_engine",
    "migrate",
}


def test_public_api_is_what_it_should_be() -> None:
    assert set(tokenmall.__all__) == EXPECTED
    for name in tokenmall.__all__:
        assert getattr(tokenmall, name) is not None


def test_every_public_error_is_a_tokenmall_error() -> None:
    for name in tokenmall.__all__:
        obj = getattr(tokenmall, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, tokenmall.TokenmallError), name


def test_the_domain_imports_no_database_driver() -> None:
    code = (
        "import sys, tokenmall.domain.economy, tokenmall.domain.dividends;"
        "bad = [m for m in ('sqlalchemy', 'psycopg', 'sqlite3', 'fastapi') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
