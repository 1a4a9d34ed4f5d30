"""The poll's OpenAPI declaration; ``delivery/endpoint.py`` serves it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from tradecast.delivery.schemas import PollOut, PollQuery
from tradecast.devices.dependencies import SignedDeviceKey
from tradecast.errors import UnprocessableEntity, responses_for
from tradecast.signed.errors import SIGNED_REQUEST_ERRORS

router = APIRouter(prefix="/api/v1/exec", tags=["delivery"])


@router.get(
    "/poll",
    response_model=PollOut,
    responses=responses_for(*SIGNED_REQUEST_ERRORS, UnprocessableEntity),
)
async def poll(key: SignedDeviceKey, query: Annotated[PollQuery, Query()]) -> PollOut:
    """Signals pending for the calling device, oldest first (device-signed).

    A signal stays in the answer until this device ACKs it or reports an error.
    With ``wait`` > 0 the request is held until a signal becomes pending or the
    time is up (long poll).
    """
    # Never reached: main.py routes the path to delivery.endpoint.PollRoute first,
    # which takes the steps this signature declares without FastAPI's request handling.
    raise NotImplementedError  # pragma: no cover
