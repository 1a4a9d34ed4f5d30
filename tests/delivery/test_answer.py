from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tradecast.delivery.schemas import SIGNAL_JSON_MAX, PollOut, _signal_jsons, poll_answer
from tradecast.signals.models import OrderType, Side, SignalStatus
from tradecast.signals.schemas import SignalOut

NOW = datetime(2026, 11, 28, 6, 0, 0, 123456, tzinfo=UTC)


@dataclass(frozen=True)
class Row:
    id: uuid.UUID
    instrument: str
    side: Side
    order_type: OrderType
    entry_price: Decimal | None
    stop_loss: Decimal | None
    take_profit: Decimal | None
    volume: Decimal | None
    expires_at: datetime
    status: SignalStatus
    external_id: str | None
    created_at: datetime


def row(**changes: object) -> Row:
    base = Row(
        id=uuid.uuid4(),
        instrument="EURUSD",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        entry_price=Decimal("1.10005000"),
        stop_loss=Decimal("1.09"),
        take_profit=None,
        volume=Decimal("0.50"),
        expires_at=NOW + timedelta(minutes=5),
        status=SignalStatus.OPEN,
        external_id="strategy-7",
        created_at=NOW - timedelta(seconds=3),
    )
    return replace(base, **changes)


def expected(signals: list[Row], now: datetime) -> bytes:
    shown = [SignalOut.of(signal, now) for signal in signals]
    answer = PollOut(signals=shown, server_time=now, poll_interval_s=5)
    return answer.model_dump_json().encode()


def test_the_answer_is_pydantic_s_own_byte_for_byte() -> None:
    signals = [row(), row(side=Side.SELL, order_type=OrderType.MARKET, entry_price=None), row()]
    assert poll_answer([], NOW, 5) == expected([], NOW)
    assert poll_answer(signals, NOW, 5) == expected(signals, NOW)
    # Again, now from the cache.
    assert poll_answer(signals, NOW, 5) == expected(signals, NOW)


def test_a_signal_is_made_afresh_when_what_it_shows_changes() -> None:
    signal = row()
    first = poll_answer([signal], NOW, 5)
    assert b'"status":"open"' in first
    # Past its expiry the same row shows as expired; cancelled, as cancelled.
    later = NOW + timedelta(minutes=6)
    assert poll_answer([signal], later, 5) == expected([signal], later)
    assert b'"status":"expired"' in poll_answer([signal], later, 5)
    cancelled = replace(signal, status=SignalStatus.CANCELLED)
    assert poll_answer([cancelled], NOW, 5) == expected([cancelled], NOW)
    assert b'"status":"cancelled"' in poll_answer([cancelled], NOW, 5)


def test_the_kept_signals_stay_bounded_and_right() -> None:
    signals = [row() for _ in range(SIGNAL_JSON_MAX + 10)]
    for signal in signals:
        assert poll_answer([signal], NOW, 5) == expected([signal], NOW)
    assert len(_signal_jsons) <= SIGNAL_JSON_MAX
    # The first ones were let go when it filled up, and are made again the same.
    assert poll_answer(signals[:3], NOW, 5) == expected(signals[:3], NOW)
