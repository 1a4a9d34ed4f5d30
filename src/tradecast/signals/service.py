"""Signals (SPEC §4): publishing, reading with truthful status, cancelling, expiring,
and the users' approve/reject decisions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tradecast.audit import service as audit
from tradecast.audit.service import ActorType
from tradecast.config import Settings
from tradecast.kit import clock, ids
from tradecast.kit.pagination import PageParams
from tradecast.signals.errors import AlreadyDecided, SignalNotFound, SignalNotOpen
from tradecast.signals.models import Decision, Signal, SignalApproval, SignalStatus
from tradecast.signals.repository import ApprovalRepository, SignalRepository
from tradecast.signals.schemas import SignalCreate


@dataclass(frozen=True)
class Publisher:
    """Who publishes or cancels: a signed producer, or an administrator."""

    actor_type: ActorType
    actor_id: uuid.UUID

    @classmethod
    def producer(cls, producer_id: uuid.UUID) -> Publisher:
        return cls(ActorType.PRODUCER, producer_id)

    @classmethod
    def admin(cls, user_id: uuid.UUID) -> Publisher:
        return cls(ActorType.USER, user_id)

    @property
    def producer_id(self) -> uuid.UUID | None:
        return self.actor_id if self.actor_type is ActorType.PRODUCER else None


@dataclass(frozen=True)
class Published:
    signal: Signal
    # False when the external_id was already published: ``signal`` is the original.
    created: bool


def _audit(
    session: AsyncSession, action: str, actor: Publisher, signal: Signal, **metadata: object
) -> None:
    audit.record(
        session,
        action,
        actor_type=actor.actor_type,
        actor_id=actor.actor_id,
        target_type="signal",
        target_id=signal.id,
        metadata=metadata,
    )


async def _original(
    signals: SignalRepository, publisher: Publisher, external_id: str
) -> Signal | None:
    if publisher.producer_id is not None:
        return await signals.by_producer_external_id(publisher.producer_id, external_id)
    # An admin's signal has no producer, and the unique (producer_id, external_id)
    # constraint treats NULLs as distinct: the admin's own account row is locked instead,
    # which serialises that admin's publishes until commit.
    await signals.lock_account(publisher.actor_id)
    return await signals.by_admin_external_id(publisher.actor_id, external_id)


def _new_signal(publisher: Publisher, data: SignalCreate, now: datetime, ttl_s: int) -> Signal:
    return Signal(
        id=ids.time_ordered(),
        producer_id=publisher.producer_id,
        created_by_user_id=None if publisher.producer_id else publisher.actor_id,
        external_id=data.external_id,
        instrument=data.instrument,
        side=data.side,
        order_type=data.order_type,
        entry_price=data.entry_price,
        stop_loss=data.stop_loss,
        take_profit=data.take_profit,
        volume=data.volume,
        status=SignalStatus.OPEN,
        expires_at=data.expires_at or now + timedelta(seconds=ttl_s),
        created_at=now,
    )


async def publish(
    session: AsyncSession, settings: Settings, publisher: Publisher, data: SignalCreate
) -> Published:
    """Create a signal, or return the original when this external_id was published before."""
    signals = SignalRepository(session)
    if data.external_id is not None:
        original = await _original(signals, publisher, data.external_id)
        if original is not None:
            return Published(original, created=False)
    signal = _new_signal(publisher, data, clock.utcnow(), settings.signal_ttl_s)
    if data.external_id is None:
        # Nothing another publish could race for: no savepoint, two round trips
        # fewer on the way to the devices waiting for this signal.
        signals.add(signal)
        await session.flush()
    else:
        try:
            # The unique (producer_id, external_id) constraint settles two identical
            # publishes racing each other: the loser waits for the winner's commit,
            # fails here, and answers with the winner's signal. The row is added inside
            # the savepoint, so that only the savepoint is lost, not the transaction.
            async with session.begin_nested():
                signals.add(signal)
                await session.flush()
        except IntegrityError:
            original = await _original(signals, publisher, data.external_id)
            if original is None:
                raise
            return Published(original, created=False)
    _audit(
        session,
        "signal.created",
        publisher,
        signal,
        instrument=signal.instrument,
        side=signal.side.value,
        order_type=signal.order_type.value,
        external_id=signal.external_id,
    )
    return Published(signal, created=True)


async def list_signals(
    session: AsyncSession, status: SignalStatus | None, page: PageParams, *, now: datetime
) -> tuple[Sequence[Signal], int]:
    """Newest first; ``status`` filters by the truthful status at ``now``."""
    return await SignalRepository(session).page(status, now, page)


async def get_signal(session: AsyncSession, signal_id: uuid.UUID) -> Signal:
    signal = await SignalRepository(session).get(signal_id)
    if signal is None:
        raise SignalNotFound()
    return signal


async def cancel(session: AsyncSession, publisher: Publisher, signal_id: uuid.UUID) -> Signal:
    """Cancel an open signal. A producer may cancel only its own (another's is a 404)."""
    signals = SignalRepository(session)
    signal = await signals.get(signal_id)
    if signal is None or (
        publisher.producer_id is not None and signal.producer_id != publisher.producer_id
    ):
        raise SignalNotFound()
    now = clock.utcnow()
    cancelled = await signals.cancel_if_open(signal.id, now)
    if cancelled is None:
        await session.refresh(signal)
        raise SignalNotOpen(f"The signal is {signal.status_at(now).value}")
    _audit(session, "signal.cancelled", publisher, cancelled)
    return cancelled


async def decide(
    session: AsyncSession, user_id: uuid.UUID, signal_id: uuid.UUID, decision: Decision
) -> SignalApproval:
    """Record a user's one decision on an open signal."""
    # Share lock: the signal cannot be cancelled between this check and the commit.
    signal = await SignalRepository(session).get_for_share(signal_id)
    if signal is None:
        raise SignalNotFound()
    now = clock.utcnow()
    if signal.status_at(now) is not SignalStatus.OPEN:
        raise SignalNotOpen(f"The signal is {signal.status_at(now).value}")
    approval = SignalApproval(
        signal_id=signal.id, user_id=user_id, decision=decision, decided_at=now
    )
    try:
        # The (signal_id, user_id) primary key allows one decision, even to two racing requests.
        async with session.begin_nested():
            ApprovalRepository(session).add(approval)
            await session.flush()
    except IntegrityError as exc:
        raise AlreadyDecided("You have already decided on this signal") from exc
    audit.record(
        session,
        f"signal.{decision.value}",
        actor_type=ActorType.USER,
        actor_id=user_id,
        target_type="signal",
        target_id=signal.id,
    )
    return approval


async def expire_due(session: AsyncSession, now: datetime) -> int:
    """Store ``expired`` on open signals past ``expires_at``; returns how many.

    Reads are truthful without it (``Signal.status_at``); the periodic job keeps the
    stored status, and the partial index of open signals, small."""
    return await SignalRepository(session).expire_due(now)
