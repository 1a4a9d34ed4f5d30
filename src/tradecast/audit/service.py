"""Audit events: written in the caller's transaction, so they commit or vanish with the action."""

from __future__ import annotations

import enum
import logging
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tradecast.audit.models import AuditEvent
from tradecast.audit.repository import AuditFilter, AuditRepository
from tradecast.kit import clock
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


def record(
    session: AsyncSession,
    action: str,
    *,
    actor_type: ActorType,
    actor_id: uuid.UUID | None = None,
    target_type: str | None = None,
    target_id: uuid.UUID | str | None = None,
    metadata: dict[str, Any] | None = None,
) -> AuditEvent:
    recorded = event(
        action,
        actor_type=actor_type,
        actor_id=actor_id,
        target_type=target_type,
        target_id=target_id,
        metadata=metadata,
    )
    AuditRepository(session).add(recorded)
    logged(recorded)
    return recorded


def event(
    action: str,
    *,
    actor_type: ActorType,
    actor_id: uuid.UUID | None = None,
    target_type: str | None = None,
    target_id: uuid.UUID | str | None = None,
    metadata: dict[str, Any] | None = None,
) -> AuditEvent:
    """An event of this request, not yet written: for a unit of work that writes
    it with its own statements (the device report path), then calls ``logged``."""
    context = current()
    return AuditEvent(
        id=uuid.uuid4(),
        occurred_at=clock.utcnow(),
        actor_type=actor_type.value,
        actor_id=actor_id,
        action=action,
        target_type=target_type,
        target_id=str(target_id) if target_id is not None else None,
        details=redact(metadata or {}),
        client_ip=context.client_ip if context else None,
        request_id=context.request_id if context else None,
    )


def logged(recorded: AuditEvent) -> None:
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
