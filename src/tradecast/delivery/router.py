from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from tradecast.config import AppSettings
from tradecast.delivery import service
from tradecast.delivery.schemas import PollOut
from tradecast.delivery.wakeups import hub_of
from tradecast.devices.dependencies import SignedDeviceKey
from tradecast.errors import UnprocessableEntity, responses_for
from tradecast.kit import clock
from tradecast.signals.schemas import SignalOut
from tradecast.signed.errors import SIGNED_REQUEST_ERRORS, UnknownKey

router = APIRouter(prefix="/api/v1/exec", tags=["delivery"])


@router.get(
    "/poll",
    response_model=PollOut,
    responses=responses_for(*SIGNED_REQUEST_ERRORS, UnprocessableEntity),
)
async def poll(
    request: Request,
    key: SignedDeviceKey,
    settings: AppSettings,
    limit: Annotated[int, Query(ge=1, le=200, description="Most signals to return.")] = 50,
    wait: Annotated[
        int, Query(ge=0, le=30, description="Seconds to hold the request open for a signal.")
    ] = 0,
) -> Response:
    """Signals pending for the calling device, oldest first (device-signed).

    A signal stays in the answer until this device ACKs it or reports an error.
    With ``wait`` > 0 the request is held until a signal becomes pending or the
    time is up (long poll).
    """
    if key.owner_id is None:  # device keys always carry their owner
        raise UnknownKey()
    signals = await service.poll(
        request.app.state.db,
        hub_of(request),
        request.app.state.delivery_batcher,
        device_id=key.key_id,
        owner_id=key.owner_id,
        limit=limit,
        wait_s=wait,
    )
    now = clock.utcnow()
    answer = PollOut(
        signals=[SignalOut.of(signal, now) for signal in signals],
        server_time=now,
        poll_interval_s=settings.poll_interval_s,
    )
    # Serialised here, once: returned as a model, FastAPI would validate it again first.
    return Response(answer.model_dump_json(), media_type="application/json")
