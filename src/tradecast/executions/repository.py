from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Select,
    String,
    Table,
    Uuid,
    bindparam,
    exists,
    func,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from tradecast.audit.models import AuditEvent
from tradecast.audit.repository import event_values, insert_event, insert_event_if
from tradecast.db import DriverStatement, Statements, UTCDateTime
from tradecast.delivery.models import Delivery
from tradecast.delivery.repository import PENDING
from tradecast.devices.models import Device
from tradecast.executions.models import ExecutionReport, ExecutionType, Trade
from tradecast.kit.pagination import PageParams
from tradecast.signals.models import Signal


def _param(column: Any) -> Any:
    return bindparam(column.key, type_=column.type)


# The report path's statements: Core, built once with bind parameters and run by
# ``Statements`` (a prepared statement on asyncpg's own pool on PostgreSQL, the
# request's session on SQLite). Building them per report, and the ORM around
# them, cost more CPU than the database spent running them. ``ON CONFLICT`` is
# written once: SQLite compiles PostgreSQL's form as its own.
_REPORTS = cast(Table, ExecutionReport.__table__)
_TRADES = cast(Table, Trade.__table__)
_DELIVERIES = cast(Table, Delivery.__table__)
_DEVICES = cast(Table, Device.__table__)
_SIGNALS = cast(Table, Signal.__table__)
_DEVICE_ID = bindparam("device_id", type_=Uuid())
_SIGNAL_ID = bindparam("signal_id", type_=Uuid())
_REPORT_ID = bindparam("report_id", type_=String())
_NOW = bindparam("now", type_=UTCDateTime())
# A stored report's columns, named ``stored_<column>`` beside the other reads.
_STORED = {f"stored_{column.key}": column for column in _REPORTS.columns}

_stored_report = _REPORTS.select().where(
    _REPORTS.c.device_id == _DEVICE_ID, _REPORTS.c.report_id == _REPORT_ID
)


def _report_context() -> Select[Any]:
    """Everything a new report is checked against, in one read: the device (no row
    if it is gone), a report already stored under this ``report_id``, the signal,
    and whether the device was ever given it."""
    stored = _stored_report.subquery("stored")
    delivered = exists().where(
        _DELIVERIES.c.device_id == _DEVICE_ID, _DELIVERIES.c.signal_id == _SIGNAL_ID
    )
    return (
        select(
            _DEVICES.c.user_id,
            _DEVICES.c.is_active,
            _SIGNALS.c.id.label("signal_id"),
            _SIGNALS.c.instrument,
            _SIGNALS.c.side,
            delivered.label("delivered"),
            *(stored.c[column.key].label(name) for name, column in _STORED.items()),
        )
        .select_from(_DEVICES)
        .outerjoin(_SIGNALS, _SIGNALS.c.id == _SIGNAL_ID)
        .outerjoin(stored, true())
        .where(_DEVICES.c.id == _DEVICE_ID)
    )


_CONTEXT = DriverStatement(_report_context())
_STORED_REPORT = DriverStatement(_stored_report)
_PENDING_ONE = DriverStatement(
    PENDING.with_only_columns(_SIGNALS.c.id).where(_SIGNALS.c.id == _SIGNAL_ID)
)
_insert_report = (
    postgresql.insert(_REPORTS)
    .values({column.key: _param(column) for column in _REPORTS.columns})
    .on_conflict_do_nothing(index_elements=["device_id", "report_id"])
    .returning(_REPORTS.c.id)
)
# The empty trade, or on conflict a no-op update of the existing one, which locks
# it: either way the row comes back, locked until commit.
_LOCK_TRADE = DriverStatement(
    postgresql.insert(_TRADES)
    .values({column.key: _param(column) for column in _TRADES.columns})
    .on_conflict_do_update(
        index_elements=["device_id", "signal_id"], set_={"updated_at": _TRADES.c.updated_at}
    )
    .returning(*_TRADES.c)
)
# (An UPDATE's bind parameters may not share a name with a column of its table.)
_settle = (
    update(_DELIVERIES)
    .where(
        _DELIVERIES.c.device_id == bindparam("b_device_id", type_=Uuid()),
        _DELIVERIES.c.signal_id == bindparam("b_signal_id", type_=Uuid()),
        _DELIVERIES.c.settled_at.is_(None),
    )
    .values(settled_at=_NOW)
)
_mark_acked = (
    update(_DEVICES)
    .where(_DEVICES.c.id == bindparam("b_device_id", type_=Uuid()))
    .values(last_ack=_NOW)
)
_RUNNING_FIGURES = ("size", "cost", "price", "notional", "fill_count", "updated_at")
_save_fill = (
    update(_TRADES)
    .where(_TRADES.c.id == bindparam("b_id", type_=Uuid()))
    .values({name: bindparam(f"v_{name}", type_=_TRADES.c[name].type) for name in _RUNNING_FIGURES})
)
_AUDIT = "audit_"


def _write_at_once(kind: ExecutionType) -> DriverStatement:
    """PostgreSQL: a new report and all it changes, as one statement.

    ``inserted`` stores the report unless its ``report_id`` is taken; each
    further part runs only if it did, so a duplicate in flight changes nothing.
    For an ACK, the device's ``last_ack`` is written before the delivery is
    settled (the settlement waits for ``acked``): the device row, then the
    delivery row, the order the poll takes them in. A fill writes the trade's
    new figures (its row already locked by ``lock_trade``); fills and errors
    write their audit event. The statement returns the report's id, or no row.
    """
    inserted = _insert_report.cte("inserted")
    done = exists(select(inserted.c.id))
    parts = []
    if kind is ExecutionType.ACK:
        acked = _mark_acked.where(done).returning(_DEVICES.c.id).cte("acked")
        parts.append(acked)
        done = exists(select(acked.c.id))
    parts.append(_settle.where(done).cte("settled"))
    if kind is ExecutionType.FILL:
        parts.append(_save_fill.where(done).cte("saved"))
    if kind is not ExecutionType.ACK:
        parts.append(insert_event_if(done, _AUDIT).cte("audited"))
    return DriverStatement(select(inserted.c.id).add_cte(*parts))


_INSERT_REPORT = DriverStatement(_insert_report)
_SETTLE = DriverStatement(_settle)
_MARK_ACKED = DriverStatement(_mark_acked)
_SAVE_FILL = DriverStatement(_save_fill)
_WRITE_AT_ONCE = {kind: _write_at_once(kind) for kind in ExecutionType}


@dataclass(frozen=True)
class ReportContext:
    """What ``ReportRepository.context`` found for a new report."""

    owner_id: uuid.UUID
    device_active: bool
    stored: ExecutionReport | None
    signal_instrument: str | None
    signal_side: str | None
    delivered: bool


def _report_from(row: Mapping[str, Any], prefix: str = "") -> ExecutionReport:
    """A stored report as a detached value (nothing to flush)."""
    return ExecutionReport(
        **{column.key: row[f"{prefix}{column.key}"] for column in _REPORTS.columns}
    )


class ReportRepository:
    """The statements of the device report path, one round trip each."""

    def __init__(self, statements: Statements) -> None:
        self.statements = statements

    async def context(
        self, device_id: uuid.UUID, report_id: str, signal_id: uuid.UUID
    ) -> ReportContext | None:
        """None if the device does not exist (any more)."""
        values = {"device_id": device_id, "report_id": report_id, "signal_id": signal_id}
        rows = await self.statements.rows(_CONTEXT, values)
        if not rows:
            return None
        row = rows[0]
        has_signal = row["signal_id"] is not None
        return ReportContext(
            owner_id=row["user_id"],
            device_active=bool(row["is_active"]),
            stored=_report_from(row, "stored_") if row["stored_id"] is not None else None,
            signal_instrument=row["instrument"] if has_signal else None,
            signal_side=str(row["side"]) if has_signal else None,
            delivered=bool(row["delivered"]),
        )

    async def stored(self, device_id: uuid.UUID, report_id: str) -> ExecutionReport | None:
        values = {"device_id": device_id, "report_id": report_id}
        rows = await self.statements.rows(_STORED_REPORT, values)
        return _report_from(rows[0]) if rows else None

    async def is_pending_for(
        self, device_id: uuid.UUID, owner_id: uuid.UUID, signal_id: uuid.UUID, now: datetime
    ) -> bool:
        values = {
            "device_id": device_id,
            "owner_id": owner_id,
            "signal_id": signal_id,
            "now": now,
            "limit": 1,
        }
        return bool(await self.statements.rows(_PENDING_ONE, values))

    async def lock_trade(self, template: Trade) -> Trade:
        """The trade of (device, signal), created empty if needed, locked for update.

        Two first fills racing to create the row settle on one; the row lock then
        serialises their read-modify-write of size and cost (SQLite serialises
        writers with BEGIN IMMEDIATE). The trade comes back as a detached value;
        ``write`` stores its new figures.
        """
        values = {column.key: getattr(template, column.key) for column in _TRADES.columns}
        (row,) = await self.statements.rows(_LOCK_TRADE, values)
        return Trade(**{column.key: row[column.key] for column in _TRADES.columns})

    async def write(
        self,
        report: ExecutionReport,
        *,
        trade: Trade | None,
        event: AuditEvent | None,
        now: datetime,
    ) -> bool:
        """Store ``report`` unless (device, report_id) exists, and with it: an ACK's
        ``last_ack``, the delivery's settlement, a fill's ``trade`` figures and the
        audit ``event``. True if this call stored it.

        ``ON CONFLICT DO NOTHING`` on the unique constraint: of any number of
        concurrent copies exactly one inserts; the others wait for it to commit,
        change nothing, and can then read it. PostgreSQL does it all in one
        statement (``_write_at_once``), SQLite one statement after another.
        """
        values: dict[str, Any] = {
            column.key: getattr(report, column.key) for column in _REPORTS.columns
        }
        values.update(b_device_id=report.device_id, b_signal_id=report.signal_id, now=now)
        if trade is not None:
            values.update({f"v_{name}": getattr(trade, name) for name in _RUNNING_FIGURES})
            values["b_id"] = trade.id
        if event is not None:
            values.update(event_values(event, _AUDIT))
        if not self.statements.is_sqlite:
            return bool(await self.statements.rows(_WRITE_AT_ONCE[report.execution_type], values))
        if not await self.statements.rows(_INSERT_REPORT, values):
            return False
        if report.execution_type is ExecutionType.ACK:
            await self.statements.execute(_MARK_ACKED, values)
        await self.statements.execute(_SETTLE, values)
        if trade is not None:
            await self.statements.execute(_SAVE_FILL, values)
        if event is not None:
            await insert_event(self.statements, event)
        return True


@dataclass(frozen=True)
class TradeFilter:
    instrument: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class ExecutionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def for_signal(
        self, signal_id: uuid.UUID, owner_id: uuid.UUID | None
    ) -> Sequence[ExecutionReport]:
        """Reports on a signal, oldest first; only ``owner_id``'s devices unless None."""
        query = select(ExecutionReport).where(ExecutionReport.signal_id == signal_id)
        if owner_id is not None:
            query = query.join(Device, Device.id == ExecutionReport.device_id).where(
                Device.user_id == owner_id
            )
        query = query.order_by(ExecutionReport.created_at, ExecutionReport.id)
        return (await self.session.scalars(query)).all()

    async def for_device(self, device_id: uuid.UUID) -> Sequence[ExecutionReport]:
        return (
            await self.session.scalars(
                select(ExecutionReport)
                .where(ExecutionReport.device_id == device_id)
                .order_by(ExecutionReport.created_at)
            )
        ).all()

    async def signals(self, signal_ids: Iterable[uuid.UUID]) -> Sequence[Signal]:
        ids = list(signal_ids)
        if not ids:
            return []
        return (await self.session.scalars(select(Signal).where(Signal.id.in_(ids)))).all()

    async def deliveries_of_signal(self, signal_id: uuid.UUID) -> Sequence[Delivery]:
        return (
            await self.session.scalars(select(Delivery).where(Delivery.signal_id == signal_id))
        ).all()

    async def deliveries_of_device(self, device_id: uuid.UUID) -> Sequence[Delivery]:
        return (
            await self.session.scalars(select(Delivery).where(Delivery.device_id == device_id))
        ).all()


class TradeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _filtered(self, user_id: uuid.UUID, criteria: TradeFilter) -> Select[Trade]:
        query = select(Trade).where(Trade.user_id == user_id)
        if criteria.instrument is not None:
            query = query.where(Trade.instrument == criteria.instrument)
        if criteria.since is not None:
            query = query.where(Trade.opened_at >= criteria.since)
        if criteria.until is not None:
            query = query.where(Trade.opened_at < criteria.until)
        return query

    async def page_for_user(
        self, user_id: uuid.UUID, criteria: TradeFilter, page: PageParams
    ) -> tuple[Sequence[Trade], int]:
        query = self._filtered(user_id, criteria)
        total = await self.session.scalar(select(func.count()).select_from(query.subquery()))
        rows = await self.session.scalars(
            query.order_by(Trade.opened_at.desc(), Trade.id.desc())
            .limit(page.limit)
            .offset(page.offset)
        )
        return rows.all(), int(total or 0)
