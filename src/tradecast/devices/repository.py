from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol, cast

from sqlalchemy import Uuid, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tradecast.db import Database, DriverStatement, RecordView
from tradecast.devices.models import Device
from tradecast.users.models import User

_SIGNING_ROW = select(Device.id, Device.user_id, Device.is_active, Device.secret_sealed).where(
    Device.id == bindparam("device_id", type_=Uuid())
)
_SIGNING_ROW_DRIVER = DriverStatement(_SIGNING_ROW)


class SigningRow(Protocol):
    @property
    def id(self) -> uuid.UUID: ...
    @property
    def user_id(self) -> uuid.UUID: ...
    @property
    def is_active(self) -> bool: ...
    @property
    def secret_sealed(self) -> str: ...


async def signing_row(db: Database, device_id: uuid.UUID) -> SigningRow | None:
    """What verifying a device's signature needs of its row, read without the ORM, in
    autocommit: on PostgreSQL one statement on asyncpg's own pool."""
    values = {"device_id": device_id}
    if db.is_sqlite:
        async with db.autocommit.connect() as connection:
            return (await connection.execute(_SIGNING_ROW, values)).first()
    async with db.driver_connection() as driver:
        rows = await _SIGNING_ROW_DRIVER.fetch(driver, values)
    return cast(SigningRow, RecordView(rows[0])) if rows else None


class DeviceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, device: Device) -> None:
        self.session.add(device)

    async def get(self, device_id: uuid.UUID) -> Device | None:
        return await self.session.get(Device, device_id)

    async def owned(
        self, device_id: uuid.UUID, user_id: uuid.UUID, *, for_update: bool = False
    ) -> Device | None:
        """The device if this user owns it; ``for_update`` locks its row until commit."""
        query = select(Device).where(Device.id == device_id, Device.user_id == user_id)
        if for_update:
            query = query.with_for_update()
        return await self.session.scalar(query)

    async def for_user(self, user_id: uuid.UUID) -> Sequence[Device]:
        """Active devices first, then deleted ones; newest first within each."""
        rows = await self.session.scalars(
            select(Device)
            .where(Device.user_id == user_id)
            .order_by(Device.is_active.desc(), Device.created_at.desc(), Device.id)
        )
        return rows.all()

    async def count_active(self, user_id: uuid.UUID) -> int:
        count = await self.session.scalar(
            select(func.count())
            .select_from(Device)
            .where(Device.user_id == user_id, Device.is_active.is_(True))
        )
        return int(count or 0)

    async def lock_owner(self, user_id: uuid.UUID) -> None:
        """Lock the owner's user row until commit.

        Registrations of one user's devices queue behind this lock, so the count
        of active devices each of them reads cannot be overtaken by another's insert.
        """
        await self.session.execute(select(User.id).where(User.id == user_id).with_for_update())
