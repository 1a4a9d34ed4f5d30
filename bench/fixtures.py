"""A benchmark database: migrated, seeded, with devices whose secrets are really sealed."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os

import asyncpg

from bench.seed import Shape, device_id, seed, vacuum_analyze
from tradecast import jobs, migrate
from tradecast.config import Settings
from tradecast.db import Database
from tradecast.kit.secretbox import SecretBox

BENCH_SECRET_KEY = "bench-secret-key-" + "b" * 40
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
BENCH_REDIS_URL = "redis://127.0.0.1:6379/14"


def device_secret(device: str) -> str:
    return hmac.new(b"tradecast-bench", device.encode(), hashlib.sha256).hexdigest()


async def fresh_database(database: str, admin_dsn: str = ADMIN_DSN) -> str:
    """Create ``database`` empty, dropping any left by an earlier run; its asyncpg DSN."""
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    return admin_dsn.rsplit("/", 1)[0] + "/" + database


async def prepare(database: str, shape: Shape, admin_dsn: str = ADMIN_DSN) -> str:
    """Create ``database`` afresh and fill it; returns its asyncpg DSN."""
    dsn = await fresh_database(database, admin_dsn)
    await asyncio.to_thread(migrate.upgrade, sqlalchemy_url(dsn))
    await seed(dsn, shape, vacuum=False)
    await seal_device_secrets(dsn, shape)
    await reconcile(dsn)
    await vacuum_analyze(dsn)
    return dsn


async def reconcile(dsn: str) -> None:
    """Run the reconciliation job once, as it would have run on a service that has
    been up: the seeded deliveries that were never ACKed are already its issues,
    and its run is recorded in ``job_runs``, so the server's runs look only at
    what changes after it. Left to the server, the first run would record them
    all (20,000 issues on the poll benchmark's data) in the middle of a
    measured run."""
    settings = Settings(
        database_url=sqlalchemy_url(dsn), secret_key=BENCH_SECRET_KEY, env="production"
    )
    db = Database(settings.resolved_database_url)
    try:
        await jobs.run_once(jobs.reconciliation_job(db, settings))
    finally:
        await db.dispose()


async def seal_device_secrets(dsn: str, shape: Shape) -> None:
    box = SecretBox(BENCH_SECRET_KEY)
    rows = []
    for n in range(1, shape.devices + 1):
        device = device_id(n)
        rows.append((box.seal(device_secret(device), context=device), device))
    connection = await asyncpg.connect(dsn)
    try:
        await connection.executemany(
            "UPDATE devices SET secret_sealed = $1 WHERE id = $2::uuid", rows
        )
    finally:
        await connection.close()


def sqlalchemy_url(dsn: str) -> str:
    return dsn.replace("postgresql://", "postgresql+asyncpg://", 1)


def redis_available(url: str = BENCH_REDIS_URL) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def server_env(dsn: str, **extra: str) -> dict[str, str]:
    """Production settings; Redis when it answers, so several workers act as one."""
    env = {
        "TRADECAST_DATABASE_URL": sqlalchemy_url(dsn),
        "TRADECAST_SECRET_KEY": BENCH_SECRET_KEY,
        "TRADECAST_ENV": "production",
    }
    if redis_available():
        env["TRADECAST_REDIS_URL"] = BENCH_REDIS_URL
        env["TRADECAST_REDIS_PREFIX"] = f"bench-{os.getpid()}"
    return {**env, **extra}
