from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tradecast.db import Base, UUIDPrimaryKey


class IssueKind(enum.StrEnum):
    MISSING_ACK = "missing_ack"
    MISSING_FILL = "missing_fill"
    EXECUTION_ERROR = "execution_error"
    SLIPPAGE = "slippage"
    SIZE_MISMATCH = "size_mismatch"


class IssueStatus(enum.StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


def _values(enum_class: type[enum.Enum]) -> list[str]:
    return [str(member.value) for member in enum_class]


class ReconciliationIssue(UUIDPrimaryKey, Base):
    __tablename__ = "reconciliation_issues"
    __table_args__ = (
        # One issue per (signal, device, kind), whichever process finds it first.
        UniqueConstraint("signal_id", "device_id", "kind"),
        Index("ix_reconciliation_issues_status_created_at", "status", "created_at"),
        Index("ix_reconciliation_issues_device_id", "device_id"),
    )

    signal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("signals.id"))
    device_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    kind: Mapped[IssueKind] = mapped_column(
        Enum(IssueKind, name="issue_kind", native_enum=False, length=16, values_callable=_values)
    )
    status: Mapped[IssueStatus] = mapped_column(
        Enum(
            IssueStatus, name="issue_status", native_enum=False, length=16, values_callable=_values
        )
    )
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
