"""Delivery to devices: the poll, plain or long."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

from tradecast.db import Database
from tradecast.delivery.batch import DeliveryBatcher, LookBatcher
from tradecast.delivery.repository import DeliveryRepository
from tradecast.delivery.wakeups import WakeupHub
from tradecast.kit import clock
from tradecast.signals.schemas import SignalFields
from tradecast.signed.errors import KeyInactive


async def poll(
    db: Database,
    hub: WakeupHub,
    batcher: DeliveryBatcher,
    looks: LookBatcher | None,
    *,
    device_id: uuid.UUID,
    owner_id: uuid.UUID,
    limit: int,
    wait_s: float,
) -> Sequence[SignalFields]:
    """The signals pending for a device, waiting up to ``wait_s`` for one to appear.

    Delivery is at least once: a signal is returned by every poll until the
    device ACKs it or reports an error. Each returned signal's delivery is
    recorded (first time kept), and the device's ``last_poll`` is updated.
    A device deleted since its key was verified answers ``KeyInactive``.

    Each look is its own unit of work, committed before the answer is built
    (``docs/DELIVERY.md``); nothing is held open while the poll waits.
    """
    deadline = time.monotonic() + wait_s
    # Subscribe before looking, so that a signal committed in between still wakes us.
    with hub.subscribe(owner_id) as subscription:
        signals = await look(db, looks, device_id, owner_id, limit)
        while not signals:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return signals
            if not await hub.wait(subscription, remaining):
                # Timed out: one last look, then answer with whatever is there.
                return await look(db, looks, device_id, owner_id, limit)
            # Woken: wait on fresh events from here, then look together with the
            # other polls this notification woke (delivery/batch.py).
            subscription = hub.renew(subscription)
            signals = _active(await batcher.deliver(device_id, owner_id, limit))
        return signals


async def look(
    db: Database,
    looks: LookBatcher | None,
    device_id: uuid.UUID,
    owner_id: uuid.UUID,
    limit: int,
) -> Sequence[SignalFields]:
    """One look: the pending signals, their deliveries and ``last_poll`` recorded.

    On PostgreSQL (``looks``) the looks that reach this point in the same turn of
    the event loop are answered together (``delivery/batch.py``): one statement
    in autocommit on asyncpg's own connection for all of them (no BEGIN/COMMIT
    round trips, no SQLAlchemy layer), and a second one if some ``last_poll``
    must move on; a look alone is the single poll's statement. On SQLite four
    statements in one transaction.
    """
    if looks is not None:
        return _active(await looks.deliver(device_id, owner_id, limit))
    async with db.sessionmaker() as session, session.begin():
        found = await DeliveryRepository(session).deliver_pending(
            device_id, owner_id, clock.utcnow(), limit
        )
    return _active(found)


def _active(signals: Sequence[SignalFields] | None) -> Sequence[SignalFields]:
    if signals is None:
        raise KeyInactive()
    return signals
