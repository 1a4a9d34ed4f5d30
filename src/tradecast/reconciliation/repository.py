"""Queries that find where reports and signals disagree, and the issue store."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, exists, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from tradecast.delivery.models import Delivery
from tradecast.devices.models import Device
from tradecast.executions.models import ExecutionReport, ExecutionType
from tradecast.kit.pagination import PageParams
from tradecast.reconciliation.models import IssueKind, IssueStatus, ReconciliationIssue
from tradecast.signals.models import OrderType, Signal


def _no_issue(kind: IssueKind, signal_id: Any, device_id: Any) -> Any:
    return ~exists().where(
        ReconciliationIssue.signal_id == signal_id,
        ReconciliationIssue.device_id == device_id,
        ReconciliationIssue.kind == kind,
    )


# The signal's field each fill check compares a fill with.
_COMPARED_WITH: dict[IssueKind, Any] = {
    IssueKind.SLIPPAGE: Signal.entry_price,
    IssueKind.SIZE_MISMATCH: Signal.volume,
}


@dataclass(frozen=True)
class UnackedDelivery:
    signal_id: uuid.UUID
    device_id: uuid.UUID
    first_delivered_at: datetime


@dataclass(frozen=True)
class IssueFilter:
    status: IssueStatus | None = None
    kind: IssueKind | None = None
    owner_id: uuid.UUID | None = None


class ReconciliationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def unacked_deliveries(self, delivered_before: datetime) -> Sequence[UnackedDelivery]:
        """The deliveries' keys and times only: after an outage there can be tens of
        thousands, and ORM instances of them cost more than the run's writes."""
        query = select(Delivery.signal_id, Delivery.device_id, Delivery.first_delivered_at).where(
            Delivery.settled_at.is_(None),
            Delivery.first_delivered_at <= delivered_before,
            _no_issue(IssueKind.MISSING_ACK, Delivery.signal_id, Delivery.device_id),
        )
        return [
            UnackedDelivery(signal_id, device_id, first_delivered_at)
            for signal_id, device_id, first_delivered_at in await self.session.execute(query)
        ]

    async def acks_without_fill(self, acked_before: datetime) -> Sequence[ExecutionReport]:
        """ACKs of market orders older than the cutoff with no fill or error after them."""
        later = ExecutionReport.__table__.alias("later")
        query = (
            select(ExecutionReport)
            .join(Signal, Signal.id == ExecutionReport.signal_id)
            .where(
                ExecutionReport.execution_type == ExecutionType.ACK,
                ExecutionReport.created_at <= acked_before,
                Signal.order_type == OrderType.MARKET,
                ~exists().where(
                    later.c.device_id == ExecutionReport.device_id,
                    later.c.signal_id == ExecutionReport.signal_id,
                    later.c.execution_type.in_(
                        [ExecutionType.FILL.value, ExecutionType.ERROR.value]
                    ),
                ),
                _no_issue(
                    IssueKind.MISSING_FILL, ExecutionReport.signal_id, ExecutionReport.device_id
                ),
            )
        )
        return (await self.session.scalars(query)).all()

    async def unreported_errors(self) -> Sequence[ExecutionReport]:
        query = select(ExecutionReport).where(
            ExecutionReport.execution_type == ExecutionType.ERROR,
            _no_issue(
                IssueKind.EXECUTION_ERROR, ExecutionReport.signal_id, ExecutionReport.device_id
            ),
        )
        return (await self.session.scalars(query)).all()

    async def fills_to_check(
        self, kind: IssueKind, since: datetime, changed_after: datetime | None = None
    ) -> Sequence[tuple[ExecutionReport, Signal]]:
        """Fills since ``since`` of (signal, device) pairs that do not have an issue of
        ``kind`` yet; with ``changed_after``, only of pairs with a fill after it (the
        other pairs were decided by an earlier run and have not changed since).

        The arithmetic (slippage, summed sizes) is done in Python on ``Decimal``:
        SQLite stores decimals as text, and SQL arithmetic there would go through floats.
        """
        conditions = [
            ExecutionReport.execution_type == ExecutionType.FILL,
            ExecutionReport.created_at >= since,
            # What the check compares against: a signal without it can never have
            # the issue, and its fills were read again on every run.
            _COMPARED_WITH[kind].is_not(None),
            _no_issue(kind, ExecutionReport.signal_id, ExecutionReport.device_id),
        ]
        query = (
            select(ExecutionReport, Signal)
            .join(Signal, Signal.id == ExecutionReport.signal_id)
            .where(*conditions)
            .order_by(ExecutionReport.created_at)
        )
        if changed_after is not None and changed_after > since:
            # The pairs first (a few, against a week of fills), then their fills.
            changed = (
                select(ExecutionReport.device_id, ExecutionReport.signal_id)
                .where(
                    ExecutionReport.execution_type == ExecutionType.FILL,
                    ExecutionReport.created_at > changed_after,
                )
                .distinct()
                .subquery("changed")
            )
            query = query.join(
                changed,
                and_(
                    changed.c.device_id == ExecutionReport.device_id,
                    changed.c.signal_id == ExecutionReport.signal_id,
                ),
            )
        return [(row[0], row[1]) for row in (await self.session.execute(query)).all()]

    async def insert_issues(self, rows: Sequence[dict[str, Any]]) -> set[uuid.UUID]:
        """Store each issue unless its (signal, device, kind) exists, in one statement;
        the ids of those this call created.

        The unique constraint, not this process, decides: two servers running the
        job at once cannot both create an issue. Callers pass the rows in one order
        (``ISSUE_ORDER``), so two runs inserting the same keys wait for each other
        in that order instead of deadlocking.
        """
        if not rows:
            return set()
        dialect = sqlite if self.session.get_bind().dialect.name == "sqlite" else postgresql
        statement = (
            dialect.insert(ReconciliationIssue)
            .on_conflict_do_nothing(index_elements=["signal_id", "device_id", "kind"])
            .returning(ReconciliationIssue.id)
        )
        # Many rows of one compiled statement: SQLAlchemy sends them as multi-row VALUES.
        return set((await self.session.scalars(statement, list(rows))).all())

    async def devices_by_id(self, device_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Device]:
        query = select(Device).where(Device.id.in_(set(device_ids)))
        return {device.id: device for device in await self.session.scalars(query)}

    async def signals_by_id(self, signal_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Signal]:
        query = select(Signal).where(Signal.id.in_(set(signal_ids)))
        return {signal.id: signal for signal in await self.session.scalars(query)}

    async def get(
        self, issue_id: uuid.UUID, *, for_update: bool = False
    ) -> ReconciliationIssue | None:
        query = select(ReconciliationIssue).where(ReconciliationIssue.id == issue_id)
        if for_update:
            query = query.with_for_update()
        return await self.session.scalar(query)

    def _filtered(self, criteria: IssueFilter) -> Select[ReconciliationIssue]:
        query = select(ReconciliationIssue)
        if criteria.owner_id is not None:
            query = query.join(
                Device,
                and_(
                    Device.id == ReconciliationIssue.device_id,
                    Device.user_id == criteria.owner_id,
                ),
            )
        if criteria.status is not None:
            query = query.where(ReconciliationIssue.status == criteria.status)
        if criteria.kind is not None:
            query = query.where(ReconciliationIssue.kind == criteria.kind)
        return query

    async def page(
        self, criteria: IssueFilter, page: PageParams
    ) -> tuple[Sequence[ReconciliationIssue], int]:
        query = self._filtered(criteria)
        total = await self.session.scalar(select(func.count()).select_from(query.subquery()))
        rows = await self.session.scalars(
            query.order_by(ReconciliationIssue.created_at.desc(), ReconciliationIssue.id.desc())
            .limit(page.limit)
            .offset(page.offset)
        )
        return rows.all(), int(total or 0)
