from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tradecast.executions.models import ExecutionType
from tradecast.kit.decimals import DecimalText, PositiveDecimal

ReportId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$"),
    Field(description="The device's idempotency key: printable ASCII, 1–64 characters."),
]


class _Report(BaseModel):
    model_config = ConfigDict(extra="forbid")

    report_id: ReportId
    signal_id: uuid.UUID


class AckIn(_Report):
    pass


class FillIn(_Report):
    fill_price: PositiveDecimal
    fill_size: PositiveDecimal
    broker_ticket: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


class ErrorIn(_Report):
    status_code: int = Field(
        ge=-2_147_483_648, le=2_147_483_647, description="Broker/terminal code."
    )
    error_message: Annotated[
        str, StringConstraints(min_length=1, max_length=1000, strip_whitespace=True)
    ]


class ExecutionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    device_id: uuid.UUID
    signal_id: uuid.UUID
    execution_type: ExecutionType
    report_id: str
    fill_price: DecimalText | None
    fill_size: DecimalText | None
    broker_ticket: str | None
    status_code: int | None
    error_message: str | None
    trade_id: uuid.UUID | None
    created_at: datetime


class TradeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    device_id: uuid.UUID
    signal_id: uuid.UUID
    instrument: str
    side: str
    size: DecimalText
    price: DecimalText = Field(description="Size-weighted average of the fills.")
    notional: DecimalText = Field(description="price × size × contract size of the instrument.")
    opened_at: datetime
    updated_at: datetime


class LatencyStats(BaseModel):
    count: int
    p50_ms: int | None
    p95_ms: int | None
    max_ms: int | None


class QualityOut(BaseModel):
    """How faithfully devices copied signals."""

    ack_latency: LatencyStats = Field(description="First delivery to ACK.")
    avg_slippage_pct: DecimalText | None = Field(
        description="Mean |fill price − entry price| / entry price × 100, over fills of "
        "signals that carry an entry price."
    )
    max_slippage_pct: DecimalText | None
    fill_ratio: DecimalText | None = Field(
        description="Filled size / signal volume, averaged over the devices that filled "
        "signals carrying a volume."
    )


class SummaryOut(BaseModel):
    signal_id: uuid.UUID
    delivered: int = Field(description="Devices the signal was delivered to.")
    acked: int
    filled: int
    errored: int
    pending: int = Field(description="Delivered, with neither a report of ACK, fill nor error.")
    filled_size: DecimalText
    avg_fill_price: DecimalText | None
    quality: QualityOut


class DeviceQualityOut(BaseModel):
    device_id: uuid.UUID
    signals_delivered: int
    acked: int
    filled: int
    errored: int
    quality: QualityOut
