"""Polls answered together: woken long polls, and on PostgreSQL the polls' own looks.

A published signal wakes every held long poll at once. If each then looked
for its signals on its own, 10,000 waiting devices would be 10,000
transactions queueing for a pool of 30 connections, and the last device
would hear of the signal seconds after the first. Instead a woken poll hands
its question — device, owner, limit — to the process's ``DeliveryBatcher``,
which answers up to ``batch_size`` of them with one statement: on PostgreSQL
the pending signals of every device in the batch and the upsert of their
deliveries, in one transaction of the batcher's own.

Under load the plain polls do the same in a batcher of their own
(``LookBatcher``, PostgreSQL only; ``delivery/service.look``): the replies of
one Redis pipeline let dozens of verified polls reach their look in the same
turn of the event loop, and one statement answering all of them costs
PostgreSQL and the worker a fraction of one statement each
(``docs/PERFORMANCE.md``). It runs in autocommit on asyncpg's own pool, as a
single poll does; a look alone in its batch runs the single poll's statement
(``deliver_pending_at_once``), which is cheaper for one device. Woken polls
keep their transaction on the engine's pool: on that pool a wake-up of 10,000
devices measured 1.5–1.7 s to the last answer, on asyncpg's own 2.3–2.6 s.

Decisions:

- **Correct by construction**: the statement is the per-device pending query
  (``delivery/repository.py``) run for many devices through a lateral join;
  the owner's delivery mode, approvals and settled deliveries are read from
  the database as for any poll, not inferred from the notification.
- **Its own unit of work**: a poll's request holds no transaction while it
  waits, and the deliveries it is answered with are committed by the batch
  before the answer leaves.
- **``last_poll``**: a plain look records the poll; a woken one does not
  (``last_poll`` was recorded when the poll began, at most 30 s earlier).
  The look batch's statement reads each device's ``last_poll``; if some must
  move on (older than ``LAST_POLL_STEP``), a second statement moves them on,
  skipping any device whose row another transaction holds (its next poll
  moves it on).
- **Lock order**: the batch statement takes no device row lock; it inserts
  delivery rows in (device, signal) order, so two batches cannot deadlock
  each other, and an ACK (device row, then that device's delivery) never
  waits on a batch that waits on it. The ``last_poll`` statement waits for
  no lock at all.
- **Gathering** (``kit.batching.TurnBatcher``): the first poll opens a
  batch and yields to the event loop once before it runs, so the polls
  arriving in the same turn join it. At most ``concurrency`` batches run at
  once, each on one pooled connection; polls arriving while they all run wait
  for a free one, and the next batch takes every one waiting (up to
  ``batch_size``).
- A device deleted meanwhile is answered with None (its request then
  answers 401 ``key_inactive``), as its own look would have been.
- On SQLite a woken batch runs the per-device statements in one transaction,
  and a plain look its own transaction (``delivery/service.look``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import asyncpg
from sqlalchemy import (
    ARRAY,
    Integer,
    Select,
    Uuid,
    and_,
    bindparam,
    func,
    select,
    true,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from tradecast.db import Database, DriverStatement, RecordView, UTCDateTime
from tradecast.delivery.models import Delivery
from tradecast.delivery.repository import (
    LAST_POLL_STEP,
    TOUCH_MANY,
    DeliveryRepository,
    deliver_pending_at_once,
    first_delivery_only,
    pending_conditions,
)
from tradecast.devices.models import Device
from tradecast.kit import clock
from tradecast.kit.batching import TurnBatcher
from tradecast.signals.models import Signal
from tradecast.signals.schemas import SignalFields
from tradecast.users.models import DeliveryMode, User


@dataclass
class _Ask:
    device_id: uuid.UUID
    owner_id: uuid.UUID
    limit: int
    answer: asyncio.Future[Sequence[SignalFields] | None] = field(repr=False)


def _batch_statement() -> Select[Any]:
    """PostgreSQL: pending signals for many devices, deliveries recorded, in one statement.

    One row per (device, pending signal), and one row with no signal for an
    active device that has nothing pending; inactive devices give no row.
    """
    asks = select(
        func.unnest(bindparam("device_ids", type_=ARRAY(Uuid()))).label("device_id"),
        func.unnest(bindparam("owner_ids", type_=ARRAY(Uuid()))).label("owner_id"),
        func.unnest(bindparam("limits", type_=ARRAY(Integer()))).label("lim"),
    ).subquery("asks")
    live = (
        select(
            asks.c.device_id,
            asks.c.owner_id,
            asks.c.lim,
            (User.delivery_mode == DeliveryMode.AUTO.value).label("auto"),
            Device.last_poll,
        )
        .join(Device, and_(Device.id == asks.c.device_id, Device.is_active.is_(True)))
        .join(User, User.id == asks.c.owner_id)
        .cte("live")
    )
    per_device = (
        select(Signal)
        .where(*pending_conditions(live.c.device_id, live.c.owner_id, live.c.auto))
        .order_by(Signal.created_at, Signal.id)
        .limit(live.c.lim)
        .correlate(live)
        .lateral("per_device")
    )
    pending = (
        select(
            live.c.device_id.label("for_device"),
            live.c.last_poll.label("device_last_poll"),
            per_device,
        )
        .select_from(live.outerjoin(per_device, true()))
        .cte("pending")
    )
    delivered = first_delivery_only(
        postgresql.insert(Delivery).from_select(
            ["device_id", "signal_id", "first_delivered_at"],
            select(pending.c.for_device, pending.c.id, bindparam("now", type_=UTCDateTime()))
            .where(pending.c.id.is_not(None))
            .order_by(pending.c.for_device, pending.c.id),
        )
    ).cte("delivered")
    # Core columns, not ORM entities, as for a single poll: they are only serialised.
    return (
        select(*pending.c)
        .add_cte(delivered)
        .order_by(pending.c.for_device, pending.c.created_at, pending.c.id)
    )


BATCH = _batch_statement()
"""The batch statement, with bind parameters ``device_ids``, ``owner_ids``, ``limits``
(parallel arrays) and ``now``."""


def batch_values(asks: Sequence[tuple[uuid.UUID, uuid.UUID, int]], now: datetime) -> dict[str, Any]:
    """``BATCH``'s values for ``asks`` (device, owner, limit)."""
    return {
        "device_ids": [device_id for device_id, _, _ in asks],
        "owner_ids": [owner_id for _, owner_id, _ in asks],
        "limits": [limit for _, _, limit in asks],
        "now": now,
    }


BATCH_AT_ONCE = DriverStatement(BATCH)
"""``BATCH`` compiled once for a driver connection (``Database.driver_connection``)."""


async def deliver_batch(
    session: AsyncSession, asks: Sequence[tuple[uuid.UUID, uuid.UUID, int]], now: datetime
) -> dict[uuid.UUID, list[SignalFields]]:
    """Pending signals of each active device in ``asks`` (device, owner, limit),
    with their deliveries recorded in the session's transaction, ``last_poll``
    left as it is; devices that are no longer active are left out. On SQLite
    each device's statements in turn."""
    answers: dict[uuid.UUID, list[SignalFields]] = {}
    if session.get_bind().dialect.name == "sqlite":
        repo = DeliveryRepository(session)
        for device_id, owner_id, limit in asks:
            signals = await repo.deliver_pending(device_id, owner_id, now, limit, touch=False)
            if signals is not None:
                answers[device_id] = list(signals)
        return answers
    for row in await session.execute(BATCH, batch_values(asks, now)):
        signals = answers.setdefault(row.for_device, [])
        if row.id is not None:
            # A Row has every column of the signal as an attribute, as SignalFields asks.
            signals.append(cast(SignalFields, row))
    return answers


async def deliver_batch_at_once(
    connection: asyncpg.Connection,
    asks: Sequence[tuple[uuid.UUID, uuid.UUID, int]],
    now: datetime,
    *,
    touch: bool = True,
) -> dict[uuid.UUID, list[SignalFields]]:
    """PostgreSQL, on a driver connection in autocommit: the polls of ``asks``
    (device, owner, limit), each active device's pending signals with their
    deliveries and, with ``touch``, its ``last_poll`` recorded; devices that
    are no longer active are left out.

    With ``touch``, one poll alone is the single poll's statement
    (``deliver_pending_at_once``), cheaper than the batch's for one device.
    Otherwise ``BATCH``, then, if ``touch`` and some ``last_poll`` is older than
    ``LAST_POLL_STEP``, ``TOUCH_MANY`` in a transaction of its own, which skips
    a device whose row another transaction holds.
    """
    if touch and len(asks) == 1:
        ((device_id, owner_id, limit),) = asks
        signals = await deliver_pending_at_once(connection, device_id, owner_id, now, limit)
        return {} if signals is None else {device_id: list(signals)}
    answers: dict[uuid.UUID, list[SignalFields]] = {}
    stale_before = now - LAST_POLL_STEP
    stale: list[uuid.UUID] = []
    for row in await BATCH_AT_ONCE.fetch(connection, batch_values(asks, now)):
        device_id = row["for_device"]
        signals = answers.get(device_id)
        if signals is None:
            signals = answers[device_id] = []
            last_poll = row["device_last_poll"]
            if touch and (last_poll is None or last_poll < stale_before):
                stale.append(device_id)
        if row["id"] is not None:
            signals.append(cast(SignalFields, RecordView(row)))
    if stale:
        values = {"device_ids": sorted(stale), "now": now, "stale_before": stale_before}
        await TOUCH_MANY.fetch(connection, values)
    return answers


class DeliveryBatcher(TurnBatcher[_Ask]):
    """Woken long polls, answered in a transaction on the engine's pool; on
    PostgreSQL a poll woken alone in autocommit on asyncpg's own pool."""

    def __init__(self, db: Database, *, batch_size: int = 500, concurrency: int = 4) -> None:
        super().__init__(batch_size=batch_size, concurrency=concurrency)
        self.db = db

    async def deliver(
        self, device_id: uuid.UUID, owner_id: uuid.UUID, limit: int
    ) -> Sequence[SignalFields] | None:
        """The device's pending signals, delivered; None if the device is no longer active."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Sequence[SignalFields] | None] = loop.create_future()
        self.submit(_Ask(device_id, owner_id, limit, answer))
        return await answer

    def abandon(self, items: list[_Ask]) -> None:
        # The app stopping with polls waiting: they get no answer.
        for ask in items:
            ask.answer.cancel()

    async def run(self, batch: list[_Ask]) -> None:
        live = [ask for ask in batch if not ask.answer.done()]  # cancelled: client left
        if not live:
            return
        # One question per device: two polls held by one device share one look.
        limits: dict[uuid.UUID, tuple[uuid.UUID, int]] = {}
        for ask in live:
            _, limit = limits.get(ask.device_id, (ask.owner_id, 0))
            limits[ask.device_id] = (ask.owner_id, max(limit, ask.limit))
        asks = [(device, owner, limit) for device, (owner, limit) in limits.items()]
        try:
            answers = await self.answers(asks, clock.utcnow())
        except Exception as exc:
            for ask in live:
                if not ask.answer.done():
                    ask.answer.set_exception(exc)
            return
        for ask in live:
            if not ask.answer.done():
                signals = answers.get(ask.device_id)
                ask.answer.set_result(None if signals is None else signals[: ask.limit])

    async def answers(
        self, asks: list[tuple[uuid.UUID, uuid.UUID, int]], now: datetime
    ) -> dict[uuid.UUID, list[SignalFields]]:
        if len(asks) == 1 and not self.db.is_sqlite:
            # One device woken, as when a signal reaches a quiet service: the batch
            # statement alone in autocommit answers it in about half the time of a
            # transaction on the engine's pool (0.9 ms against 1.6 ms at the median),
            # with stalls past 10 ms a third as often (docs/PERFORMANCE.md). Large
            # wake-ups stay on the engine's pool, where 10,000 held polls were
            # answered sooner.
            async with self.db.driver_connection() as connection:
                return await deliver_batch_at_once(connection, asks, now, touch=False)
        async with self.db.sessionmaker() as session, session.begin():
            return await deliver_batch(session, asks, now)


class LookBatcher(DeliveryBatcher):
    """PostgreSQL: plain looks (a poll's first and last), ``last_poll`` recorded, in
    autocommit on asyncpg's own pool."""

    async def answers(
        self, asks: list[tuple[uuid.UUID, uuid.UUID, int]], now: datetime
    ) -> dict[uuid.UUID, list[SignalFields]]:
        async with self.db.driver_connection() as connection:
            return await deliver_batch_at_once(connection, asks, now)
