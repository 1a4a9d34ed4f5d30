from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tradecast.kit.pagination import PageParams
from tradecast.signals.models import Signal, SignalApproval, SignalStatus
from tradecast.users.models import User


def _status_is(status: SignalStatus, now: datetime) -> ColumnElement[bool]:
    """The truthful status in SQL (see ``Signal.status_at``): stored ``open`` past
    ``expires_at`` counts as expired."""
    unexpired = Signal.expires_at > now
    if status is SignalStatus.OPEN:
        return and_(Signal.status == SignalStatus.OPEN, unexpired)
    if status is SignalStatus.EXPIRED:
        return or_(
            Signal.status == SignalStatus.EXPIRED,
            and_(Signal.status == SignalStatus.OPEN, ~unexpired),
        )
    return Signal.status == status


class SignalRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, signal: Signal) -> None:
        self.session.add(signal)

    async def get(self, signal_id: uuid.UUID) -> Signal | None:
        return await self.session.get(Signal, signal_id)

    async def get_for_share(self, signal_id: uuid.UUID) -> Signal | None:
        """The signal, share-locked until commit: it cannot be cancelled meanwhile."""
        return await self.session.scalar(
            select(Signal)
            .where(Signal.id == signal_id)
            .with_for_update(read=True)
            .execution_options(populate_existing=True)
        )

    async def by_producer_external_id(
        self, producer_id: uuid.UUID, external_id: str
    ) -> Signal | None:
        return await self.session.scalar(
            select(Signal).where(
                Signal.producer_id == producer_id, Signal.external_id == external_id
            )
        )

    async def by_admin_external_id(self, user_id: uuid.UUID, external_id: str) -> Signal | None:
        return await self.session.scalar(
            select(Signal).where(
                Signal.producer_id.is_(None),
                Signal.created_by_user_id == user_id,
                Signal.external_id == external_id,
            )
        )

    async def lock_account(self, user_id: uuid.UUID) -> None:
        """Lock the publishing admin's user row until commit (``FOR NO KEY UPDATE``, so
        that inserts referencing the user, such as a login's refresh token, do not wait)."""
        await self.session.execute(
            select(User.id).where(User.id == user_id).with_for_update(key_share=True)
        )

    async def page(
        self, status: SignalStatus | None, now: datetime, page: PageParams
    ) -> tuple[Sequence[Signal], int]:
        query = select(Signal)
        if status is not None:
            query = query.where(_status_is(status, now))
        total = await self.session.scalar(select(func.count()).select_from(query.subquery()))
        rows = await self.session.scalars(
            query.order_by(Signal.created_at.desc(), Signal.id.desc())
            .limit(page.limit)
            .offset(page.offset)
        )
        return rows.all(), int(total or 0)

    async def cancel_if_open(self, signal_id: uuid.UUID, now: datetime) -> Signal | None:
        """Cancel in one conditional UPDATE, so a cancel racing another cancel (or the
        expiry job) changes the row once; ``None`` if the signal was no longer open."""
        return await self.session.scalar(
            update(Signal)
            .where(Signal.id == signal_id, _status_is(SignalStatus.OPEN, now))
            .values(status=SignalStatus.CANCELLED, cancelled_at=now)
            .returning(Signal)
            .execution_options(populate_existing=True)
        )

    async def expire_due(self, now: datetime) -> int:
        result = await self.session.execute(
            update(Signal)
            .where(Signal.status == SignalStatus.OPEN, Signal.expires_at <= now)
            .values(status=SignalStatus.EXPIRED)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)


class ApprovalRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, approval: SignalApproval) -> None:
        self.session.add(approval)
