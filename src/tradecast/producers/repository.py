from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tradecast.kit.pagination import PageParams
from tradecast.producers.models import Producer


class ProducerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, producer: Producer) -> None:
        self.session.add(producer)

    async def get(self, producer_id: uuid.UUID) -> Producer | None:
        return await self.session.get(Producer, producer_id)

    async def get_for_update(self, producer_id: uuid.UUID) -> Producer | None:
        """The producer with its row locked until commit (SQLite: the writer lock already is)."""
        return await self.session.scalar(
            select(Producer)
            .where(Producer.id == producer_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    async def by_name(self, name: str) -> Producer | None:
        return await self.session.scalar(select(Producer).where(Producer.name == name))

    async def page(self, page: PageParams) -> tuple[Sequence[Producer], int]:
        total = await self.session.scalar(select(func.count()).select_from(Producer))
        rows = await self.session.scalars(
            select(Producer)
            .order_by(Producer.created_at.desc(), Producer.id.desc())
            .limit(page.limit)
            .offset(page.offset)
        )
        return rows.all(), int(total or 0)
