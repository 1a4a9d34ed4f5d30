"""The delivery queries: what is pending for a device, and what it was given."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

import asyncpg
from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Integer,
    Select,
    TextClause,
    Update,
    Uuid,
    bindparam,
    exists,
    func,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from tradecast.db import DriverStatement, RecordView, UTCDateTime
from tradecast.delivery.models import Delivery
from tradecast.devices.models import Device
from tradecast.signals.models import Decision, Signal, SignalApproval
from tradecast.signals.schemas import SignalFields
from tradecast.users.models import DeliveryMode, User

# A literal, not a bind parameter: the planner can then match the partial index
# ix_signals_open_created_at even for a generic prepared plan.
OPEN = text("signals.status = 'open'")


def pending_conditions(
    device_id: ColumnElement[uuid.UUID],
    owner_id: ColumnElement[uuid.UUID],
    auto_mode: ColumnElement[bool],
) -> tuple[ColumnElement[bool] | TextClause, ...]:
    """What makes a signal pending for a device (SPEC §4), for one device or, with
    columns of a joined row in place of the parameters, for many at once.

    Open and unexpired, let through by the owner (auto mode, or approved), and
    not settled by this device. The approval check is a primary-key lookup
    correlated to the signal. The settled check is the device's settled set,
    read once from the partial index ``ix_deliveries_settled`` (an index-only
    range scan, hashed) rather than probed once per open signal: with a hundred
    open signals the probes were most of the poll's database time
    (``docs/PERFORMANCE.md``). ``signal_id`` is never NULL, so ``NOT IN`` means
    what ``NOT EXISTS`` would.
    """
    approved = (
        exists()
        .where(
            SignalApproval.signal_id == Signal.id,
            SignalApproval.user_id == owner_id,
            SignalApproval.decision == Decision.APPROVED,
        )
        .correlate_except(SignalApproval)
    )
    settled = select(Delivery.signal_id).where(
        Delivery.device_id == device_id, Delivery.settled_at.is_not(None)
    )
    not_settled = Signal.id.not_in(settled.correlate_except(Delivery).scalar_subquery())
    now = bindparam("now", type_=UTCDateTime())
    return (OPEN, Signal.expires_at > now, or_(auto_mode, approved), not_settled)


def _pending_statement() -> Select[Signal]:
    """Open, unexpired signals the owner lets through and this device has not settled.

    One statement: the owner's delivery mode is read in a scalar subquery, and
    the open signals are walked in creation order on a partial index. Built once
    with bind parameters: constructing it per poll cost more CPU than running it.
    """
    owner_id = bindparam("owner_id", type_=Uuid())
    auto_mode = (
        select(User.delivery_mode).where(User.id == owner_id).scalar_subquery()
        == DeliveryMode.AUTO.value
    )
    conditions = pending_conditions(bindparam("device_id", type_=Uuid()), owner_id, auto_mode)
    return (
        select(Signal)
        .where(*conditions)
        .order_by(Signal.created_at, Signal.id)
        .limit(bindparam("limit", type_=Integer()))
    )


PENDING = _pending_statement()
"""The pending-signal statement, with bind parameters ``device_id``, ``owner_id``,
``now`` and ``limit``."""

# ``last_poll`` is kept to within this much: a device polling every few seconds
# rewrites its row once in this interval, not on every poll. It only has to tell
# whether the device polled within DEVICE_ONLINE_S (300 s).
LAST_POLL_STEP = timedelta(seconds=10)

_ACTIVE = select(Device.id).where(
    Device.id == bindparam("device_id", type_=Uuid()), Device.is_active.is_(True)
)

_TOUCH = (
    update(Device)
    .where(
        Device.id == bindparam("device_id", type_=Uuid()),
        Device.is_active.is_(True),
        or_(
            Device.last_poll.is_(None),
            Device.last_poll < bindparam("stale_before", type_=UTCDateTime()),
        ),
    )
    .values(last_poll=bindparam("now", type_=UTCDateTime()))
    .returning(Device.id)
)


def _touch_many_statement() -> Update:
    """PostgreSQL: ``last_poll`` moved on for several devices, waiting for no lock.

    For plain polls answered together (``delivery/batch.py``), run after their
    statement in a transaction of its own. A device whose row another
    transaction holds (an ACK, a report) is skipped and moved on by its next
    poll: the batch never waits on a device row, so it cannot close a cycle
    with a writer that holds a delivery row and waits for a device.
    """
    stale = (
        select(Device.id)
        .where(
            Device.id == func.any(bindparam("device_ids", type_=ARRAY(Uuid()))),
            Device.is_active.is_(True),
            or_(
                Device.last_poll.is_(None),
                Device.last_poll < bindparam("stale_before", type_=UTCDateTime()),
            ),
        )
        .order_by(Device.id)
        # The lock an UPDATE takes, which a delivery's foreign-key check does not wait for.
        .with_for_update(key_share=True, skip_locked=True)
    )
    return (
        update(Device)
        .where(Device.id.in_(stale.scalar_subquery()))
        .values(last_poll=bindparam("now", type_=UTCDateTime()))
        .returning(Device.id)
    )


TOUCH_MANY = DriverStatement(_touch_many_statement())
"""``last_poll`` moved on, with bind parameters ``device_ids``, ``now`` and
``stale_before``; returns the devices it moved."""


def pending_signals_query(
    device_id: uuid.UUID, owner_id: uuid.UUID, now: datetime, limit: int
) -> Select[Signal]:
    """The pending-signal statement with this poll's values bound."""
    return PENDING.params(device_id=device_id, owner_id=owner_id, now=now, limit=limit)


def _deliver_pending_statement() -> Select[Any]:
    """PostgreSQL: the whole poll in one statement.

    ``device`` is the device's row if it is active; ``touched`` moves its
    ``last_poll`` on when the stored one is older than ``LAST_POLL_STEP``;
    ``pending`` is the pending query (empty unless the device is active);
    ``delivered`` records first deliveries. The main query reads ``touched``,
    so its row lock is taken during the main query, before ``delivered`` (a
    data-modifying CTE the main query does not read, run after it) inserts
    any delivery row: the device-then-deliveries order every writer of a
    device's rows keeps. One row per pending signal, one row without a
    signal if none is pending, no row if the device is not active.

    In the steady state — a device polling every few seconds for signals it
    was already given — the statement writes nothing at all.
    """
    now = bindparam("now", type_=UTCDateTime())
    device_id = bindparam("device_id", type_=Uuid())
    device = _ACTIVE.cte("device")
    touched = _TOUCH.cte("touched")
    pending = PENDING.where(exists(select(device.c.id))).cte("pending")
    delivered = first_delivery_only(
        postgresql.insert(Delivery).from_select(
            ["device_id", "signal_id", "first_delivered_at"],
            select(device_id, pending.c.id, now),
        )
    ).cte("delivered")
    # Core columns, not ORM entities: the poll only serialises them.
    return (
        select(device.c.id.label("active_device"), *pending.c)
        .select_from(device.outerjoin(touched, true()).outerjoin(pending, true()))
        .add_cte(delivered)
        .order_by(pending.c.created_at, pending.c.id)
    )


def first_delivery_only(insert: Any) -> Any:
    """The first delivery is recorded; giving the signal again writes nothing."""
    return insert.on_conflict_do_nothing(index_elements=[Delivery.device_id, Delivery.signal_id])


_DELIVER_PENDING = DriverStatement(_deliver_pending_statement())


async def deliver_pending_at_once(
    connection: asyncpg.Connection,
    device_id: uuid.UUID,
    owner_id: uuid.UUID,
    now: datetime,
    limit: int,
) -> Sequence[SignalFields] | None:
    """PostgreSQL: the whole poll as one statement on a driver connection in
    autocommit (``Database.driver_connection``); None if the device is not active."""
    values = {
        "device_id": device_id,
        "owner_id": owner_id,
        "now": now,
        "stale_before": now - LAST_POLL_STEP,
        "limit": limit,
    }
    rows = await _DELIVER_PENDING.fetch(connection, values)
    if not rows:
        return None
    return [cast(SignalFields, RecordView(row)) for row in rows if row["id"] is not None]


class DeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def pending_signals_for(
        self, device_id: uuid.UUID, owner_id: uuid.UUID, now: datetime, limit: int
    ) -> Sequence[Signal]:
        query = pending_signals_query(device_id, owner_id, now, limit)
        return (await self.session.scalars(query)).all()

    async def deliver_pending(
        self,
        device_id: uuid.UUID,
        owner_id: uuid.UUID,
        now: datetime,
        limit: int,
        *,
        touch: bool = True,
    ) -> Sequence[SignalFields] | None:
        """The pending signals, with first deliveries and (with ``touch``) ``last_poll``
        recorded, statement by statement in the session's transaction; None when the
        device is no longer active (deleted since its key was cached).

        For SQLite, which has no DML in CTEs; on PostgreSQL the same is one statement,
        ``deliver_pending_at_once``.
        """
        # The device row first, as every writer of a device's rows does (ACKs
        # update last_ack before settling): one order, so no deadlock.
        if await self.session.scalar(_ACTIVE, {"device_id": device_id}) is None:
            return None
        if touch:
            await self.touch_last_poll(device_id, now)
        signals = await self.pending_signals_for(device_id, owner_id, now, limit)
        await self.record_deliveries(device_id, [signal.id for signal in signals], now)
        return signals

    async def record_deliveries(
        self, device_id: uuid.UUID, signal_ids: Sequence[uuid.UUID], now: datetime
    ) -> None:
        """One row per (device, signal), written by the first delivery only."""
        if not signal_ids:
            return
        dialect = sqlite if self.session.get_bind().dialect.name == "sqlite" else postgresql
        insert = dialect.insert(Delivery).values(
            [
                {
                    "device_id": device_id,
                    "signal_id": signal_id,
                    "first_delivered_at": now,
                }
                for signal_id in signal_ids
            ]
        )
        await self.session.execute(first_delivery_only(insert))

    async def touch_last_poll(self, device_id: uuid.UUID, now: datetime) -> None:
        """Record the poll, unless the stored ``last_poll`` is within ``LAST_POLL_STEP``."""
        values = {"device_id": device_id, "now": now, "stale_before": now - LAST_POLL_STEP}
        await self.session.execute(_TOUCH, values)

    async def delivery(self, device_id: uuid.UUID, signal_id: uuid.UUID) -> Delivery | None:
        return await self.session.get(Delivery, (device_id, signal_id))
