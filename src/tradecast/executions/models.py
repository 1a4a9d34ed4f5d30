from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Enum, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tradecast.db import Amount, Base, Price, UUIDPrimaryKey


class ExecutionType(enum.StrEnum):
    ACK = "ack"
    FILL = "fill"
    ERROR = "error"


class ExecutionReport(UUIDPrimaryKey, Base):
    """One report of a device about one signal, kept exactly once."""

    __tablename__ = "execution_reports"
    __table_args__ = (
        # The device's idempotency key: a retried report can never be stored twice.
        UniqueConstraint("device_id", "report_id"),
        Index("ix_execution_reports_signal_id_created_at", "signal_id", "created_at"),
        Index("ix_execution_reports_device_id_created_at", "device_id", "created_at"),
    )

    device_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    signal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("signals.id"))
    report_id: Mapped[str] = mapped_column(String(64))
    execution_type: Mapped[ExecutionType] = mapped_column(
        Enum(
            ExecutionType,
            name="execution_type",
            native_enum=False,
            length=8,
            values_callable=lambda e: [m.value for m in e],
        )
    )
    fill_price: Mapped[Decimal | None] = mapped_column(Price())
    fill_size: Mapped[Decimal | None] = mapped_column(Price())
    broker_ticket: Mapped[str | None] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    error_message: Mapped[str | None] = mapped_column(String(1000))
    trade_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("trades.id"))
    # SHA-256 of the report's normalised content: a replay must match it exactly.
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class Trade(UUIDPrimaryKey, Base):
    """The position one device opened on one signal, built from its fills."""

    __tablename__ = "trades"
    __table_args__ = (
        UniqueConstraint("device_id", "signal_id"),
        Index("ix_trades_user_id_opened_at", "user_id", "opened_at"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    device_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    signal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("signals.id"))
    instrument: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(8))
    size: Mapped[Decimal] = mapped_column(Amount())
    # Σ price × size, exact: the average price is derived from it, never accumulated.
    cost: Mapped[Decimal] = mapped_column(Amount())
    price: Mapped[Decimal] = mapped_column(Price())
    notional: Mapped[Decimal] = mapped_column(Amount())
    fill_count: Mapped[int] = mapped_column(Integer, default=0)
    opened_at: Mapped[datetime]
    updated_at: Mapped[datetime]


@dataclass
class ReportRow:
    """A report as a plain value, on the report path (as ``TradeRow``): stored
    by statements and answered from, never through a session."""

    id: uuid.UUID
    device_id: uuid.UUID
    signal_id: uuid.UUID
    report_id: str
    execution_type: ExecutionType
    fill_price: Decimal | None
    fill_size: Decimal | None
    broker_ticket: str | None
    status_code: int | None
    error_message: str | None
    trade_id: uuid.UUID | None
    fingerprint: str
    created_at: datetime


@dataclass
class TradeRow:
    """A trade as a plain value, on the report path: read from a statement's row,
    extended by ``service.apply_fill`` and written back by statements, never
    through a session. Building ORM instances there cost the worker more than
    the statements did (``docs/PERFORMANCE.md``)."""

    id: uuid.UUID
    user_id: uuid.UUID
    device_id: uuid.UUID
    signal_id: uuid.UUID
    instrument: str
    side: str
    size: Decimal
    cost: Decimal
    price: Decimal
    notional: Decimal
    fill_count: int
    opened_at: datetime
    updated_at: datetime
