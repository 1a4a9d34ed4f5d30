from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from tradecast.db import DbSession
from tradecast.errors import Unauthorized, UnprocessableEntity, responses_for
from tradecast.kit.pagination import Page, Pagination
from tradecast.producers import service
from tradecast.producers.errors import ProducerInactive, ProducerNameTaken, ProducerNotFound
from tradecast.producers.schemas import (
    ProducerCreate,
    ProducerCreated,
    ProducerOut,
    ProducerSecret,
)
from tradecast.signed.dependencies import AppSecretBox
from tradecast.users.dependencies import AdminUser
from tradecast.users.errors import AdminRequired

router = APIRouter(prefix="/api/v1/admin/producers", tags=["producers"])

_ADMIN_ERRORS = (Unauthorized, AdminRequired)


def _no_store(response: Response) -> None:
    # The body holds a secret: no browser, proxy or client cache may keep a copy.
    response.headers["Cache-Control"] = "no-store"


@router.get(
    "",
    response_model=Page[ProducerOut],
    responses=responses_for(*_ADMIN_ERRORS, UnprocessableEntity),
)
async def list_producers(_: AdminUser, session: DbSession, page: Pagination) -> Page[ProducerOut]:
    """Every producer, newest first, active or not. Secrets are never listed."""
    items, total = await service.list_producers(session, page)
    return Page(
        items=[ProducerOut.model_validate(item) for item in items],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ProducerCreated,
    responses=responses_for(*_ADMIN_ERRORS, ProducerNameTaken, UnprocessableEntity),
)
async def create_producer(
    body: ProducerCreate,
    admin: AdminUser,
    session: DbSession,
    box: AppSecretBox,
    response: Response,
) -> ProducerCreated:
    """Register a strategy engine. The response holds its HMAC secret, the only time the
    secret is ever shown; the producer signs with `X-Key-Id` = its `id`."""
    issued = await service.create_producer(session, box, body.name, admin_id=admin.id)
    _no_store(response)
    return ProducerCreated(
        **ProducerOut.model_validate(issued.producer).model_dump(), secret=issued.secret
    )


@router.post(
    "/{producer_id}/deactivate",
    response_model=ProducerOut,
    responses=responses_for(*_ADMIN_ERRORS, ProducerNotFound, UnprocessableEntity),
)
async def deactivate_producer(
    producer_id: uuid.UUID, admin: AdminUser, session: DbSession
) -> ProducerOut:
    """Stop the producer for good: its signed requests are refused with 401 `key_inactive`.
    Its signals stay. Deactivating an inactive producer changes nothing."""
    producer = await service.deactivate(session, producer_id, admin_id=admin.id)
    return ProducerOut.model_validate(producer)


@router.post(
    "/{producer_id}/rotate-secret",
    response_model=ProducerSecret,
    responses=responses_for(
        *_ADMIN_ERRORS, ProducerNotFound, ProducerInactive, UnprocessableEntity
    ),
)
async def rotate_producer_secret(
    producer_id: uuid.UUID,
    admin: AdminUser,
    session: DbSession,
    box: AppSecretBox,
    response: Response,
) -> ProducerSecret:
    """Issue a new HMAC secret, shown once; the old secret stops working at once."""
    issued = await service.rotate_secret(session, box, producer_id, admin_id=admin.id)
    _no_store(response)
    return ProducerSecret(id=issued.producer.id, secret=issued.secret)
