"""PostgreSQL's cost of the device statements, against a trivial statement in the same run.

    python -m bench.statements [--executions 3000] [--smoke]

Seeds the poll benchmark's data (100,000 signals, 100 open, 10,000 devices,
990,000 deliveries; ``bench/poll.py``), then runs each statement the way the
device pool does (prepared, generic plan, autocommit, one connection) over
random devices, and prints the server backend's CPU time per execution (read
from ``/proc``, so only when PostgreSQL runs on this machine) and the wall
time per execution:

- a trivial statement with the same kind of parameters (the baseline: the
  protocol's cost of one execution);
- the poll (``deliver_pending_at_once``) of devices that have not polled yet,
  so each moves ``last_poll`` on, then of the same devices again moments later,
  when ``last_poll`` is recent (a device polling every few seconds);
- eight plain polls answered together (``deliver_batch_at_once``), as a worker
  under load answers the polls that reach their look in the same turn of the
  event loop: the batch statement, then the statement that moves their
  ``last_poll`` on, then the same devices again when ``last_poll`` is recent;
- the statement that answers a batch of 500 woken long polls.

Each row gives the figures per execution and the backend's CPU per poll.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from bench.fixtures import prepare
from bench.poll import FULL, SMOKE
from bench.seed import Shape
from tradecast.delivery.batch import BATCH_AT_ONCE, batch_values, deliver_batch_at_once
from tradecast.delivery.repository import deliver_pending_at_once
from tradecast.kit import clock

_TRIVIAL = "SELECT $1::uuid AS device_id, $2::uuid AS owner_id, $3::timestamptz AS now"
BATCH_SIZE = 500
# Polls that reach their look in one turn of a loaded worker's event loop.
TOGETHER = 8


@dataclass(frozen=True)
class Figure:
    name: str
    executions: int
    backend_cpu_ms: float | None
    wall_ms: float
    polls: int = 1  # polls answered by one execution

    @property
    def backend_cpu_ms_per_poll(self) -> float | None:
        return None if self.backend_cpu_ms is None else self.backend_cpu_ms / self.polls


def _backend_cpu_s(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:  # PostgreSQL on another machine
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _timed(
    name: str, pid: int, executions: int, run: Callable[[int], Awaitable[Any]], polls: int = 1
) -> Figure:
    cpu_before, wall_before = _backend_cpu_s(pid), time.perf_counter()
    for n in range(executions):
        await run(n)
    cpu_after, wall = _backend_cpu_s(pid), time.perf_counter() - wall_before
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return Figure(
        name,
        executions,
        None if cpu is None else cpu * 1000 / executions,
        wall * 1000 / executions,
        polls,
    )


async def measure(dsn: str, executions: int) -> list[Figure]:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("SET plan_cache_mode = force_generic_plan")
        pid = await connection.fetchval("SELECT pg_backend_pid()")
        devices = [
            (row["id"], row["user_id"])
            for row in await connection.fetch("SELECT id, user_id FROM devices")
        ]
        picks = random.Random(8)  # which devices, not a secret
        trivial = await connection.prepare(_TRIVIAL)

        async def baseline(_: int) -> None:
            device, owner = picks.choice(devices)
            await trivial.fetch(device, owner, clock.utcnow())

        # Devices that have not polled yet (the seed leaves last_poll empty): their
        # first poll moves last_poll on, a second one moments later does not.
        fresh = picks.sample(devices, min(executions, len(devices)))

        async def poll(n: int) -> None:
            device, owner = fresh[n % len(fresh)]
            await deliver_pending_at_once(connection, device, owner, clock.utcnow(), 50)

        # Devices the single polls above did not touch, so their first round moves
        # last_poll on.
        untouched = sorted(set(devices) - set(fresh))
        together = picks.sample(untouched, min(executions, len(untouched)))

        async def polls_together(n: int) -> None:
            start = n * TOGETHER % len(together)
            asks = [(device, owner, 50) for device, owner in together[start : start + TOGETHER]]
            await deliver_batch_at_once(connection, asks, clock.utcnow())

        size = min(BATCH_SIZE, len(devices))

        async def batch(_: int) -> None:
            asks = [(device, owner, 50) for device, owner in picks.sample(devices, size)]
            await BATCH_AT_ONCE.fetch(connection, batch_values(asks, clock.utcnow()))

        figures = [await _timed("trivial statement (baseline)", pid, executions, baseline)]
        figures.append(await _timed("poll, last_poll moved on", pid, executions, poll))
        figures.append(await _timed("poll, last_poll recent", pid, executions, poll))
        rounds = max(1, len(together) // TOGETHER)
        name = f"{TOGETHER} polls together, last_poll moved on"
        figures.append(await _timed(name, pid, rounds, polls_together, TOGETHER))
        name = f"{TOGETHER} polls together, last_poll recent"
        figures.append(await _timed(name, pid, rounds, polls_together, TOGETHER))
        figures.append(
            await _timed(
                f"batch of {size} woken polls", pid, max(1, executions // 100), batch, size
            )
        )
        return figures
    finally:
        await connection.close()


def report(figures: list[Figure], shape: Shape) -> None:
    print(
        f"\nstatements: PostgreSQL, {shape.signals:,} signals ({shape.open_signals} open), "
        f"{shape.devices:,} devices, generic plans, one connection"
    )
    print(
        f"{'statement':<38} {'runs':>6} {'backend CPU ms':>15} {'wall ms':>9}"
        f" {'CPU ms per poll':>16}  vs baseline"
    )
    baseline = figures[0]
    for figure in figures:
        cpu = "-" if figure.backend_cpu_ms is None else f"{figure.backend_cpu_ms:.3f}"
        per_poll = figure.backend_cpu_ms_per_poll
        each = "-" if per_poll is None else f"{per_poll:.3f}"
        ratio = (
            f"{figure.backend_cpu_ms / baseline.backend_cpu_ms:.1f}×"
            if figure.backend_cpu_ms is not None and baseline.backend_cpu_ms
            else f"{figure.wall_ms / baseline.wall_ms:.1f}× (wall)"
        )
        print(
            f"{figure.name:<38} {figure.executions:>6} {cpu:>15} {figure.wall_ms:>9.3f}"
            f" {each:>16}  {ratio}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--executions", type=int, default=3000)
    parser.add_argument("--smoke", action="store_true", help="tiny data, few executions")
    args = parser.parse_args()
    shape = SMOKE if args.smoke else FULL
    executions = min(args.executions, 200) if args.smoke else args.executions
    dsn = asyncio.run(prepare("tradecast_bench_statements", shape))
    report(asyncio.run(measure(dsn, executions)), shape)


if __name__ == "__main__":
    main()
