"""Error classes and the one place that renders them as ``application/problem+json``."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, ClassVar

import orjson
from asyncpg.exceptions import (
    InterfaceError as PgInterfaceError,
)
from asyncpg.exceptions import (
    InternalClientError,
    OperatorInterventionError,
    PostgresConnectionError,
)
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from tradecast.kit.request_context import current_request_id

logger = logging.getLogger("tradecast.errors")

PROBLEM_MEDIA_TYPE = "application/problem+json"
# Driver errors that mean the server or the connection went away (SQLSTATE classes 08
# and 57, and asyncpg's client-side states of a connection cut mid-operation).
_CONNECTION_ERRORS = (
    PostgresConnectionError,
    OperatorInterventionError,
    PgInterfaceError,
    InternalClientError,
    ConnectionError,
)
PROBLEM_TYPE_BASE = "https://tradecast.dev/problems/"


class AppError(Exception):
    """Root of every error tradecast answers with on purpose.

    Subclasses fix ``status``, ``code`` and ``title``; ``detail`` is the one
    sentence for this occurrence and never carries a secret.
    """

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal server error"
    # Errors whose side effects are part of the answer (the audit event of a
    # failed login, the revocation of a stolen refresh-token family) set this so
    # the unit of work commits before the error is sent.
    keeps_changes: ClassVar[bool] = False

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        errors: Sequence[Mapping[str, str]] | None = None,
    ):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = dict(headers or {})
        # (field, message) pairs: a 422 a service raises names its fields like a validation one.
        self.errors = [dict(error) for error in errors] if errors is not None else None


class BadRequest(AppError):
    status = 400
    code = "bad_request"
    title = "Bad request"


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"
    title = "Authentication required"
    challenge: ClassVar[str] = "Bearer"

    def __init__(self, detail: str | None = None, *, headers: Mapping[str, str] | None = None):
        super().__init__(detail, headers={"WWW-Authenticate": self.challenge, **(headers or {})})


class Forbidden(AppError):
    status = 403
    code = "forbidden"
    title = "Not allowed"


class NotFound(AppError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(AppError):
    status = 409
    code = "conflict"
    title = "Conflict"


class UnprocessableEntity(AppError):
    status = 422
    code = "validation_error"
    title = "Invalid request"


class ServiceUnavailable(AppError):
    status = 503
    code = "service_unavailable"
    title = "Service unavailable"


class DatabaseUnavailable(ServiceUnavailable):
    code = "database_unavailable"
    title = "Database unavailable"


class Problem(BaseModel):
    """RFC 9457 problem details, as every error response carries them."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    request_id: str | None = None
    errors: list[dict[str, str]] | None = None


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    errors: Sequence[Mapping[str, str]] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": current_request_id(),
    }
    if errors is not None:
        body["errors"] = list(errors)
    return Response(
        content=orjson.dumps(body),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=dict(headers or {}),
    )


def responses_for(*errors: type[AppError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries declaring the problems an operation can answer."""
    declared: dict[int | str, dict[str, Any]] = {}
    for error in errors:
        entry = declared.setdefault(
            error.status,
            {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}, "description": ""},
        )
        codes = [c for c in entry["description"].split(", ") if c]
        entry["description"] = ", ".join([*codes, error.code])
    return declared


async def _app_error(_: Request, exc: AppError) -> Response:
    return problem_response(
        exc.status, exc.code, exc.title, exc.detail, headers=exc.headers, errors=exc.errors
    )


_HTTP_CODES = {
    # FastAPI's answer to a body it cannot decode at all (invalid UTF-8).
    400: ("malformed_body", "Malformed request body"),
    404: ("not_found", "No such resource"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("payload_too_large", "Request body too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
}


async def _http_error(_: Request, exc: StarletteHTTPException) -> Response:
    code, title = _HTTP_CODES.get(
        exc.status_code, (f"http_{exc.status_code}", HTTPStatus(exc.status_code).phrase)
    )
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail else title
    if exc.status_code == 404 and detail == "Not Found":
        detail = "No route matches this path"
    return problem_response(exc.status_code, code, title, detail, headers=exc.headers)


def _field_path(location: Sequence[int | str]) -> str:
    parts = [str(part) for part in location]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"} and len(parts) > 1:
        parts = parts[1:]
    return ".".join(parts)


async def _validation_error(_: Request, exc: RequestValidationError) -> Response:
    errors = [
        {"field": _field_path(err.get("loc", ())), "message": str(err.get("msg", "invalid"))}
        for err in exc.errors()
    ]
    return problem_response(
        422,
        UnprocessableEntity.code,
        UnprocessableEntity.title,
        "The request did not pass validation; see errors.",
        errors=errors,
    )


def _lost_connection(exc: DBAPIError) -> bool:
    """The driver error behind ``exc`` says the connection, not the statement, failed.

    asyncpg reports a server that went away mid-query ("connection was closed in
    the middle of operation", an administrator shutdown, "the database system is
    starting up") as errors SQLAlchemy wraps in its generic ``DBAPIError`` or
    ``InternalError``; a statement's own failure keeps its 500.
    """
    if exc.connection_invalidated:
        return True
    cause: BaseException | None = exc.orig
    while cause is not None:
        if isinstance(cause, _CONNECTION_ERRORS):
            return True
        cause = cause.__cause__
    return False


async def _driver_error(request: Request, exc: DBAPIError) -> Response:
    if _lost_connection(exc):
        return await _database_error(request, exc)
    # Not an outage: the same last-resort 500 the middleware gives, traceback logged.
    logger.error("unhandled database error", exc_info=exc)
    return problem_response(
        500, AppError.code, AppError.title, "An unexpected error occurred; quote the request id."
    )


async def _database_error(_: Request, exc: Exception) -> Response:
    # Lost connections, refused connects and pool timeouts: fail fast with a
    # retryable 503 rather than a 500; the pool reconnects once the server is back.
    logger.warning("database unavailable", extra={"error": type(exc).__name__})
    error = DatabaseUnavailable("The database is unreachable; retry shortly")
    return problem_response(
        error.status, error.code, error.title, error.detail, headers={"Retry-After": "1"}
    )


def install_error_handlers(app: FastAPI) -> None:
    # Starlette types handlers as taking any Exception; it dispatches by class, so each
    # handler only ever sees the class it is registered for.
    handlers: list[tuple[type[Exception], Any]] = [
        (AppError, _app_error),
        (StarletteHTTPException, _http_error),
        (RequestValidationError, _validation_error),
        (OperationalError, _database_error),
        (InterfaceError, _database_error),
        (PoolTimeout, _database_error),
        (DBAPIError, _driver_error),
        # asyncpg raises the OS error itself when a new connection is refused, and
        # its own connection errors on the statements run without SQLAlchemy
        # (Database.driver_connection).
        *((exc_class, _database_error) for exc_class in _CONNECTION_ERRORS),
    ]
    for exc_class, handler in handlers:
        app.add_exception_handler(exc_class, handler)
