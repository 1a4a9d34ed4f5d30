from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from tradecast.signals.schemas import SignalOut


class PollQuery(BaseModel):
    limit: int = Field(default=50, ge=1, le=200, description="Most signals to return.")
    wait: int = Field(
        default=0, ge=0, le=30, description="Seconds to hold the request open for a signal."
    )


class PollOut(BaseModel):
    signals: list[SignalOut] = Field(description="Pending signals for this device, oldest first.")
    server_time: datetime = Field(description="Server clock; resynchronise X-Timestamp with it.")
    poll_interval_s: int = Field(description="Suggested pause between polls that do not wait.")
