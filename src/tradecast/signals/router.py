from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

from tradecast.config import AppSettings
from tradecast.db import DbSession
from tradecast.delivery.wakeups import notify_signal_approved, notify_signal_pending
from tradecast.errors import Unauthorized, UnprocessableEntity, responses_for
from tradecast.kit import clock
from tradecast.kit.decimals import ExactJSONRoute
from tradecast.kit.pagination import Page, Pagination
from tradecast.signals import service
from tradecast.signals.dependencies import SignalPublisher
from tradecast.signals.errors import AlreadyDecided, SignalNotFound, SignalNotOpen
from tradecast.signals.models import Decision, SignalStatus
from tradecast.signals.schemas import ApprovalOut, SignalCreate, SignalOut
from tradecast.signed.errors import SIGNED_REQUEST_ERRORS
from tradecast.users.dependencies import CurrentUser
from tradecast.users.errors import AdminRequired

# ExactJSONRoute: prices in the body are parsed as exact decimals, never as floats.
router = APIRouter(prefix="/api/v1/signals", tags=["signals"], route_class=ExactJSONRoute)

_PUBLISHER_ERRORS = (Unauthorized, *SIGNED_REQUEST_ERRORS, AdminRequired)
_REPLAYED: dict[int | str, dict[str, Any]] = {
    200: {
        "model": SignalOut,
        "description": "This producer already published this `external_id`: the original signal.",
    }
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SignalOut,
    responses={**_REPLAYED, **responses_for(*_PUBLISHER_ERRORS, UnprocessableEntity)},
)
async def publish_signal(
    body: SignalCreate,
    publisher: SignalPublisher,
    session: DbSession,
    settings: AppSettings,
    request: Request,
    response: Response,
) -> SignalOut:
    """Publish a signal, as a producer (signed request, SPEC §2) or an administrator
    (bearer token). Prices and sizes are decimals: send them as JSON strings (or
    numbers), they come back as strings, exactly. With an `external_id` the call is
    idempotent: publishing the same `external_id` again answers 200 with the original
    signal, whatever the new body says."""
    published = await service.publish(session, settings, publisher, body)
    if published.created:
        await notify_signal_pending(request, published.signal.id)
    else:
        response.status_code = status.HTTP_200_OK
    return SignalOut.of(published.signal, clock.utcnow())


@router.get(
    "",
    response_model=Page[SignalOut],
    responses=responses_for(Unauthorized, UnprocessableEntity),
)
async def list_signals(
    _: CurrentUser,
    session: DbSession,
    page: Pagination,
    status: Annotated[
        SignalStatus | None, Query(description="Only signals with this status now.")
    ] = None,
) -> Page[SignalOut]:
    """Signals, newest first. A signal past `expires_at` is `expired` here at once."""
    now = clock.utcnow()
    items, total = await service.list_signals(session, status, page, now=now)
    return Page(
        items=[SignalOut.of(item, now) for item in items],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get(
    "/{signal_id}",
    response_model=SignalOut,
    responses=responses_for(Unauthorized, SignalNotFound, UnprocessableEntity),
)
async def get_signal(signal_id: uuid.UUID, _: CurrentUser, session: DbSession) -> SignalOut:
    """One signal."""
    return SignalOut.of(await service.get_signal(session, signal_id), clock.utcnow())


@router.post(
    "/{signal_id}/cancel",
    response_model=SignalOut,
    responses=responses_for(*_PUBLISHER_ERRORS, SignalNotFound, SignalNotOpen, UnprocessableEntity),
)
async def cancel_signal(
    signal_id: uuid.UUID, publisher: SignalPublisher, session: DbSession
) -> SignalOut:
    """Cancel an open signal: devices no longer receive it. A producer cancels its own
    signals (another producer's answer 404); an administrator cancels any."""
    signal = await service.cancel(session, publisher, signal_id)
    return SignalOut.of(signal, clock.utcnow())


_DECISION_ERRORS = responses_for(
    Unauthorized, SignalNotFound, SignalNotOpen, AlreadyDecided, UnprocessableEntity
)


@router.post(
    "/{signal_id}/approve",
    status_code=status.HTTP_201_CREATED,
    response_model=ApprovalOut,
    responses=_DECISION_ERRORS,
)
async def approve_signal(
    signal_id: uuid.UUID, user: CurrentUser, session: DbSession, request: Request
) -> ApprovalOut:
    """Approve an open signal for your own devices (delivery mode `approval`). One
    decision per user and signal: a second one, either kind, is a 409."""
    approval = await service.decide(session, user.id, signal_id, Decision.APPROVED)
    # Only this user's devices can have gained a pending signal.
    await notify_signal_approved(request, user.id)
    return ApprovalOut.model_validate(approval)


@router.post(
    "/{signal_id}/reject",
    status_code=status.HTTP_201_CREATED,
    response_model=ApprovalOut,
    responses=_DECISION_ERRORS,
)
async def reject_signal(signal_id: uuid.UUID, user: CurrentUser, session: DbSession) -> ApprovalOut:
    """Reject an open signal: your devices will not receive it. One decision per user
    and signal: a second one, either kind, is a 409."""
    approval = await service.decide(session, user.id, signal_id, Decision.REJECTED)
    return ApprovalOut.model_validate(approval)
