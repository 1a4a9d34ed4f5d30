"""Periodic jobs inside the server process, each run in its own transaction.

Every job is safe to run in several processes at once (its writes are
conditional updates or guarded by constraints), so N server processes need no
leader election. On PostgreSQL the jobs that scan tables (reconciliation,
expiry) still run in one process at a time: each run takes the job's
transaction-scoped advisory lock, and a process that finds it taken skips that
tick, so N workers do not repeat the same scan and writes every interval.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tradecast.config import Settings
from tradecast.db import Database
from tradecast.kit import clock
from tradecast.outbox import service as outbox
from tradecast.reconciliation import service as reconciliation
from tradecast.signals import service as signals
from tradecast.signed.nonces import NonceStore

logger = logging.getLogger("tradecast.jobs")

MAINTENANCE_INTERVAL_S = 30.0
# How soon an outbox event (a Telegram notification, say) leaves after its commit,
# and how often retries that have come due are picked up.
OUTBOX_INTERVAL_S = 2.0


@dataclass(frozen=True)
class Job:
    name: str
    interval_s: float
    run: Callable[[], Awaitable[int]]


class Scheduler:
    def __init__(self, jobs: list[Job]) -> None:
        self.jobs = jobs
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(job), name=job.name) for job in self.jobs]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    @staticmethod
    async def _loop(job: Job) -> None:
        while True:
            await asyncio.sleep(job.interval_s)
            await run_once(job)


async def run_once(job: Job) -> int:
    """Run a job, logging rather than dying on failure: the next tick tries again."""
    try:
        changed = await job.run()
    except Exception:
        logger.exception("job failed", extra={"job": job.name})
        return 0
    if changed:
        logger.info("job done", extra={"job": job.name, "changed": changed})
    return changed


def _in_transaction(
    db: Database, name: str, work: Callable[[AsyncSession], Awaitable[int]]
) -> Callable[[], Awaitable[int]]:
    async def run() -> int:
        async with db.sessionmaker() as session, session.begin():
            if not await _claimed(session, name):
                return 0
            return await work(session)

    return run


def job_lock_key(name: str) -> int:
    """The advisory lock key of job ``name``: the same in every process."""
    return zlib.crc32(f"tradecast.job.{name}".encode())


async def _claimed(session: AsyncSession, name: str) -> bool:
    """Whether this process runs job ``name`` now. On PostgreSQL another process
    may hold it, running the same work; the lock ends with the transaction. SQLite
    serves one process, whose write lock already orders everything."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    claimed = await session.scalar(select(func.pg_try_advisory_xact_lock(job_lock_key(name))))
    return bool(claimed)


def reconciliation_job(db: Database, settings: Settings) -> Job:
    """Each process keeps how far its runs have examined the fills
    (``reconciliation.Progress``), moved on only by a committed run."""
    progress = reconciliation.Progress()

    async def run() -> int:
        started = clock.utcnow()
        async with db.sessionmaker() as session, session.begin():
            if not await _claimed(session, "reconcile"):
                return 0
            created = await reconciliation.reconcile(session, settings, progress)
        progress.last_run_at = started
        return sum(created.values())

    return Job("reconcile", settings.reconcile_interval_s, run)


def outbox_job(db: Database, handlers: Mapping[str, outbox.Handler]) -> Job:
    return Job("dispatch_outbox", OUTBOX_INTERVAL_S, lambda: outbox.dispatch_due(db, handlers))


def maintenance_jobs(db: Database, nonces: NonceStore) -> list[Job]:
    return [
        Job(
            "expire_signals",
            MAINTENANCE_INTERVAL_S,
            _in_transaction(
                db, "expire_signals", lambda session: signals.expire_due(session, clock.utcnow())
            ),
        ),
        Job("prune_nonces", MAINTENANCE_INTERVAL_S, lambda: nonces.prune(clock.utcnow())),
    ]
