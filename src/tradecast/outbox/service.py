"""The outbox: events written in the transaction of their cause, delivered after commit.

A dispatcher hands due events to the handler registered for their topic, with
retries and exponential backoff; an event whose topic has no handler yet
simply waits. Delivery is at least once: an event is marked delivered in the
transaction that handed it over, so a process dying between a handler's
success and that commit sends it again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tradecast.db import Database
from tradecast.kit import clock, ids
from tradecast.outbox.models import OutboxEvent
from tradecast.outbox.repository import OutboxRepository

logger = logging.getLogger("tradecast.outbox")

Handler = Callable[[OutboxEvent], Awaitable[None]]
MAX_ATTEMPTS = 12
MAX_BACKOFF_S = 3600
BATCH = 50


class RetryLater(Exception):
    """A handler asks for the event to be retried no earlier than ``after_s``."""

    def __init__(self, after_s: float, reason: str) -> None:
        super().__init__(reason)
        self.after_s = after_s


class DropEvent(Exception):
    """A handler declares the event undeliverable for good (e.g. the bot was blocked)."""


def emit(session: AsyncSession, topic: str, payload: dict[str, Any]) -> OutboxEvent:
    now = clock.utcnow()
    event = OutboxEvent(
        id=ids.time_ordered(),
        topic=topic,
        payload=payload,
        created_at=now,
        available_at=now,
        attempts=0,
    )
    OutboxRepository(session).add(event)
    return event


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(2**attempts, MAX_BACKOFF_S))


async def dispatch_due(db: Database, handlers: Mapping[str, Handler]) -> int:
    """Deliver due events of the topics that have handlers; returns how many were delivered."""
    if not handlers:
        return 0
    async with db.sessionmaker() as session, session.begin():
        now = clock.utcnow()
        events = await OutboxRepository(session).claim_due(list(handlers), now, BATCH)
        delivered = 0
        for event in events:
            delivered += await _deliver(event, handlers[event.topic], now)
    return delivered


async def _deliver(event: OutboxEvent, handler: Handler, now: datetime) -> int:
    event.attempts += 1
    try:
        await handler(event)
    except RetryLater as retry:
        event.available_at = now + timedelta(seconds=retry.after_s)
        event.last_error = str(retry)[:500]
        return 0
    except DropEvent as drop:
        event.dead_at = now
        event.last_error = str(drop)[:500]
        logger.info("outbox event dropped", extra={"topic": event.topic, "reason": str(drop)})
        return 0
    except Exception as exc:
        event.last_error = f"{type(exc).__name__}: {exc}"[:500]
        if event.attempts >= MAX_ATTEMPTS:
            event.dead_at = now
            logger.error("outbox event gave up", extra={"topic": event.topic})
        else:
            event.available_at = now + backoff(event.attempts)
            logger.warning("outbox delivery failed", extra={"topic": event.topic})
        return 0
    event.delivered_at = now
    return 1
