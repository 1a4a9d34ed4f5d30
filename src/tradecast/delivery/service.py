"""Delivery to devices: the poll, plain or long."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from tradecast.delivery.batch import DeliveryBatcher
from tradecast.delivery.repository import DeliveryRepository
from tradecast.delivery.wakeups import WakeupHub
from tradecast.kit import clock
from tradecast.signals.models import Signal
from tradecast.signed.errors import KeyInactive


async def poll(
    session: AsyncSession,
    hub: WakeupHub,
    batcher: DeliveryBatcher,
    *,
    device_id: uuid.UUID,
    owner_id: uuid.UUID,
    limit: int,
    wait_s: float,
) -> Sequence[Signal]:
    """The signals pending for a device, waiting up to ``wait_s`` for one to appear.

    Delivery is at least once: a signal is returned by every poll until the
    device ACKs it or reports an error. Each returned signal's delivery is
    recorded (first time kept), and the device's ``last_poll`` is updated.
    A device deleted since its key was verified answers ``KeyInactive``.
    """
    repo = DeliveryRepository(session)
    deadline = time.monotonic() + wait_s
    # Subscribe before looking, so that a signal committed in between still wakes us.
    with hub.subscribe(owner_id) as subscription:
        signals = await _deliver(repo, device_id, owner_id, limit)
        while not signals:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return signals
            # Hold no transaction (on SQLite: no lock) while the request waits.
            await session.rollback()
            if not await hub.wait(subscription, remaining):
                # Timed out: one last look, then answer with whatever is there.
                return await _deliver(repo, device_id, owner_id, limit)
            # Woken: wait on fresh events from here, then look together with the
            # other polls this notification woke (delivery/batch.py).
            subscription = hub.renew(subscription)
            signals = _active(await batcher.deliver(device_id, owner_id, limit))
        return signals


async def _deliver(
    repo: DeliveryRepository, device_id: uuid.UUID, owner_id: uuid.UUID, limit: int
) -> Sequence[Signal]:
    return _active(await repo.deliver_pending(device_id, owner_id, clock.utcnow(), limit))


def _active(signals: Sequence[Signal] | None) -> Sequence[Signal]:
    if signals is None:
        raise KeyInactive()
    return signals
