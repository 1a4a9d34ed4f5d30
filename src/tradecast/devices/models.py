from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from tradecast.db import Base, UUIDPrimaryKey


class Device(UUIDPrimaryKey, Base):
    """A subscriber's trading terminal; its id is the ``X-Key-Id`` of its signed requests."""

    __tablename__ = "devices"
    __table_args__ = (
        # Names are unique among a user's *active* devices: a deleted device frees its name.
        Index(
            "uq_devices_user_id_device_name_active",
            "user_id",
            "device_name",
            unique=True,
            postgresql_where=text("is_active"),
            sqlite_where=text("is_active = 1"),
        ),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    device_name: Mapped[str] = mapped_column(String(64))
    # AES-GCM sealed HMAC secret (kit/secretbox.py), bound to the device id.
    secret_sealed: Mapped[str] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_poll: Mapped[datetime | None]
    last_ack: Mapped[datetime | None]
