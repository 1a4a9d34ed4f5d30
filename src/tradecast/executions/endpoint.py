"""The device reports (ACK, fill, error), served as plain ASGI endpoints.

Terminals report every order they place, and through FastAPI's request
handling (dependency resolution, body binding, a second validation of the
answer) a report spent a sixth of its time resolving dependencies
(``docs/PERFORMANCE.md``). ``ReportRoute`` takes the same steps itself, in the
order FastAPI took them, and raises the same errors, which the app's exception
handlers render as problems exactly as for every other route:

1. the body read, and parsed as exact JSON when it says it is JSON
   (``kit.decimals``); JSON that does not parse is a 422 at ``body``, a body
   that cannot be read at all (invalid UTF-8) a 400;
2. the app-wide checks: a body that is not JSON is a 415
   (``boundaries.require_json_body``), a NUL character a 422
   (``boundaries.refuse_nul_characters``);
3. the signature, nonce and rate limit (``devices.dependencies.signed_device_key``);
4. the body against the report's model (a 422 names each field);
5. the report recorded (``executions.service.record``; fills on PostgreSQL
   through ``executions.batch``), answered 201 when stored now and 200 for a
   replay, serialised once.

The middlewares (request id, access log, metrics, body limit) wrap it as they
wrap every route. Each operation's OpenAPI entry is its FastAPI declaration in
``executions/router.py``, from the same models; ``main.py`` puts these routes in
front of those declarations.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tradecast.boundaries import is_json_media_type, refuse_nul_characters, require_json_body
from tradecast.config import Settings
from tradecast.db import statements_transaction
from tradecast.devices.dependencies import signed_device_key
from tradecast.executions import service
from tradecast.executions.batch import FillBatcher
from tradecast.executions.schemas import AckIn, ErrorIn, ExecutionOut, FillIn
from tradecast.kit.decimals import ExactJSONRequest
from tradecast.kit.routing import PlainRoute, located

REPORT_MODELS: dict[str, type[AckIn | FillIn | ErrorIn]] = {
    "/api/v1/exec/ack": AckIn,
    "/api/v1/exec/fill": FillIn,
    "/api/v1/exec/error": ErrorIn,
}
_NO_BODY = object()
_Model = TypeVar("_Model", bound=BaseModel)


class ReportRoute(PlainRoute):
    """``POST`` of one kind of report."""

    # Read by the app-wide checks (``boundaries``): this route takes a JSON body.
    body_field = True

    def __init__(self, path: str, name: str) -> None:
        model = REPORT_MODELS[path]

        async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
            await _report_endpoint(model, scope, receive, send)

        super().__init__(path, endpoint, name=name, method="POST")


def report_routes() -> list[ReportRoute]:
    return [ReportRoute(path, path.rsplit("/", 1)[1]) for path in REPORT_MODELS]


async def _report_endpoint(
    model: type[AckIn | FillIn | ErrorIn], scope: Scope, receive: Receive, send: Send
) -> None:
    request = ExactJSONRequest(scope, receive)
    body = await _read_body(request)
    await require_json_body(request)
    await refuse_nul_characters(request)
    key = await signed_device_key(request)
    report = _validated(model, body)
    state = request.app.state
    settings: Settings = state.settings
    recorded: service.Recorded | None = None
    # PostgreSQL: a fill is recorded in a batch with the fills that arrive with it
    # (``executions.batch``); what a batch hands back is recorded alone.
    batcher: FillBatcher | None = state.fill_batcher
    if isinstance(report, FillIn) and batcher is not None:
        recorded = await batcher.record(key, report)
    if recorded is None:
        async with statements_transaction(state.db, request) as statements:
            recorded = await service.record(statements, settings, key, report)
    answer = ExecutionOut.model_validate(recorded.report).model_dump_json()
    response = Response(
        answer, status_code=201 if recorded.created else 200, media_type="application/json"
    )
    await response(scope, receive, send)


async def _read_body(request: ExactJSONRequest) -> Any:
    """The body as FastAPI reads it before solving dependencies: parsed when its
    media type is JSON, the raw bytes otherwise (which ``require_json_body`` then
    refuses), nothing when empty."""
    try:
        raw = await request.body()
        if not raw:
            return _NO_BODY
        if is_json_media_type(request.headers.get("content-type", "")):
            return await request.json()
        return raw
    except json.JSONDecodeError as exc:
        error = {
            "type": "json_invalid",
            "loc": ("body", exc.pos),
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": exc.msg},
        }
        raise RequestValidationError([error], body=exc.doc) from exc
    except HTTPException:
        raise  # a body over the limit, stopped as it arrived (``boundaries.BodyLimit``)
    except Exception as exc:
        raise HTTPException(400, "There was an error parsing the body") from exc


def _validated(model: type[_Model], body: Any) -> _Model:
    """The body against ``model``, its errors located as FastAPI locates a body's."""
    if body is _NO_BODY:
        missing = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}
        raise RequestValidationError([missing])
    try:
        return model.model_validate(body, from_attributes=True)
    except ValidationError as exc:
        raise RequestValidationError(located(exc, "body")) from None
