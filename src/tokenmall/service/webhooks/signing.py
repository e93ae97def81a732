"""Signing a webhook delivery, and checking the signature on the receiving side.

Header ``Tokenmall-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``,
as Stripe does: the timestamp is inside what is signed, so a captured delivery cannot be
replayed later with a fresh timestamp, and the receiver refuses one older than its tolerance.
Several ``v1=`` entries may appear (a secret being rotated): one matching is enough.

This module uses the standard library only, so an integrator may import it
(``from tokenmall.service.webhooks.signing import verify_signature``) or copy it whole.
"""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = [
    "DEFAULT_TOLERANCE",
    "EVENT_ID_HEADER",
    "EVENT_TYPE_HEADER",
    "SIGNATURE_HEADER",
    "SignatureError",
    "sign",
    "signature_header",
    "verify_signature",
]

SIGNATURE_HEADER = "Tokenmall-Signature"
EVENT_ID_HEADER = "Tokenmall-Event-Id"
EVENT_TYPE_HEADER = "Tokenmall-Event-Type"
DEFAULT_TOLERANCE = 300  # seconds either side of the receiver's clock


class SignatureError(ValueError):
    """The delivery is not signed by the secret, is malformed, or is too old or too new."""


def _bytes(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else body


def sign(secret: str, timestamp: int, body: bytes | str) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>.<body>"`` under ``secret``."""
    message = str(timestamp).encode() + b"." + _bytes(body)
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes | str, timestamp: int | None = None) -> str:
    """The ``Tokenmall-Signature`` value for ``body``, signed now (or at ``timestamp``)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={sign(secret, t, body)}"


def verify_signature(
    secret: str,
    header: str | None,
    body: bytes | str,
    tolerance: float = DEFAULT_TOLERANCE,
    *,
    now: float | None = None,
) -> int:
    """Check a delivery: ``header`` is its ``Tokenmall-Signature``, ``body`` the raw bytes
    received (before any JSON parsing: re-serialising changes them).  Returns the signed
    timestamp; raises :class:`SignatureError` if the signature does not match or the
    timestamp is more than ``tolerance`` seconds from ``now`` (the receiver's clock)."""
    if not header:
        raise SignatureError("no Tokenmall-Signature header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            if not value.isdigit():
                raise SignatureError("the signature's timestamp is not a number")
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError("the signature header needs t= and v1=")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError(f"the signature's timestamp is more than {tolerance} s away")
    expected = sign(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise SignatureError("the signature does not match the body")
    return timestamp
