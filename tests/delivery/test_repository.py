from __future__ import annotations

import uuid

import asyncpg
import pytest
from fastapi import FastAPI
from sqlalchemy.dialects import postgresql

from bench.seed import Shape, device_id, seed, user_id
from tradecast.config import Settings
from tradecast.delivery.repository import pending_signals_query
from tradecast.kit import clock


@pytest.mark.postgres_only
async def test_poll_query_walks_indexes_only(app: FastAPI, settings: Settings) -> None:
    dsn = settings.resolved_database_url.replace("postgresql+asyncpg://", "postgresql://")
    await seed(dsn, Shape(users=100, signals=20_000, open_signals=100))
    query = pending_signals_query(
        uuid.UUID(device_id(6)), uuid.UUID(user_id(2)), clock.utcnow(), 50
    )
    sql = str(
        query.compile(
            dialect=postgresql.dialect(),  # type: ignore[no-untyped-call]
            compile_kwargs={"literal_binds": True},
        )
    )
    connection = await asyncpg.connect(dsn)
    try:
        plan = "\n".join(row[0] for row in await connection.fetch("EXPLAIN " + sql))
        pending = await connection.fetch(sql)
    finally:
        await connection.close()
    assert "Index Scan using ix_signals_open_created_at on signals" in plan
    # The device's settled set is one range scan of the partial index, hashed,
    # not a probe of the deliveries per open signal.
    assert "on ix_deliveries_settled" in plan or "using ix_deliveries_settled" in plan
    assert "hashed SubPlan" in plan
    assert "pk_deliveries" not in plan
    assert "Seq Scan on signals" not in plan
    assert "Seq Scan on deliveries" not in plan
    # Device 6 was given the 80 oldest open signals and settled 60 of them.
    assert len(pending) == 40
