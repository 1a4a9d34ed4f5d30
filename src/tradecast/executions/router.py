from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import AwareDatetime

from tradecast.db import DbSession
from tradecast.devices.dependencies import SignedDeviceKey
from tradecast.devices.errors import DeviceNotFound
from tradecast.errors import Unauthorized, UnprocessableEntity, responses_for
from tradecast.executions import quality, service
from tradecast.executions.errors import ReportIdReused, SignalNotDelivered
from tradecast.executions.repository import TradeFilter
from tradecast.executions.schemas import (
    AckIn,
    DeviceQualityOut,
    ErrorIn,
    ExecutionOut,
    FillIn,
    SummaryOut,
    TradeOut,
)
from tradecast.kit.decimals import ExactJSONRoute
from tradecast.kit.pagination import Page, Pagination
from tradecast.signals.errors import SignalNotFound
from tradecast.signed.errors import SIGNED_REQUEST_ERRORS
from tradecast.users.dependencies import AdminUser, CurrentUser
from tradecast.users.errors import AdminRequired

router = APIRouter(prefix="/api/v1", tags=["executions"], route_class=ExactJSONRoute)

_REPORT_ERRORS = responses_for(
    *SIGNED_REQUEST_ERRORS, SignalNotDelivered, ReportIdReused, UnprocessableEntity
)
_REPLAYED: dict[int | str, dict[str, Any]] = {
    200: {"model": ExecutionOut, "description": "A replay of a stored report."}
}


# The reports are served by ``executions.endpoint.ReportRoute`` (``main.py`` routes
# their paths there first), which takes the steps these signatures declare without
# FastAPI's request handling. These declarations give their OpenAPI entries.
_NOT_REACHED = "served by executions.endpoint.ReportRoute"


@router.post(
    "/exec/ack",
    status_code=status.HTTP_201_CREATED,
    response_model=ExecutionOut,
    responses={**_REPORT_ERRORS, **_REPLAYED},
)
async def ack(body: AckIn, key: SignedDeviceKey) -> ExecutionOut:
    """The device received the signal (device-signed). It leaves the device's poll.

    ``report_id`` is the idempotency key: the same report again answers 200 with the
    stored record; the same ``report_id`` with different content answers 409."""
    raise NotImplementedError(_NOT_REACHED)  # pragma: no cover


@router.post(
    "/exec/fill",
    status_code=status.HTTP_201_CREATED,
    response_model=ExecutionOut,
    responses={**_REPORT_ERRORS, **_REPLAYED},
)
async def fill(body: FillIn, key: SignedDeviceKey) -> ExecutionOut:
    """A (partial) fill (device-signed). Each fill extends the device's trade on the signal:
    size summed, price size-weighted. Idempotent on ``report_id`` as for ACKs."""
    raise NotImplementedError(_NOT_REACHED)  # pragma: no cover


@router.post(
    "/exec/error",
    status_code=status.HTTP_201_CREATED,
    response_model=ExecutionOut,
    responses={**_REPORT_ERRORS, **_REPLAYED},
)
async def error(body: ErrorIn, key: SignedDeviceKey) -> ExecutionOut:
    """The device could not execute the signal (device-signed). It leaves the device's poll
    and becomes an ``execution_error`` reconciliation issue. Idempotent on ``report_id``."""
    raise NotImplementedError(_NOT_REACHED)  # pragma: no cover


@router.get(
    "/exec/status/{signal_id}",
    response_model=list[ExecutionOut],
    responses=responses_for(Unauthorized, SignalNotFound, UnprocessableEntity),
)
async def execution_status(
    signal_id: uuid.UUID, user: CurrentUser, session: DbSession
) -> list[ExecutionOut]:
    """Execution records of the caller's devices for a signal, oldest first (admins: all)."""
    reports = await quality.status_of(session, signal_id, user)
    return [ExecutionOut.model_validate(report) for report in reports]


@router.get(
    "/exec/summary/{signal_id}",
    response_model=SummaryOut,
    responses=responses_for(Unauthorized, AdminRequired, SignalNotFound, UnprocessableEntity),
)
async def execution_summary(signal_id: uuid.UUID, _: AdminUser, session: DbSession) -> SummaryOut:
    """Delivery and execution across all devices for a signal, with execution quality."""
    return await quality.summary(session, signal_id)


@router.get(
    "/devices/{device_id}/execution-quality",
    response_model=DeviceQualityOut,
    responses=responses_for(Unauthorized, DeviceNotFound, UnprocessableEntity),
)
async def device_quality(
    device_id: uuid.UUID, user: CurrentUser, session: DbSession
) -> DeviceQualityOut:
    """How faithfully one of the caller's devices copies signals: ACK latency,
    slippage against entry prices and fill ratio against signal volumes."""
    return await quality.for_device(session, device_id, user)


@router.get(
    "/trades",
    response_model=Page[TradeOut],
    responses=responses_for(Unauthorized, UnprocessableEntity),
)
async def trades(
    user: CurrentUser,
    session: DbSession,
    page: Pagination,
    instrument: Annotated[str | None, Query(max_length=32, pattern=r"^[A-Z0-9._-]+$")] = None,
    since: Annotated[AwareDatetime | None, Query(description="Opened at or after.")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Opened before.")] = None,
) -> Page[TradeOut]:
    """The caller's trades, newest first."""
    items, total = await service.trades_of(
        session, user, TradeFilter(instrument=instrument, since=since, until=until), page
    )
    return Page(
        items=[TradeOut.model_validate(item) for item in items],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )
