"""Execution reports: each stored exactly once, settling delivery and building trades."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from tradecast.affiliates.service import commissions
from tradecast.audit import service as audit
from tradecast.audit.models import PendingEvent
from tradecast.audit.service import ActorType
from tradecast.config import Settings
from tradecast.db import Statements
from tradecast.executions.errors import ReportIdReused, SignalNotDelivered
from tradecast.executions.models import ExecutionType, ReportRow, Trade, TradeRow
from tradecast.executions.repository import (
    ReportContext,
    ReportRepository,
    TradeFilter,
    TradeRepository,
)
from tradecast.executions.schemas import AckIn, ErrorIn, FillIn
from tradecast.kit import clock, ids, money
from tradecast.kit.decimals import decimal_text
from tradecast.kit.pagination import PageParams
from tradecast.signed.errors import KeyInactive, UnknownKey
from tradecast.signed.verification import SigningKey
from tradecast.users.models import User

ReportIn = AckIn | FillIn | ErrorIn


@dataclass(frozen=True)
class Recorded:
    report: ReportRow
    created: bool


def _kind(body: ReportIn) -> ExecutionType:
    if isinstance(body, FillIn):
        return ExecutionType.FILL
    if isinstance(body, ErrorIn):
        return ExecutionType.ERROR
    return ExecutionType.ACK


def fingerprint(kind: ExecutionType, body: ReportIn) -> str:
    """The report's content in one canonical form: "1.10" and "1.1" are the same price."""
    content: dict[str, object] = {"type": kind.value}
    for name, value in body.model_dump(exclude={"report_id"}).items():
        content[name] = decimal_text(value) if isinstance(value, Decimal) else value
    encoded = json.dumps(content, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()


async def record(
    statements: Statements, settings: Settings, key: SigningKey, body: ReportIn
) -> Recorded:
    """Store a report once. A replay with the same content returns the stored record;
    the same ``report_id`` with other content is refused.

    Lock order for a fill: the trade row, then the report's unique key, then the
    delivery, then the affiliate. Taking the trade first lets the report be
    inserted with its ``trade_id``; a duplicate of the fill in flight waits on the
    trade row, then finds the stored report and changes nothing. The trade's new
    figures are worked out on the locked row and written with the report, only
    if the report was stored.
    """
    repo = ReportRepository(statements)
    kind = _kind(body)
    digest = fingerprint(kind, body)
    context = await repo.context(key.key_id, body.report_id, body.signal_id)
    # Deleted or revoked since the signature was verified, or while its key sat
    # in the process's key cache.
    if context is None:
        raise UnknownKey()
    if not context.device_active:
        raise KeyInactive()
    if context.stored is not None:
        return _replayed(context.stored, digest)
    now = clock.utcnow()
    device = Reporter(key.key_id, context.owner_id)
    signal = await _deliverable_signal(repo, device, body.signal_id, context, now)
    report = new_report(device, body, kind, digest, now)
    trade: TradeRow | None = None
    if isinstance(body, FillIn):
        trade = await repo.lock_trade(empty_trade(device, signal, now))
        report.trade_id = trade.id
        apply_fill(settings, trade, signal, body, now)
    event = None if isinstance(body, AckIn) else audit_event(device.id, body)
    if not await repo.write(report, trade=trade, event=event, now=now):
        # A concurrent copy won the insert; it has committed, so it can be read now.
        winner = await repo.stored(device.id, body.report_id)
        if winner is None:  # pragma: no cover - the conflict implies the row exists
            raise RuntimeError("report conflict without a stored report")
        return _replayed(winner, digest)
    if event is not None:
        audit.logged(event)
    if isinstance(body, FillIn) and trade is not None:
        # In the fill's transaction: the fill and its commission commit together or not at all.
        await commissions.record_for_fill(
            statements,
            settings,
            user_id=device.user_id,
            trade_id=trade.id,
            execution_report_id=report.id,
            notional=fill_notional(settings, signal, body),
            now=now,
        )
    return Recorded(report, created=True)


@dataclass(frozen=True)
class Reporter:
    """The device a report comes from."""

    id: uuid.UUID
    user_id: uuid.UUID


@dataclass(frozen=True)
class ReportedSignal:
    """What a report needs of its signal."""

    id: uuid.UUID
    instrument: str
    side: str


def _replayed(existing: ReportRow, digest: str) -> Recorded:
    if existing.fingerprint != digest:
        raise ReportIdReused(
            f"report_id {existing.report_id!r} was already used for a different report"
        )
    return Recorded(existing, created=False)


async def _deliverable_signal(
    repo: ReportRepository,
    device: Reporter,
    signal_id: uuid.UUID,
    context: ReportContext,
    now: datetime,
) -> ReportedSignal:
    """The signal, if it was ever pending for this device (delivered, or pending now)."""
    if context.signal_instrument is None or context.signal_side is None:
        raise SignalNotDelivered()
    signal = ReportedSignal(signal_id, context.signal_instrument, context.signal_side)
    if context.delivered:
        return signal
    if await repo.is_pending_for(device.id, device.user_id, signal_id, now):
        return signal
    raise SignalNotDelivered()


def new_report(
    device: Reporter, body: ReportIn, kind: ExecutionType, digest: str, now: datetime
) -> ReportRow:
    fill = body if isinstance(body, FillIn) else None
    error = body if isinstance(body, ErrorIn) else None
    return ReportRow(
        id=ids.time_ordered(),
        device_id=device.id,
        signal_id=body.signal_id,
        report_id=body.report_id,
        execution_type=kind,
        fill_price=fill.fill_price if fill else None,
        fill_size=fill.fill_size if fill else None,
        broker_ticket=fill.broker_ticket if fill else None,
        status_code=error.status_code if error else None,
        error_message=error.error_message if error else None,
        trade_id=None,
        fingerprint=digest,
        created_at=now,
    )


def empty_trade(device: Reporter, signal: ReportedSignal, now: datetime) -> TradeRow:
    """The row a (device, signal) trade starts from, before its first fill."""
    zero = Decimal(0)
    return TradeRow(
        id=ids.time_ordered(),
        user_id=device.user_id,
        device_id=device.id,
        signal_id=signal.id,
        instrument=signal.instrument,
        side=signal.side,
        size=zero,
        cost=zero,
        price=zero,
        notional=zero,
        fill_count=0,
        opened_at=now,
        updated_at=now,
    )


def apply_fill(
    settings: Settings, trade: TradeRow, signal: ReportedSignal, fill: FillIn, now: datetime
) -> None:
    """Extend the (device, signal) trade: size summed, price size-weighted, exact."""
    trade.size = money.add(trade.size, fill.fill_size)
    trade.cost = money.add(trade.cost, money.multiply(fill.fill_price, fill.fill_size))
    trade.price = money.divide(trade.cost, trade.size, money.PRICE_STEP)
    trade.notional = money.multiply(trade.cost, settings.contract_size(signal.instrument))
    trade.fill_count += 1
    trade.updated_at = now


def fill_notional(settings: Settings, signal: ReportedSignal, fill: FillIn) -> Decimal:
    """What one fill adds to its trade's notional: price × size × contract size."""
    return money.multiply(
        fill.fill_price, fill.fill_size, settings.contract_size(signal.instrument)
    )


async def trades_of(
    session: AsyncSession, user: User, criteria: TradeFilter, page: PageParams
) -> tuple[Sequence[Trade], int]:
    return await TradeRepository(session).page_for_user(user.id, criteria, page)


def audit_event(device_id: uuid.UUID, body: FillIn | ErrorIn) -> PendingEvent:
    """The audit event of a new fill or error report, in the reporting request's
    context (its client address and request id)."""
    kind = _kind(body)
    metadata: dict[str, object] = {"report_id": body.report_id, "signal_id": str(body.signal_id)}
    if isinstance(body, FillIn):
        metadata.update(
            fill_price=decimal_text(body.fill_price), fill_size=decimal_text(body.fill_size)
        )
    else:
        metadata.update(status_code=body.status_code)
    return audit.event(
        f"execution.{kind.value}",
        actor_type=ActorType.DEVICE,
        actor_id=device_id,
        target_type="signal",
        target_id=body.signal_id,
        metadata=metadata,
    )
