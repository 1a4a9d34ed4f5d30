from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from tradecast.signals.schemas import SignalFields, SignalOut


class PollQuery(BaseModel):
    limit: int = Field(default=50, ge=1, le=200, description="Most signals to return.")
    wait: int = Field(
        default=0, ge=0, le=30, description="Seconds to hold the request open for a signal."
    )


class PollOut(BaseModel):
    signals: list[SignalOut] = Field(description="Pending signals for this device, oldest first.")
    server_time: datetime = Field(description="Server clock; resynchronise X-Timestamp with it.")
    poll_interval_s: int = Field(description="Suggested pause between polls that do not wait.")


_EMPTY_PREFIX = b'{"signals":['


def poll_answer(signals: Sequence[SignalFields], now: datetime, poll_interval_s: int) -> bytes:
    """``PollOut(...).model_dump_json()``, byte for byte, with each signal's JSON
    made once per process: most polls carry signals other polls carried a moment
    ago (every device woken by one publish gets the same signal), and building
    and serialising ``SignalOut`` was a tenth of answering them."""
    empty = PollOut(signals=[], server_time=now, poll_interval_s=poll_interval_s)
    answer = empty.model_dump_json().encode()
    if not signals:
        return answer
    parts = b",".join(
        _signal_json(tuple(SignalOut.fields_of(signal, now).items())) for signal in signals
    )
    return _EMPTY_PREFIX + parts + answer[len(_EMPTY_PREFIX) :]


@functools.lru_cache(maxsize=4096)
def _signal_json(fields: tuple[tuple[str, Any], ...]) -> bytes:
    """Keyed by the answer's field values, so a signal whose status changed (or
    that expired) is made afresh."""
    return SignalOut(**dict(fields)).model_dump_json().encode()
