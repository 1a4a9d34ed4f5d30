from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from tradecast.signals.models import SignalStatus, truthful_status
from tradecast.signals.schemas import SignalFields, SignalOut


class PollQuery(BaseModel):
    # One instance answers every poll sent with the same query (delivery/endpoint.py).
    model_config = ConfigDict(frozen=True)

    limit: int = Field(default=50, ge=1, le=200, description="Most signals to return.")
    wait: int = Field(
        default=0, ge=0, le=30, description="Seconds to hold the request open for a signal."
    )


class PollOut(BaseModel):
    signals: list[SignalOut] = Field(description="Pending signals for this device, oldest first.")
    server_time: datetime = Field(description="Server clock; resynchronise X-Timestamp with it.")
    poll_interval_s: int = Field(description="Suggested pause between polls that do not wait.")


_EMPTY_PREFIX = b'{"signals":['
# Signals' JSON kept per process; emptied when full (open signals are a few hundred).
SIGNAL_JSON_MAX = 4096


def poll_answer(signals: Sequence[SignalFields], now: datetime, poll_interval_s: int) -> bytes:
    """``PollOut(...).model_dump_json()``, byte for byte, with each signal's JSON
    made once per process: most polls carry signals other polls carried a moment
    ago (every device woken by one publish gets the same signal), and building
    and serialising ``SignalOut`` was a tenth of answering them."""
    empty = PollOut(signals=[], server_time=now, poll_interval_s=poll_interval_s)
    answer = empty.model_dump_json().encode()
    if not signals:
        return answer
    parts = b",".join(_signal_json(signal, now) for signal in signals)
    return _EMPTY_PREFIX + parts + answer[len(_EMPTY_PREFIX) :]


_signal_jsons: dict[tuple[uuid.UUID, SignalStatus], bytes] = {}


def _signal_json(signal: SignalFields, now: datetime) -> bytes:
    """Keyed by the signal's id and the status it shows: a published signal's other
    fields never change (``signals/models.py``), and the status it shows does when
    it is cancelled or expires, or as soon as ``expires_at`` has passed. Reading
    three of the row's fields, not hashing all twelve, halved the cost of a
    cached signal (``docs/PERFORMANCE.md``)."""
    status = truthful_status(signal.status, signal.expires_at, now)
    key = (signal.id, status)
    made = _signal_jsons.get(key)
    if made is None:
        made = SignalOut(**SignalOut.fields_of(signal, now)).model_dump_json().encode()
        if len(_signal_jsons) >= SIGNAL_JSON_MAX:
            _signal_jsons.clear()
        _signal_jsons[key] = made
    return made
