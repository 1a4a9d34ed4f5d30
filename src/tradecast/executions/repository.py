from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Insert,
    Integer,
    Select,
    String,
    Table,
    Uuid,
    and_,
    bindparam,
    column,
    exists,
    func,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from tradecast.audit.models import PendingEvent
from tradecast.audit.repository import (
    EVENT_ROW_COLUMNS,
    event_row,
    event_values,
    insert_event,
    insert_event_if,
    insert_events,
)
from tradecast.db import (
    DriverStatement,
    Statements,
    UTCDateTime,
    column_names,
    insert_rows,
    json_row,
    json_rows,
    json_rows_value,
    json_table_rows,
    typed,
)
from tradecast.delivery.models import Delivery
from tradecast.delivery.repository import PENDING
from tradecast.devices.models import Device
from tradecast.executions.models import ExecutionReport, ExecutionType, ReportRow, Trade, TradeRow
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
# The attribute keys of a report's and a trade's columns, read once (``db.column_names``).
_REPORT_KEYS = tuple(key for _, key in column_names(_REPORTS))
_TRADE_KEYS = tuple(key for _, key in column_names(_TRADES))
# A stored report's columns, named ``stored_<column>`` beside the other reads.
_STORED = {f"stored_{column.key}": column for column in _REPORTS.columns}

_stored_report = _REPORTS.select().where(
    _REPORTS.c.device_id == _DEVICE_ID, _REPORTS.c.report_id == _REPORT_ID
)


def _report_context(device_id: Any, report_id: Any, signal_id: Any) -> Select[Any]:
    """Everything a new report is checked against, in one read: the device (no row
    if it is gone), a report already stored under this ``report_id``, the signal,
    and whether the device was ever given it. The three arguments are bind
    parameters, or a batch's columns."""
    delivered = (
        exists()
        .where(_DELIVERIES.c.device_id == device_id, _DELIVERIES.c.signal_id == signal_id)
        .correlate_except(_DELIVERIES)
    )
    return (
        select(
            _DEVICES.c.user_id,
            _DEVICES.c.is_active,
            _SIGNALS.c.id.label("signal_id"),
            _SIGNALS.c.instrument,
            _SIGNALS.c.side,
            delivered.label("delivered"),
            *(column.label(name) for name, column in _STORED.items()),
        )
        .select_from(_DEVICES)
        .outerjoin(_SIGNALS, _SIGNALS.c.id == signal_id)
        .outerjoin(
            _REPORTS, and_(_REPORTS.c.device_id == device_id, _REPORTS.c.report_id == report_id)
        )
        .where(_DEVICES.c.id == device_id)
    )


_CONTEXT = DriverStatement(_report_context(_DEVICE_ID, _REPORT_ID, _SIGNAL_ID))
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

# A batch of fills (``FillBatchRepository``, PostgreSQL only): each statement takes
# the whole batch in one bind parameter, as JSON rows (``db.json_rows``).


def _batch_context() -> Select[Any]:
    """``_report_context`` of every report in the batch, each row with the
    report's ``position``; a report of a device that is gone gives no row."""
    asks = json_rows(
        "asks",
        [
            column("position", Integer()),
            typed(_REPORTS.c.device_id),
            typed(_REPORTS.c.report_id),
            typed(_REPORTS.c.signal_id),
        ],
        "asks",
    )
    context = _report_context(asks.c.device_id, asks.c.report_id, asks.c.signal_id).lateral(
        "context"
    )
    return select(asks.c.position, context).select_from(asks.join(context, true()))


def _lock_trades() -> Insert:
    """``_LOCK_TRADE`` for many trades, taken in (device, signal) order: two
    batches lock their common trades in the same order and cannot deadlock. A
    trade that does not exist yet is inserted as given, its figures included."""
    given = json_table_rows(_TRADES, "given", "trades")
    return (
        insert_rows(_TRADES, given, given.c.device_id, given.c.signal_id)
        .on_conflict_do_update(
            index_elements=["device_id", "signal_id"], set_={"updated_at": _TRADES.c.updated_at}
        )
        .returning(*_TRADES.c)
    )


def _write_fills() -> Select[Any]:
    """The batch's reports and all they change, as one statement: the reports
    (``ON CONFLICT DO NOTHING``), their deliveries settled, the new figures of
    the trades that existed before (rows locked by ``_lock_trades``) and their
    audit events. Returns how many reports were stored: fewer than given means
    a copy of one was stored meanwhile, and the caller rolls the whole batch
    back."""
    reports = json_table_rows(_REPORTS, "reports", "reports")
    inserted = (
        insert_rows(_REPORTS, reports)
        .on_conflict_do_nothing(index_elements=["device_id", "report_id"])
        .returning(_REPORTS.c.id)
        .cte("inserted")
    )
    settled = (
        update(_DELIVERIES)
        .where(
            _DELIVERIES.c.device_id == reports.c.device_id,
            _DELIVERIES.c.signal_id == reports.c.signal_id,
            _DELIVERIES.c.settled_at.is_(None),
        )
        .values(settled_at=_NOW)
        .cte("settled")
    )
    figures = json_rows(
        "figures",
        [typed(_TRADES.c.id), *(typed(_TRADES.c[name]) for name in _RUNNING_FIGURES)],
        "figures",
    )
    saved = (
        update(_TRADES)
        .where(_TRADES.c.id == figures.c.id)
        .values({name: figures.c[name] for name in _RUNNING_FIGURES})
        .cte("saved")
    )
    audited = insert_events(json_rows("events", EVENT_ROW_COLUMNS, "events")).cte("audited")
    return (
        select(func.count().label("stored")).select_from(inserted).add_cte(settled, saved, audited)
    )


_BATCH_CONTEXT = DriverStatement(_batch_context())
_LOCK_TRADES = DriverStatement(_lock_trades())
_WRITE_FILLS = DriverStatement(_write_fills())


@dataclass(frozen=True)
class ReportContext:
    """What ``ReportRepository.context`` found for a new report."""

    owner_id: uuid.UUID
    device_active: bool
    stored: ReportRow | None
    signal_instrument: str | None
    signal_side: str | None
    delivered: bool


def _report_from(row: Mapping[str, Any], prefix: str = "") -> ReportRow:
    """A stored report as a plain value."""
    return ReportRow(**{key: row[f"{prefix}{key}"] for key in _REPORT_KEYS})


def _trade_from(row: Mapping[str, Any]) -> TradeRow:
    return TradeRow(**{key: row[key] for key in _TRADE_KEYS})


def _context_from(row: Mapping[str, Any]) -> ReportContext:
    has_signal = row["signal_id"] is not None
    return ReportContext(
        owner_id=row["user_id"],
        device_active=bool(row["is_active"]),
        stored=_report_from(row, "stored_") if row["stored_id"] is not None else None,
        signal_instrument=row["instrument"] if has_signal else None,
        signal_side=str(row["side"]) if has_signal else None,
        delivered=bool(row["delivered"]),
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
        return _context_from(rows[0]) if rows else None

    async def stored(self, device_id: uuid.UUID, report_id: str) -> ReportRow | None:
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

    async def lock_trade(self, template: TradeRow) -> TradeRow:
        """The trade of (device, signal), created empty if needed, locked for update.

        Two first fills racing to create the row settle on one; the row lock then
        serialises their read-modify-write of size and cost (SQLite serialises
        writers with BEGIN IMMEDIATE). The trade comes back as a detached value;
        ``write`` stores its new figures.
        """
        values = {key: getattr(template, key) for key in _TRADE_KEYS}
        (row,) = await self.statements.rows(_LOCK_TRADE, values)
        return _trade_from(row)

    async def write(
        self,
        report: ReportRow,
        *,
        trade: TradeRow | None,
        event: PendingEvent | None,
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
        values: dict[str, Any] = {key: getattr(report, key) for key in _REPORT_KEYS}
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


TradeKey = tuple[uuid.UUID, uuid.UUID]
"""A trade's (device, signal)."""


class FillBatchRepository:
    """The statements of a batch of fills (``executions.batch``), PostgreSQL only:
    one round trip each, whatever the batch's size."""

    def __init__(self, statements: Statements) -> None:
        self.statements = statements

    async def contexts(
        self, asks: Sequence[tuple[uuid.UUID, str, uuid.UUID]]
    ) -> dict[int, ReportContext]:
        """``ReportRepository.context`` of each (device, report_id, signal), by its
        position in ``asks``; a device that is gone has no entry."""
        rows = [
            {"position": position, "device_id": device, "report_id": report, "signal_id": signal}
            for position, (device, report, signal) in enumerate(asks)
        ]
        found = await self.statements.rows(_BATCH_CONTEXT, {"asks": json_rows_value(rows)})
        return {row["position"]: _context_from(row) for row in found}

    async def lock_trades(self, templates: Iterable[TradeRow]) -> dict[TradeKey, TradeRow]:
        """Each trade of distinct (device, signal), inserted as given if it is new,
        locked for update either way (in that order); as stored. A new trade
        comes back with its template's id, an existing one with its own."""
        rows = [json_row(_TRADES, template) for template in templates]
        locked = await self.statements.rows(_LOCK_TRADES, {"trades": json_rows_value(rows)})
        trades = (_trade_from(row) for row in locked)
        return {(trade.device_id, trade.signal_id): trade for trade in trades}

    async def write(
        self,
        reports: Sequence[ReportRow],
        trades: Iterable[TradeRow],
        events: Sequence[PendingEvent],
        now: datetime,
    ) -> int:
        """Store the reports, settle their deliveries, write ``trades``' figures
        (those that existed before the batch) and the audit events; how many
        reports were stored (all, unless a copy of one was stored meanwhile)."""
        values = {
            "reports": json_rows_value([json_row(_REPORTS, report) for report in reports]),
            "figures": json_rows_value(
                [
                    {"id": trade.id, **{name: getattr(trade, name) for name in _RUNNING_FIGURES}}
                    for trade in trades
                ]
            ),
            "events": json_rows_value([event_row(event) for event in events]),
            "now": now,
        }
        (row,) = await self.statements.rows(_WRITE_FILLS, values)
        return int(row["stored"])


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
