from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from tradecast.signals.schemas import SignalOut


class PollOut(BaseModel):
    signals: list[SignalOut] = Field(description="Pending signals for this device, oldest first.")
    server_time: datetime = Field(description="Server clock; resynchronise X-Timestamp with it.")
    poll_interval_s: int = Field(description="Suggested pause between polls that do not wait.")
