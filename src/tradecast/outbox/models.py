from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from tradecast.db import Base, UUIDPrimaryKey


class OutboxEvent(UUIDPrimaryKey, Base):
    """An event that must leave the system, written in the same transaction as its cause."""

    __tablename__ = "outbox_events"
    __table_args__ = (
        # The dispatcher only ever looks at undelivered events that are due.
        Index(
            "ix_outbox_events_due",
            "available_at",
            postgresql_where=text("delivered_at IS NULL AND dead_at IS NULL"),
            sqlite_where=text("delivered_at IS NULL AND dead_at IS NULL"),
        ),
    )

    topic: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    available_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[datetime | None]
    dead_at: Mapped[datetime | None]
