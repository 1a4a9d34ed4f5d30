"""Periodic jobs inside the server process, each run in its own transaction.

Every job is safe to run in several processes at once (its writes are
conditional updates or guarded by constraints), so N server processes need no
leader election. The jobs that scan tables (reconciliation, expiry) still
make one run per interval between all processes: a run claims its job's row
in ``job_runs`` first (``jobruns.claim``, under an advisory lock on
PostgreSQL), and a process whose tick comes after another's run in the same
interval skips it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from tradecast import jobruns
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


def _claimed_run(
    db: Database,
    name: str,
    interval_s: float,
    work: Callable[[AsyncSession, datetime | None], Awaitable[int]],
) -> Callable[[], Awaitable[int]]:
    """A run of job ``name`` in one transaction, if this process claims it
    (``jobruns.claim``): ``work`` gets the session and the job's previous start."""

    async def run() -> int:
        async with db.sessionmaker() as session, session.begin():
            claimed, previous = await jobruns.claim(session, name, interval_s, clock.utcnow())
            if not claimed:
                return 0
            return await work(session, previous)

    return run


def reconciliation_job(db: Database, settings: Settings) -> Job:
    """The previous run's start, committed with it, tells this run which fills
    changed since (``reconciliation.reconcile``'s ``previous_run``)."""

    async def work(session: AsyncSession, previous: datetime | None) -> int:
        created = await reconciliation.reconcile(session, settings, previous_run=previous)
        return sum(created.values())

    interval = settings.reconcile_interval_s
    return Job("reconcile", interval, _claimed_run(db, "reconcile", interval, work))


def outbox_job(db: Database, handlers: Mapping[str, outbox.Handler]) -> Job:
    return Job("dispatch_outbox", OUTBOX_INTERVAL_S, lambda: outbox.dispatch_due(db, handlers))


def maintenance_jobs(db: Database, nonces: NonceStore) -> list[Job]:
    return [
        Job(
            "expire_signals",
            MAINTENANCE_INTERVAL_S,
            _claimed_run(
                db,
                "expire_signals",
                MAINTENANCE_INTERVAL_S,
                lambda session, _: signals.expire_due(session, clock.utcnow()),
            ),
        ),
        Job("prune_nonces", MAINTENANCE_INTERVAL_S, lambda: nonces.prune(clock.utcnow())),
    ]
