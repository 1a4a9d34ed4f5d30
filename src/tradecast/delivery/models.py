from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, text
from sqlalchemy.orm import Mapped, mapped_column

from tradecast.db import Base


class Delivery(Base):
    """What one device was given of one signal, and whether it has answered.

    Written once, by the first poll that hands the device the signal; later
    polls returning it again write nothing. ``settled_at`` is set by the
    device's ACK or error report; until then the signal stays in the device's
    poll (at-least-once delivery).
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_signal_id", "signal_id"),
        # What a device has settled, read by every poll (delivery/repository.py):
        # one index-only range scan per poll instead of a heap visit per open signal.
        Index(
            "ix_deliveries_settled",
            "device_id",
            "signal_id",
            postgresql_where=text("settled_at IS NOT NULL"),
            sqlite_where=text("settled_at IS NOT NULL"),
        ),
    )

    device_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    signal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("signals.id"), primary_key=True)
    first_delivered_at: Mapped[datetime]
    settled_at: Mapped[datetime | None]
