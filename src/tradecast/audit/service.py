"""Audit events: written in the caller's transaction, so they commit or vanish with the action."""

from __future__ import annotations

import dataclasses
import enum
import logging
import uuid
from collections.abc import Sequence
from typing import Any, Required, TypedDict, Unpack

from sqlalchemy.ext.asyncio import AsyncSession

from tradecast.audit.models import AuditEvent, PendingEvent
from tradecast.audit.repository import AuditFilter, AuditRepository
from tradecast.kit import clock, ids
from tradecast.kit.jsonlog import redact
from tradecast.kit.pagination import PageParams
from tradecast.kit.request_context import current

logger = logging.getLogger("tradecast.audit")


class ActorType(enum.StrEnum):
    USER = "user"
    DEVICE = "device"
    PRODUCER = "producer"
    SYSTEM = "system"
    ANONYMOUS = "anonymous"


class EventFields(TypedDict, total=False):
    """Who did what to what, besides the action's name."""

    actor_type: Required[ActorType]
    actor_id: uuid.UUID | None
    target_type: str | None
    target_id: uuid.UUID | str | None
    metadata: dict[str, Any] | None


def record(session: AsyncSession, action: str, **fields: Unpack[EventFields]) -> AuditEvent:
    pending = event(action, **fields)
    recorded = AuditEvent(
        **{field.name: getattr(pending, field.name) for field in dataclasses.fields(pending)}
    )
    AuditRepository(session).add(recorded)
    logged(pending)
    return recorded


def event(action: str, **fields: Unpack[EventFields]) -> PendingEvent:
    """An event of this request, not yet written: for a unit of work that writes
    it with its own statements (the device report path), then calls ``logged``."""
    target_id = fields.get("target_id")
    context = current()
    return PendingEvent(
        id=ids.time_ordered(),
        occurred_at=clock.utcnow(),
        actor_type=fields["actor_type"].value,
        actor_id=fields.get("actor_id"),
        action=action,
        target_type=fields.get("target_type"),
        target_id=str(target_id) if target_id is not None else None,
        details=redact(fields.get("metadata") or {}),
        client_ip=context.client_ip if context else None,
        request_id=context.request_id if context else None,
    )


def logged(recorded: PendingEvent) -> None:
    logger.info(
        "audit",
        extra={
            "action": recorded.action,
            "actor_type": recorded.actor_type,
            "target_id": recorded.target_id,
        },
    )


async def search(
    session: AsyncSession, criteria: AuditFilter, page: PageParams
) -> tuple[Sequence[AuditEvent], int]:
    return await AuditRepository(session).page(criteria, page)
