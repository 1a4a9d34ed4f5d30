"""Every migration upgrades and downgrades cleanly, and head matches the ORM models."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import BACKEND, PG_ADMIN_DSN, WORKER, _pg_url, _recreate_pg_database
from tradecast import migrate
from tradecast.db import Base
from tradecast.models import import_all_models


@pytest.fixture
def scratch_url(tmp_path: Path) -> Iterator[str]:
    if BACKEND == "postgresql":
        name = f"tradecast_migrations_{WORKER}"
        asyncio.run(_recreate_pg_database(name))
        yield _pg_url(PG_ADMIN_DSN, name)
        asyncio.run(_recreate_pg_database(name, create=False))
    else:
        yield f"sqlite+aiosqlite:///{tmp_path / 'scratch.db'}"


def _run(url: str, work: Any) -> Any:
    async def go() -> Any:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(work)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def _diff(connection: Connection) -> list[Any]:
    import_all_models()
    context = MigrationContext.configure(connection, opts={"compare_type": False})
    return list(compare_metadata(context, Base.metadata))


def test_upgrade_downgrade_upgrade(scratch_url: str) -> None:
    migrate.upgrade(scratch_url)
    at_head = _run(scratch_url, _tables)
    assert {"users", "audit_events", "devices", "signals", "deliveries"} <= at_head

    migrate.downgrade(scratch_url, "base")
    assert _run(scratch_url, _tables) <= {"alembic_version"}

    migrate.upgrade(scratch_url)
    assert _run(scratch_url, _tables) == at_head


def test_head_schema_matches_the_models(scratch_url: str) -> None:
    migrate.upgrade(scratch_url)
    assert _run(scratch_url, _diff) == []
