"""The test harness: the real app over HTTP on a real, migrated database.

``TRADECAST_TEST_BACKEND`` picks PostgreSQL or SQLite. Each xdist worker gets
its own database, migrated with Alembic once; each test then starts from empty
tables (PostgreSQL: TRUNCATE; SQLite: a fresh copy of the migrated file), so
tests may run real concurrent transactions against the app.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from tests.desk import Desk
from tests.helpers import Api
from tradecast import migrate
from tradecast.config import Settings
from tradecast.kit import clock
from tradecast.main import create_app

BACKEND = os.environ.get("TRADECAST_TEST_BACKEND", "sqlite")
PG_ADMIN_DSN = os.environ.get("TRADECAST_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
# Unique per process: several suites (and xdist workers) may share one server.
WORKER = f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"


def _pg_url(dsn: str, database: str) -> str:
    base = dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{database}"


async def _recreate_pg_database(name: str, *, create: bool = True) -> None:
    connection = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if BACKEND == "postgresql":
        name = f"tradecast_test_{WORKER}"
        asyncio.run(_recreate_pg_database(name))
        url = _pg_url(PG_ADMIN_DSN, name)
        migrate.upgrade(url)
        yield url
        asyncio.run(_recreate_pg_database(name, create=False))
    else:
        template = tmp_path_factory.mktemp("sqlite") / "template.db"
        migrate.upgrade(f"sqlite+aiosqlite:///{template}")
        yield str(template)


@pytest.fixture
def fresh_database_url(database_url: str, tmp_path: Path) -> str:
    """A database with the schema at head and no rows."""
    if BACKEND == "postgresql":
        return database_url  # emptied by the app fixture, inside the event loop
    target = tmp_path / "tradecast.db"
    shutil.copyfile(database_url, target)
    return f"sqlite+aiosqlite:///{target}"


async def _truncate_all(url: str) -> None:
    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    connection = await asyncpg.connect(dsn)
    try:
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version'"
        )
        names = ", ".join(f'"{row["tablename"]}"' for row in tables)
        if names:
            await connection.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    finally:
        await connection.close()


def make_settings(database_url: str, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "env": "test",
        "database_url": database_url,
        "data_dir": tmp_path / "data",
        "secret_key": "test-secret-key-" + "k" * 32,
        # Still argon2id and still verified; only cheaper, so hundreds of users stay fast.
        "password_hash_time_cost": 1,
        "password_hash_memory_kib": 8192,
        "background_jobs_enabled": False,
        "rate_limits_enabled": False,
        "log_level": "INFO",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    """Override in a test module to start the app with other settings."""
    return {}


@pytest.fixture
def settings(
    fresh_database_url: str, tmp_path: Path, settings_overrides: dict[str, object]
) -> Settings:
    return make_settings(fresh_database_url, tmp_path, **settings_overrides)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    if BACKEND == "postgresql":
        await _truncate_all(settings.resolved_database_url)
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
def api(client: httpx.AsyncClient, settings: Settings) -> Api:
    return Api(client, settings)


@pytest.fixture
def desk(api: Api) -> Desk:
    return Desk(api)


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if BACKEND == "postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (TRADECAST_TEST_BACKEND=postgresql)")
    for item in items:
        if "postgres_only" in item.keywords:
            item.add_marker(skip)
