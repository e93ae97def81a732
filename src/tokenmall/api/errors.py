"""Every error answer is ``{"error": {"code": ..., "message": ...}}``, whatever raised it.

Status codes (docs/API.md):

* 401 ``unauthenticated``: no credential, or one that is unknown, revoked, expired or forged;
* 403 ``forbidden``: a credential of this tenant whose scope does not allow the request;
* 404 ``not_found``: no such thing *for this caller*: another tenant's tenant, member or product
  answers exactly as one that does not exist;
* 409: a valid request the current state does not allow (``already_exists``, ``conflict``,
  ``out_of_stock``, ``insufficient_balance``, ``supply_exhausted``, ``idempotency_conflict``);
* 422: the request itself is invalid whatever the state (``validation_error`` for the shape,
  with ``details``; ``invalid_command``, ``invalid_parameter``, ``invalid_cursor``, ... for
  the rules);
* 429 ``rate_limited`` with ``Retry-After``; 503 ``unavailable`` when the database is;
* 500 ``internal_error`` / ``invariant_violation``: a bug, never a response to bad input.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tokenmall.domain.nfg import (
    AssetNotAccepted,
    ERC721IncorrectOwner,
    ERC721InsufficientApproval,
    ERC721InvalidApprover,
    ERC721NonexistentToken,
    ExchangeError,
    PolicyError,
    PriceFixed,
    SelfTransfer,
    UnknownListing,
)
from tokenmall.errors import (
    IdempotencyConflict,
    InsufficientBalance,
    InvalidCommand,
    InvariantViolation,
    NotFound,
    SupplyExhausted,
    TokenmallError,
)
from tokenmall.payments.errors import ProviderRefused, ProviderUnavailable
from tokenmall.service.errors import Conflict, Forbidden

__all__ = [
    "ERROR_RESPONSES",
    "ApiError",
    "ErrorBody",
    "ErrorDetail",
    "ErrorResponse",
    "install_error_handlers",
    "status_for",
]

log = logging.getLogger("tokenmall.api")

_STATUS: Mapping[type[TokenmallError], int] = {
    NotFound: 404,
    Conflict: 409,
    Forbidden: 403,
    IdempotencyConflict: 409,
    InsufficientBalance: 409,
    SupplyExhausted: 409,
    InvalidCommand: 422,
    InvariantViolation: 500,
    # NFG: ERC-721's errors and the collections' rules, by what the caller can do about them
    ERC721NonexistentToken: 404,
    UnknownListing: 404,
    ERC721InsufficientApproval: 403,
    ERC721InvalidApprover: 403,
    ERC721IncorrectOwner: 409,
    PolicyError: 409,
    ExchangeError: 409,
    AssetNotAccepted: 422,
    PriceFixed: 422,
    SelfTransfer: 422,
    # the payment provider refused the call or could not be reached: an upstream's answer
    ProviderRefused: 502,
    ProviderUnavailable: 502,
}
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


class ApiError(Exception):
    """An HTTP-level refusal (authentication, scope, rate limit) in the common JSON shape."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


class ErrorDetail(BaseModel):
    loc: list[str | int]
    message: str
    type: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


def _doc(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


# declared on every route, so the OpenAPI schema describes the answers clients really get
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    # found by the schemathesis fuzz (tests/api/test_schemathesis.py): a body that is not JSON
    # is answered 400 by the framework, and a refused provider notification is 400 too
    400: _doc("The body could not be parsed, or a provider notification was refused"),
    401: _doc("No valid credential"),
    403: _doc("The credential's scope does not allow this"),
    404: _doc("No such resource for this caller (also: another tenant's)"),
    409: _doc("The current state does not allow this"),
    422: _doc("Invalid request"),
    429: _doc("Rate limit reached; see Retry-After"),
    502: _doc("The payment provider refused the call or could not be reached"),
}


def status_for(exc: TokenmallError) -> int:
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return 500


def _error(
    status: int,
    code: str,
    message: str,
    *,
    details: Sequence[ErrorDetail] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(code=code, message=message, details=list(details) if details else None)
    return JSONResponse(
        {"error": _encodable(body.model_dump(exclude_none=True))},
        status_code=status,
        headers=headers,
    )


def _encodable(value: Any) -> Any:
    """``value`` with every string made encodable as UTF-8.

    Messages repeat what the caller sent (a parameter's name, a path segment), and JSON's
    ``\\ud800`` escape decodes to a lone surrogate, which UTF-8 cannot encode: rendering such a
    message failed, and a refusal became a 500.  Escaping here, where every error is rendered,
    keeps any message, present or future, answerable; the caller sees ``\\ud800`` as text.
    """
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_encodable(k): _encodable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encodable(v) for v in value]
    return value


def _loc(parts: Sequence[Any]) -> list[str | int]:
    return [p if isinstance(p, int) else str(p) for p in parts]


async def _on_api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _error(exc.status, exc.code, exc.message, headers=exc.headers)


async def _on_tokenmall_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TokenmallError)
    status = status_for(exc)
    if status >= 500:
        log.error("refused to commit a broken state", exc_info=exc)
        return _error(status, exc.code, "internal error; nothing was committed")
    return _error(status, exc.code, str(exc))


async def _on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        ErrorDetail(
            loc=_loc(e.get("loc", ())), message=str(e.get("msg", "")), type=str(e.get("type", ""))
        )
        for e in exc.errors()
    ]
    first = details[0] if details else None
    message = (
        f"{'.'.join(str(p) for p in first.loc)}: {first.message}" if first else "invalid request"
    )
    return _error(422, "validation_error", message, details=details)


async def _on_http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    if exc.status_code == 404:
        message = "no such resource"
    else:
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return _error(exc.status_code, code, message, headers=exc.headers)


async def _on_integrity_error(_request: Request, exc: Exception) -> JSONResponse:
    # the services check first and say what is wrong; this is the race they cannot see
    log.info("integrity error answered as 409: %s", exc)
    return _error(409, "conflict", "the request conflicts with a concurrent change; retry it")


async def _on_database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable: %s", exc)
    return _error(503, "unavailable", "the database is unavailable; retry later")


async def _on_overflow(_request: Request, _exc: Exception) -> JSONResponse:
    # SQLite raises OverflowError unwrapped for integers beyond 64 bits; PostgreSQL a DataError
    # for a value its column cannot hold.  Request models bound what they accept, so this is
    # the backstop that keeps bad input from becoming a 500.
    return _error(422, "invalid_command", "a value cannot be stored (out of range or not text)")


async def _on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", exc_info=exc)
    return _error(500, "internal_error", "internal error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(TokenmallError, _on_tokenmall_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(IntegrityError, _on_integrity_error)
    app.add_exception_handler(OperationalError, _on_database_unavailable)
    app.add_exception_handler(OverflowError, _on_overflow)
    app.add_exception_handler(DataError, _on_overflow)
    app.add_exception_handler(DBAPIError, _on_unexpected)
    app.add_exception_handler(Exception, _on_unexpected)
