"""The poll, served as a plain ASGI endpoint.

Devices poll all day, and through FastAPI's request handling (dependency
resolution, parameter binding, a second validation of the answer) a poll
spent more of its time in the framework than in its own work
(``docs/PERFORMANCE.md``). ``poll_endpoint`` takes the same steps itself, in the
order FastAPI took them, and raises the same errors, which the app's exception
handlers render as problems exactly as for every other route:

1. no NUL character in the query string (``boundaries.refuse_nul_characters``);
2. the signature, nonce and rate limit (``devices.dependencies.signed_device_key``);
3. ``limit`` and ``wait`` against ``PollQuery``'s constraints (a 422 names the field);
4. the poll itself (``delivery.service.poll``), its answer serialised once
   (``delivery.schemas.poll_answer``).

The middlewares (request id, access log, metrics, body limit) wrap it as they
wrap every route. The operation's OpenAPI entry is its FastAPI declaration in
``delivery/router.py``, from the same ``PollQuery`` and ``PollOut``; ``main.py``
puts this route in front of that declaration.
"""

from __future__ import annotations

import functools

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tradecast.boundaries import refuse_nul_characters
from tradecast.config import Settings
from tradecast.delivery import service
from tradecast.delivery.schemas import PollQuery, poll_answer
from tradecast.delivery.wakeups import hub_of
from tradecast.devices.dependencies import signed_device_key
from tradecast.kit import clock
from tradecast.kit.routing import PlainRoute, located
from tradecast.signed.errors import UnknownKey

POLL_PATH = "/api/v1/exec/poll"


async def poll_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    request = Request(scope, receive)
    await refuse_nul_characters(request)
    key = await signed_device_key(request)
    if key.owner_id is None:  # device keys always carry their owner
        raise UnknownKey()
    query = _poll_query(scope["query_string"])
    state = request.app.state
    signals = await service.poll(
        state.db,
        hub_of(request),
        state.delivery_batcher,
        state.look_batcher,
        device_id=key.key_id,
        owner_id=key.owner_id,
        limit=query.limit,
        wait_s=query.wait,
    )
    settings: Settings = state.settings
    answer = poll_answer(signals, clock.utcnow(), settings.poll_interval_s)
    response = Response(answer, media_type="application/json")
    await response(scope, receive, send)


@functools.lru_cache(maxsize=256)
def _poll_query(raw: bytes) -> PollQuery:
    """``limit`` and ``wait`` from the query string. A terminal polls with the same
    query all day: each string is parsed and validated once (a refused one is not
    kept, and is refused again each time)."""
    try:
        return PollQuery.model_validate(dict(QueryParams(raw)))
    except ValidationError as exc:
        raise RequestValidationError(located(exc, "query")) from None


class PollRoute(PlainRoute):
    def __init__(self) -> None:
        super().__init__(POLL_PATH, poll_endpoint, name="poll", method="GET")
