"""Reading executions back: per-signal status and summary, and execution quality.

Quality is what a trader needs to judge whether the copy is faithful: how
long devices take to ACK, how far fills land from the signal's entry price,
and how much of the intended volume they fill.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from tradecast.delivery.models import Delivery
from tradecast.devices import service as devices
from tradecast.executions.models import ExecutionReport, ExecutionType
from tradecast.executions.repository import ExecutionRepository
from tradecast.executions.schemas import DeviceQualityOut, LatencyStats, QualityOut, SummaryOut
from tradecast.kit import money
from tradecast.signals import service as signals
from tradecast.signals.models import Signal
from tradecast.users.models import User

PCT_STEP = Decimal("0.0001")
RATIO_STEP = Decimal("0.0001")


async def status_of(
    session: AsyncSession, signal_id: uuid.UUID, user: User
) -> Sequence[ExecutionReport]:
    await signals.get_signal(session, signal_id)
    owner = None if user.role.is_admin else user.id
    return await ExecutionRepository(session).for_signal(signal_id, owner)


async def summary(session: AsyncSession, signal_id: uuid.UUID) -> SummaryOut:
    signal = await signals.get_signal(session, signal_id)
    repo = ExecutionRepository(session)
    reports = await repo.for_signal(signal_id, None)
    deliveries = await repo.deliveries_of_signal(signal_id)
    devices_by_type = _devices_by_type(reports)
    fills = [r for r in reports if r.execution_type is ExecutionType.FILL]
    filled_size = sum((r.fill_size or Decimal(0) for r in fills), Decimal(0))
    zero = Decimal(0)
    cost = sum((money.multiply(r.fill_price or zero, r.fill_size or zero) for r in fills), zero)
    reported = set().union(*devices_by_type.values()) if devices_by_type else set()
    return SummaryOut(
        signal_id=signal.id,
        delivered=len(deliveries),
        acked=len(devices_by_type[ExecutionType.ACK]),
        filled=len(devices_by_type[ExecutionType.FILL]),
        errored=len(devices_by_type[ExecutionType.ERROR]),
        pending=sum(1 for d in deliveries if d.device_id not in reported),
        filled_size=filled_size,
        avg_fill_price=money.divide(cost, filled_size, money.PRICE_STEP) if fills else None,
        quality=_quality(reports, deliveries, {signal.id: signal}),
    )


async def for_device(session: AsyncSession, device_id: uuid.UUID, user: User) -> DeviceQualityOut:
    device = await devices.owned_device(session, user, device_id)
    repo = ExecutionRepository(session)
    reports = await repo.for_device(device.id)
    deliveries = await repo.deliveries_of_device(device.id)
    signal_ids = {r.signal_id for r in reports}
    by_id = {s.id: s for s in await repo.signals(signal_ids)}
    by_type = _signals_by_type(reports)
    return DeviceQualityOut(
        device_id=device.id,
        signals_delivered=len(deliveries),
        acked=len(by_type[ExecutionType.ACK]),
        filled=len(by_type[ExecutionType.FILL]),
        errored=len(by_type[ExecutionType.ERROR]),
        quality=_quality(reports, deliveries, by_id),
    )


def _devices_by_type(reports: Iterable[ExecutionReport]) -> dict[ExecutionType, set[uuid.UUID]]:
    grouped: dict[ExecutionType, set[uuid.UUID]] = defaultdict(set)
    for report in reports:
        grouped[report.execution_type].add(report.device_id)
    return grouped


def _signals_by_type(reports: Iterable[ExecutionReport]) -> dict[ExecutionType, set[uuid.UUID]]:
    grouped: dict[ExecutionType, set[uuid.UUID]] = defaultdict(set)
    for report in reports:
        grouped[report.execution_type].add(report.signal_id)
    return grouped


def _quality(
    reports: Sequence[ExecutionReport],
    deliveries: Sequence[Delivery],
    signals_by_id: dict[uuid.UUID, Signal],
) -> QualityOut:
    slippages = _slippages(reports, signals_by_id)
    ratios = _fill_ratios(reports, signals_by_id)
    return QualityOut(
        ack_latency=_ack_latency(reports, deliveries),
        avg_slippage_pct=_mean(slippages, PCT_STEP),
        max_slippage_pct=max(slippages) if slippages else None,
        fill_ratio=_mean(ratios, RATIO_STEP),
    )


def _ack_latency(
    reports: Sequence[ExecutionReport], deliveries: Sequence[Delivery]
) -> LatencyStats:
    delivered: dict[tuple[uuid.UUID, uuid.UUID], datetime] = {
        (d.device_id, d.signal_id): d.first_delivered_at for d in deliveries
    }
    latencies = sorted(
        max(0, int((r.created_at - delivered[(r.device_id, r.signal_id)]).total_seconds() * 1000))
        for r in reports
        if r.execution_type is ExecutionType.ACK and (r.device_id, r.signal_id) in delivered
    )
    if not latencies:
        return LatencyStats(count=0, p50_ms=None, p95_ms=None, max_ms=None)
    return LatencyStats(
        count=len(latencies),
        p50_ms=_percentile(latencies, 50),
        p95_ms=_percentile(latencies, 95),
        max_ms=latencies[-1],
    )


def _percentile(ordered: Sequence[int], pct: int) -> int:
    # Nearest rank: a value that actually occurred.
    rank = max(1, -(-pct * len(ordered) // 100))
    return ordered[rank - 1]


def _slippages(
    reports: Sequence[ExecutionReport], signals_by_id: dict[uuid.UUID, Signal]
) -> list[Decimal]:
    found = []
    for report in reports:
        signal = signals_by_id.get(report.signal_id)
        if report.execution_type is not ExecutionType.FILL or signal is None:
            continue
        if signal.entry_price is None or report.fill_price is None:
            continue
        found.append(slippage_pct(report.fill_price, signal.entry_price))
    return found


def slippage_pct(fill_price: Decimal, entry_price: Decimal) -> Decimal:
    """|fill − entry| / entry × 100, to four decimal places."""
    distance = abs(fill_price - entry_price)
    return money.divide(money.multiply(distance, Decimal(100)), entry_price, PCT_STEP)


def _fill_ratios(
    reports: Sequence[ExecutionReport], signals_by_id: dict[uuid.UUID, Signal]
) -> list[Decimal]:
    filled: dict[tuple[uuid.UUID, uuid.UUID], Decimal] = defaultdict(Decimal)
    for report in reports:
        if report.execution_type is ExecutionType.FILL and report.fill_size is not None:
            filled[(report.device_id, report.signal_id)] += report.fill_size
    ratios = []
    for (_, signal_id), size in filled.items():
        signal = signals_by_id.get(signal_id)
        if signal is not None and signal.volume:
            ratios.append(money.divide(size, signal.volume, RATIO_STEP))
    return ratios


def _mean(values: Sequence[Decimal], step: Decimal) -> Decimal | None:
    if not values:
        return None
    return money.divide(sum(values, Decimal(0)), Decimal(len(values)), step)
