"""When each periodic job last ran, shared by every server process.

Every process schedules every job (``jobs.py``); a run first claims its job
here, so that N processes make one run per interval between them, not N.
"""

from __future__ import annotations

import zlib
from datetime import datetime, timedelta

from sqlalchemy import String, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from tradecast.db import Base

# A run that started this fraction of an interval ago, in any process, is this
# interval's run: the others skip their tick (timers drift, hence not 1).
SAME_INTERVAL = 0.9


class JobRun(Base):
    __tablename__ = "job_runs"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime]


def lock_key(name: str) -> int:
    """The advisory lock key of job ``name``: the same in every process."""
    return zlib.crc32(f"tradecast.job.{name}".encode())


async def claim(
    session: AsyncSession, name: str, interval_s: float, now: datetime
) -> tuple[bool, datetime | None]:
    """Whether this process runs job ``name`` now, and when the job's previous run
    (in any process) started.

    On PostgreSQL a run holds the job's transaction-scoped advisory lock: a
    process that finds it taken skips its tick. Then a run that started less
    than ``SAME_INTERVAL`` of an interval ago means this interval's run is done.
    Otherwise the job's row is moved to ``now``, committed with the run's work,
    so a run that fails leaves the previous start in place.
    """
    if session.get_bind().dialect.name == "postgresql":
        locked = await session.scalar(select(func.pg_try_advisory_xact_lock(lock_key(name))))
        if not locked:
            return False, None
    row = await session.get(JobRun, name)
    if row is None:
        session.add(JobRun(name=name, started_at=now))
        return True, None
    previous = row.started_at
    if now - previous < timedelta(seconds=interval_s * SAME_INTERVAL):
        return False, previous
    row.started_at = now
    return True, previous
