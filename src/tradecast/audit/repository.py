from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Column,
    ColumnElement,
    Insert,
    Select,
    Table,
    bindparam,
    func,
    insert,
    inspect,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.selectable import TableValuedAlias

from tradecast.audit.models import AuditEvent, PendingEvent
from tradecast.db import DriverStatement, Statements, typed
from tradecast.kit.pagination import PageParams

# Attribute name → column (``details`` is stored in the column ``metadata``).
_COLUMNS = {attribute.key: attribute.columns[0] for attribute in inspect(AuditEvent).column_attrs}
_EVENTS = cast(Table, AuditEvent.__table__)


def insert_event_if(condition: ColumnElement[bool], prefix: str) -> Insert:
    """An insert of one event that happens only where ``condition`` holds, its bind
    parameters named ``<prefix><attribute>``: a part of a larger statement
    (``event_values`` gives its values)."""
    values = select(
        *(bindparam(f"{prefix}{key}", type_=column.type) for key, column in _COLUMNS.items())
    ).where(condition)
    return insert(_EVENTS).from_select([column.name for column in _COLUMNS.values()], values)


def event_values(event: PendingEvent, prefix: str = "") -> dict[str, Any]:
    return {f"{prefix}{key}": getattr(event, key) for key in _COLUMNS}


# A batch of events as JSON rows (``db.json_rows``), by column name.
EVENT_ROW_COLUMNS = [typed(cast(Column[Any], column)) for column in _COLUMNS.values()]


def insert_events(rows: TableValuedAlias) -> Insert:
    """An insert of every event in ``rows`` (``json_rows`` of ``EVENT_ROW_COLUMNS``)."""
    names = [column.name for column in _COLUMNS.values()]
    return insert(_EVENTS).from_select(names, select(*(rows.c[name] for name in names)))


def event_row(event: PendingEvent) -> dict[str, Any]:
    """``event`` as one of ``insert_events``' rows."""
    return {column.name: getattr(event, key) for key, column in _COLUMNS.items()}


_INSERT_EVENT = DriverStatement(
    insert(_EVENTS).values(
        {column.name: bindparam(key, type_=column.type) for key, column in _COLUMNS.items()}
    )
)


async def insert_event(statements: Statements, event: PendingEvent) -> None:
    """Write ``event`` at once with a prebuilt Core insert (nothing to flush)."""
    await statements.execute(_INSERT_EVENT, event_values(event))


@dataclass(frozen=True)
class AuditFilter:
    actor_id: uuid.UUID | None = None
    action: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, event: AuditEvent) -> None:
        self.session.add(event)

    def _filtered(self, criteria: AuditFilter) -> Select[AuditEvent]:
        query = select(AuditEvent)
        if criteria.actor_id is not None:
            query = query.where(AuditEvent.actor_id == criteria.actor_id)
        if criteria.action is not None:
            query = query.where(AuditEvent.action == criteria.action)
        if criteria.target_id is not None:
            query = query.where(AuditEvent.target_id == criteria.target_id)
        if criteria.since is not None:
            query = query.where(AuditEvent.occurred_at >= criteria.since)
        if criteria.until is not None:
            query = query.where(AuditEvent.occurred_at < criteria.until)
        return query

    async def page(
        self, criteria: AuditFilter, page: PageParams
    ) -> tuple[Sequence[AuditEvent], int]:
        query = self._filtered(criteria)
        total = await self.session.scalar(select(func.count()).select_from(query.subquery()))
        rows = await self.session.scalars(
            query.order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
            .limit(page.limit)
            .offset(page.offset)
        )
        return rows.all(), int(total or 0)
