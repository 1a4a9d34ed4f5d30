from __future__ import annotations

import enum
import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Enum, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from tradecast.db import Base, Price, UUIDPrimaryKey


def _values(enum_class: type[enum.Enum]) -> list[str]:
    return [str(member.value) for member in enum_class]


class Side(enum.StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(enum.StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"


class SignalStatus(enum.StrEnum):
    OPEN = "open"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class Decision(enum.StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"


def _enum(enum_class: type[enum.Enum], name: str) -> Enum:
    return Enum(enum_class, name=name, native_enum=False, length=16, values_callable=_values)


class Signal(UUIDPrimaryKey, Base):
    """A published signal. Only its status (with ``cancelled_at``) ever changes once it
    is published: the poll keeps each signal's JSON by id and shown status
    (``delivery/schemas.py``), so a change to any other field needs a new key there."""

    __tablename__ = "signals"
    __table_args__ = (
        # Idempotent publishing: one signal per (producer, external_id).
        UniqueConstraint("producer_id", "external_id"),
        # The poll walks open signals oldest first; expired and cancelled ones,
        # the vast majority over time, stay out of this index.
        Index(
            "ix_signals_open_created_at",
            "created_at",
            "id",
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
        Index("ix_signals_status_created_at", "status", "created_at"),
    )

    producer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("producers.id"))
    created_by_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    external_id: Mapped[str | None] = mapped_column(String(64))
    instrument: Mapped[str] = mapped_column(String(32))
    side: Mapped[Side] = mapped_column(_enum(Side, "signal_side"))
    order_type: Mapped[OrderType] = mapped_column(_enum(OrderType, "signal_order_type"))
    entry_price: Mapped[Decimal | None] = mapped_column(Price())
    stop_loss: Mapped[Decimal | None] = mapped_column(Price())
    take_profit: Mapped[Decimal | None] = mapped_column(Price())
    volume: Mapped[Decimal | None] = mapped_column(Price())
    status: Mapped[SignalStatus] = mapped_column(_enum(SignalStatus, "signal_status"))
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime]
    cancelled_at: Mapped[datetime | None]

    def status_at(self, now: datetime) -> SignalStatus:
        """The truthful status: an open signal past ``expires_at`` is expired, whether or
        not the periodic expiry job has stored that yet."""
        return truthful_status(self.status, self.expires_at, now)


def truthful_status(status: SignalStatus, expires_at: datetime, now: datetime) -> SignalStatus:
    """``Signal.status_at`` for values read without the ORM (the poll's rows)."""
    if status == SignalStatus.OPEN and expires_at <= now:
        return SignalStatus.EXPIRED
    return status


class SignalApproval(Base):
    """A user's one decision on one signal (approval delivery mode)."""

    __tablename__ = "signal_approvals"

    # The primary key makes a second decision impossible, even from two requests at once.
    signal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("signals.id"), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    decision: Mapped[Decision] = mapped_column(_enum(Decision, "approval_decision"))
    decided_at: Mapped[datetime]
