from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
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
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from tradecast.db import UTCDateTime
from tradecast.delivery.models import Delivery
from tradecast.delivery.repository import pending_signals_query
from tradecast.devices.models import Device
from tradecast.executions.models import ExecutionReport, Trade
from tradecast.kit.pagination import PageParams
from tradecast.signals.models import Signal


def _param(column: Any) -> Any:
    return bindparam(column.key, type_=column.type)


def _insert_report(dialect: Any) -> Any:
    table = ExecutionReport.__table__
    return (
        dialect.insert(table)
        .values({column.key: _param(column) for column in table.columns})
        .on_conflict_do_nothing(index_elements=["device_id", "report_id"])
        .returning(table.c.id)
    )


def _upsert_trade(dialect: Any) -> Any:
    table = Trade.__table__
    insert = dialect.insert(table).values({column.key: _param(column) for column in table.columns})
    upsert = insert.on_conflict_do_update(
        index_elements=["device_id", "signal_id"], set_={"updated_at": table.c.updated_at}
    ).returning(*table.c)
    return select(Trade).from_statement(upsert).execution_options(populate_existing=True)


# The fill path's statements, built once with bind parameters: building them per
# report cost more CPU than PostgreSQL spent running them.
_DEVICE_ID = bindparam("device_id", type_=Uuid())
_SIGNAL_ID = bindparam("signal_id", type_=Uuid())
_NOW = bindparam("now", type_=UTCDateTime())
_BY_REPORT_ID = select(ExecutionReport).where(
    ExecutionReport.device_id == _DEVICE_ID,
    ExecutionReport.report_id == bindparam("report_id", type_=String()),
)
_SIGNAL_AND_DELIVERY = select(
    Signal,
    exists()
    .where(Delivery.device_id == _DEVICE_ID, Delivery.signal_id == _SIGNAL_ID)
    .label("delivered"),
).where(Signal.id == _SIGNAL_ID)
# Core tables, not entities: an ORM-enabled UPDATE costs a bulk-update set-up per call.
_DELIVERIES = cast(Table, Delivery.__table__)
_DEVICES = cast(Table, Device.__table__)
# (An UPDATE's bind parameters may not share a name with a column of its table.)
_SETTLE = (
    update(_DELIVERIES)
    .where(
        _DELIVERIES.c.device_id == bindparam("b_device_id", type_=Uuid()),
        _DELIVERIES.c.signal_id == bindparam("b_signal_id", type_=Uuid()),
        _DELIVERIES.c.settled_at.is_(None),
    )
    .values(settled_at=_NOW)
)
_MARK_ACKED = (
    update(_DEVICES)
    .where(_DEVICES.c.id == bindparam("b_device_id", type_=Uuid()))
    .values(last_ack=_NOW)
)
_TRADES = cast(Table, Trade.__table__)
_SAVE_FILL = (
    update(_TRADES)
    .where(_TRADES.c.id == bindparam("b_id", type_=Uuid()))
    .values(
        {
            name: bindparam(f"v_{name}", type_=_TRADES.c[name].type)
            for name in ("size", "cost", "price", "notional", "fill_count", "updated_at")
        }
    )
)
_INSERT_REPORT = {"postgresql": _insert_report(postgresql), "sqlite": _insert_report(sqlite)}
_UPSERT_TRADE = {"postgresql": _upsert_trade(postgresql), "sqlite": _upsert_trade(sqlite)}


def _dialect(session: AsyncSession) -> str:
    return "sqlite" if session.get_bind().dialect.name == "sqlite" else "postgresql"


@dataclass(frozen=True)
class TradeFilter:
    instrument: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class ExecutionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_report_id(self, device_id: uuid.UUID, report_id: str) -> ExecutionReport | None:
        found: ExecutionReport | None = await self.session.scalar(
            _BY_REPORT_ID, {"device_id": device_id, "report_id": report_id}
        )
        return found

    async def insert_once(self, report: ExecutionReport) -> bool:
        """Insert unless (device, report_id) exists; True if this call stored it.

        ``ON CONFLICT DO NOTHING`` on the unique constraint: of any number of
        concurrent copies exactly one inserts; the others wait for it to commit
        and then find it.
        """
        values = {
            column.key: getattr(report, column.key) for column in ExecutionReport.__table__.columns
        }
        statement = _INSERT_REPORT[_dialect(self.session)]
        inserted = (await self.session.execute(statement, values)).first()
        return inserted is not None

    async def signal_and_delivery(
        self, device_id: uuid.UUID, signal_id: uuid.UUID
    ) -> tuple[Signal, bool] | None:
        """The signal, and whether this device was ever given it; None if no such signal."""
        values = {"device_id": device_id, "signal_id": signal_id}
        row = (await self.session.execute(_SIGNAL_AND_DELIVERY, values)).first()
        if row is None:
            return None
        return row[0], bool(row[1])

    async def is_pending_for(
        self, device_id: uuid.UUID, owner_id: uuid.UUID, signal_id: uuid.UUID, now: datetime
    ) -> bool:
        query = pending_signals_query(device_id, owner_id, now, 1).where(Signal.id == signal_id)
        return (await self.session.scalar(query)) is not None

    async def settle(self, device_id: uuid.UUID, signal_id: uuid.UUID, now: datetime) -> None:
        await self.session.execute(
            _SETTLE, {"b_device_id": device_id, "b_signal_id": signal_id, "now": now}
        )

    async def mark_acked(self, device_id: uuid.UUID, now: datetime) -> None:
        await self.session.execute(_MARK_ACKED, {"b_device_id": device_id, "now": now})

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

    async def locked_for_fill(self, template: Trade) -> Trade:
        """The trade of (device, signal), created empty if needed, locked for update.

        One statement: the insert of the empty trade, or on conflict a no-op update
        of the existing row, which locks it and returns it. Two first fills racing
        to create the row settle on one; the row lock then serialises their
        read-modify-write of size and cost (SQLite serialises writers with BEGIN
        IMMEDIATE).
        """
        values = {column.key: getattr(template, column.key) for column in Trade.__table__.columns}
        trade: Trade | None = await self.session.scalar(
            _UPSERT_TRADE[_dialect(self.session)], values
        )
        if trade is None:  # pragma: no cover - an upsert always returns its row
            raise RuntimeError("trade row missing after upsert")
        # A value holder from here on, written back by ``save_fill``: out of the
        # session, it costs no unit-of-work flush.
        self.session.expunge(trade)
        return trade

    async def save_fill(self, trade: Trade) -> None:
        """Write the running figures of a trade locked by ``locked_for_fill``."""
        await self.session.execute(
            _SAVE_FILL,
            {
                "b_id": trade.id,
                "v_size": trade.size,
                "v_cost": trade.cost,
                "v_price": trade.price,
                "v_notional": trade.notional,
                "v_fill_count": trade.fill_count,
                "v_updated_at": trade.updated_at,
            },
        )

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
