"""What every route shares at the HTTP boundary: the body's size and media type,
and the problems those checks (and a database outage) can answer, declared in
every OpenAPI entry they apply to.

Bodies are limited to ``MAX_BODY_BYTES`` (64 KiB by default): the largest
legitimate request, a signal with every optional field, is well under 2 KiB,
and a limit stops a client from making the server buffer megabytes before
validation refuses them. A declared ``Content-Length`` over the limit is
refused before anything is read; a streamed body that grows past it is
stopped as it arrives. Both answer a 413 problem.
"""

from __future__ import annotations

import email.message
import functools
import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tradecast.errors import (
    AppError,
    DatabaseUnavailable,
    Problem,
    UnprocessableEntity,
    problem_response,
    responses_for,
)


class MalformedBody(AppError):
    """A body that is not text in the declared encoding (invalid UTF-8, for one)."""

    status = 400
    code = "malformed_body"
    title = "Malformed request body"


class PayloadTooLarge(AppError):
    status = 413
    code = "payload_too_large"
    title = "Request body too large"


class UnsupportedMediaType(AppError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class BodyLimit:
    """A 413 problem for a body over ``MAX_BODY_BYTES``.

    A declared ``Content-Length`` over the limit is refused before anything is
    read; a streamed body is counted as it arrives and stopped once it passes
    the limit. (FastAPI's own ``max_body_size`` would answer a declared length
    with a plain-text 413 in place of the problem, so it is not used.)
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._declared_length(scope) > self.max_body_bytes:
            error = PayloadTooLarge(self._detail())
            response = problem_response(error.status, error.code, error.title, error.detail)
            await response(scope, receive, send)
            return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # Raised inside the endpoint's body read, so the app's handler renders it.
                    raise StarletteHTTPException(413, self._detail())
            return message

        await self.app(scope, counted_receive, send)

    def _detail(self) -> str:
        return f"Request bodies are limited to {self.max_body_bytes} bytes"

    @staticmethod
    def _declared_length(scope: Scope) -> int:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return 0  # the HTTP server refuses a malformed length before we see it
        return 0


@functools.lru_cache(maxsize=64)
def is_json_media_type(content_type: str) -> bool:
    """``application/json`` or ``application/<anything>+json``, parameters aside,
    as FastAPI decides whether to parse a body (a client sends the same one all
    day: each is decided once)."""
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


async def require_json_body(request: Request) -> None:
    """A JSON body must say so: without this FastAPI hands a ``text/plain`` or
    form body to validation, which answers a confusing "should be a valid
    dictionary" 422 instead of naming the real mistake.

    Runs as an app-wide dependency, before authentication: it reads only headers.
    """
    route = request.scope.get("route")
    if getattr(route, "body_field", None) is None:
        return
    has_body = request.headers.get("content-length", "0") != "0" or (
        "transfer-encoding" in request.headers
    )
    content_type = request.headers.get("content-type", "")
    if has_body and not is_json_media_type(content_type):
        raise UnsupportedMediaType(
            f"Send the body as application/json, not {content_type or 'without a Content-Type'}"
        )


async def refuse_nul_characters(request: Request) -> None:
    """PostgreSQL text cannot hold U+0000: a string carrying one reached a query
    and failed there as a 500. Refused at the boundary as the 422 validation
    problem, naming each field, in the query and in JSON bodies (which can carry
    it only escaped, so other bodies cost a byte search).
    """
    # Only "%00" decodes to U+0000 (an overlong form decodes to U+FFFD): a query
    # without it is not parsed here at all.
    raw_query: bytes = request.scope.get("query_string", b"")
    errors = (
        [
            _nul_error(("query", name))
            for name, value in request.query_params.multi_items()
            if "\x00" in name or "\x00" in value
        ]
        if b"%00" in raw_query or b"\x00" in raw_query
        else []
    )
    if getattr(request.scope.get("route"), "body_field", None) is not None:
        # Already read and cached by FastAPI before dependencies are solved.
        body = await request.body()
        if b"\\u0000" in body:
            errors += [_nul_error(("body", *path)) for path in _nul_paths(body)]
    if errors:
        raise RequestValidationError(errors)


def _nul_error(location: tuple[str | int, ...]) -> dict[str, Any]:
    return {
        "type": "string_nul",
        "loc": location,
        "msg": "may not contain the NUL character (U+0000)",
        "input": None,
    }


def _nul_paths(body: bytes) -> list[tuple[str | int, ...]]:
    try:
        document = json.loads(body)
    except ValueError:
        return []  # malformed: validation names the error
    found: list[tuple[str | int, ...]] = []
    pending: list[tuple[tuple[str | int, ...], Any]] = [((), document)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, str) and "\x00" in value:
            found.append(path)
        elif isinstance(value, dict):
            for key, item in value.items():
                if "\x00" in key:
                    found.append((*path, key))
                pending.append(((*path, key), item))
        elif isinstance(value, list):
            pending.extend(((*path, index), item) for index, item in enumerate(value))
    return sorted(found, key=str)


_BODY_PROBLEMS = responses_for(MalformedBody, PayloadTooLarge, UnsupportedMediaType)
_VALIDATION_PROBLEM = responses_for(UnprocessableEntity)
_DATABASE_PROBLEM = responses_for(DatabaseUnavailable)
# Process probes that never touch the database.
_NO_DATABASE = {"/healthz", "/metrics"}


def _declare(operation: dict[str, Any], problems: dict[int | str, dict[str, Any]]) -> None:
    responses = operation.setdefault("responses", {})
    for status, entry in problems.items():
        responses.setdefault(
            str(status),
            {
                "description": entry["description"],
                "content": {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                },
            },
        )


def declare_shared_problems(app: FastAPI) -> None:
    """Add the boundary's problems to every OpenAPI operation they can happen on."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        if "Problem" not in schemas:
            schemas["Problem"] = Problem.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
        for path, item in document.get("paths", {}).items():
            for operation in item.values():
                if "requestBody" in operation:
                    _declare(operation, _BODY_PROBLEMS)
                if "requestBody" in operation or operation.get("parameters"):
                    _declare(operation, _VALIDATION_PROBLEM)
                if path not in _NO_DATABASE:
                    _declare(operation, _DATABASE_PROBLEM)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
