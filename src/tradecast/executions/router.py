from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import AwareDatetime

from tradecast.config import AppSettings, Settings
from tradecast.db import DbSession, DbStatements, Statements, statements_transaction
from tradecast.devices.dependencies import SignedDeviceKey
from tradecast.devices.errors import DeviceNotFound
from tradecast.errors import Unauthorized, UnprocessableEntity, responses_for
from tradecast.executions import quality, service
from tradecast.executions.batch import FillBatcher
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
from tradecast.signed.verification import SigningKey
from tradecast.users.dependencies import AdminUser, CurrentUser
from tradecast.users.errors import AdminRequired

router = APIRouter(prefix="/api/v1", tags=["executions"], route_class=ExactJSONRoute)

_REPORT_ERRORS = responses_for(
    *SIGNED_REQUEST_ERRORS, SignalNotDelivered, ReportIdReused, UnprocessableEntity
)
_REPLAYED: dict[int | str, dict[str, Any]] = {
    200: {"model": ExecutionOut, "description": "A replay of a stored report."}
}


async def _report(
    body: AckIn | FillIn | ErrorIn,
    key: SigningKey,
    statements: Statements,
    settings: Settings,
    response: Response,
) -> ExecutionOut:
    return _answered(await service.record(statements, settings, key, body), response)


def _answered(recorded: service.Recorded, response: Response) -> ExecutionOut:
    """201 for a report stored now, 200 for a replay of a stored one."""
    if not recorded.created:
        response.status_code = status.HTTP_200_OK
    return ExecutionOut.model_validate(recorded.report)


# The signature is verified (``SignedDeviceKey``) before the unit of work takes its
# connection; the service then checks the device's row in that unit of work.
@router.post(
    "/exec/ack",
    status_code=status.HTTP_201_CREATED,
    response_model=ExecutionOut,
    responses={**_REPORT_ERRORS, **_REPLAYED},
)
async def ack(
    body: AckIn,
    key: SignedDeviceKey,
    statements: DbStatements,
    settings: AppSettings,
    response: Response,
) -> ExecutionOut:
    """The device received the signal (device-signed). It leaves the device's poll.

    ``report_id`` is the idempotency key: the same report again answers 200 with the
    stored record; the same ``report_id`` with different content answers 409."""
    return await _report(body, key, statements, settings, response)


@router.post(
    "/exec/fill",
    status_code=status.HTTP_201_CREATED,
    response_model=ExecutionOut,
    responses={**_REPORT_ERRORS, **_REPLAYED},
)
async def fill(
    body: FillIn,
    key: SignedDeviceKey,
    settings: AppSettings,
    request: Request,
    response: Response,
) -> ExecutionOut:
    """A (partial) fill (device-signed). Each fill extends the device's trade on the signal:
    size summed, price size-weighted. Idempotent on ``report_id`` as for ACKs."""
    # PostgreSQL: recorded in a batch with the fills that arrive with it
    # (``executions.batch``); what a batch hands back is recorded alone.
    batcher: FillBatcher | None = request.app.state.fill_batcher
    recorded = await batcher.record(key, body) if batcher is not None else None
    if recorded is None:
        async with statements_transaction(request.app.state.db, request) as statements:
            recorded = await service.record(statements, settings, key, body)
    return _answered(recorded, response)


@router.post(
    "/exec/error",
    status_code=status.HTTP_201_CREATED,
    response_model=ExecutionOut,
    responses={**_REPORT_ERRORS, **_REPLAYED},
)
async def error(
    body: ErrorIn,
    key: SignedDeviceKey,
    statements: DbStatements,
    settings: AppSettings,
    response: Response,
) -> ExecutionOut:
    """The device could not execute the signal (device-signed). It leaves the device's poll
    and becomes an ``execution_error`` reconciliation issue. Idempotent on ``report_id``."""
    return await _report(body, key, statements, settings, response)


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
