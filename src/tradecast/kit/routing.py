"""Routes served by plain ASGI apps beside FastAPI's, for the endpoints devices
call all day (``delivery/endpoint.py``, ``executions/endpoint.py``)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Scope


class PlainRoute(Route):
    """One method of ``path`` served by ``app`` as it is, without Starlette's
    request-to-response wrapper (Starlette would also add ``HEAD`` to ``GET``),
    and named on the scope as FastAPI's routes are, for the access log and the
    metrics' route label. Kept out of the OpenAPI document: a FastAPI
    declaration of the same operation, matched after it, describes it there."""

    def __init__(self, path: str, app: ASGIApp, *, name: str, method: str) -> None:
        super().__init__(path, app, name=name, include_in_schema=False)
        self.app = app
        self.methods = {method}

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match != Match.NONE:
            child_scope["route"] = self
        return match, child_scope


def located(exc: ValidationError, where: str) -> list[dict[str, Any]]:
    """A model's errors located as FastAPI locates a parameter's: under ``where``
    (``"query"``, ``"body"``), for its ``RequestValidationError``."""
    return [
        {**error, "loc": (where, *error["loc"])}
        for error in exc.errors(include_url=False, include_context=False)
    ]
