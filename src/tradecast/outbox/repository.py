from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tradecast.outbox.models import OutboxEvent


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, event: OutboxEvent) -> None:
        self.session.add(event)

    async def claim_due(
        self, topics: list[str], now: datetime, limit: int
    ) -> Sequence[OutboxEvent]:
        """Due, undelivered events, locked so that a second dispatcher skips them.

        ``SKIP LOCKED`` lets several server processes dispatch side by side without
        handing the same event to two of them (SQLite serialises writers anyway).
        """
        query = (
            select(OutboxEvent)
            .where(
                OutboxEvent.delivered_at.is_(None),
                OutboxEvent.dead_at.is_(None),
                OutboxEvent.available_at <= now,
                OutboxEvent.topic.in_(topics),
            )
            .order_by(OutboxEvent.available_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return (await self.session.scalars(query)).all()

    async def for_topic(self, topic: str) -> Sequence[OutboxEvent]:
        return (
            await self.session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.topic == topic)
                .order_by(OutboxEvent.created_at)
            )
        ).all()
