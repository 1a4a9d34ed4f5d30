"""Inserting rows keyed by time-ordered ids (``kit.ids``, UUID version 7) against
random ones (version 4), on a table that already holds a long history.

    python -m bench.ids [--history 2000000] [--rows 48000] [--batch 16] [--rounds 3] [--smoke]

Two tables of the same shape (a UUID primary key, a time, a short text), each
filled with ``--history`` rows first: one with random ids, one with ids
ordered by time over the past 30 days. Then rounds alternate between them:
each inserts ``--rows`` new rows, ``--batch`` to a statement as the fill
batches do, with ids made as the app makes them. Before each round a
``CHECKPOINT``, as PostgreSQL runs one every few minutes: the first change to
each index page after it writes the whole page to the write-ahead log. Each
round prints the backend's CPU per row (``/proc``), the WAL written per row,
and the index's size; the random ids are the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from uuid_utils.compat import uuid7

from bench import cpu
from bench.fixtures import fresh_database
from tradecast.kit import ids

DATABASE = "tradecast_bench_ids"
_MONTH_NS = 30 * 24 * 3600 * 10**9


@dataclass(frozen=True)
class Ids:
    """One way of making ids, and the table that holds its rows."""

    label: str
    table: str
    make: Callable[[], uuid.UUID]
    history: Callable[[int], list[uuid.UUID]]


def _past_random(count: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(count)]


def _past_ordered(count: int) -> list[uuid.UUID]:
    """``count`` version 7 ids spread in order over the past 30 days."""
    start = time.time_ns() - _MONTH_NS
    return [uuid7(nanoseconds=start + n * _MONTH_NS // count) for n in range(count)]


BASELINE = Ids("random (version 4)", "ids_random", uuid.uuid4, _past_random)
KINDS = (BASELINE, Ids("time-ordered (version 7)", "ids_ordered", ids.time_ordered, _past_ordered))


@dataclass(frozen=True)
class Round:
    label: str
    rows: int
    cpu_s: float
    wal_bytes: int
    wall_s: float
    index_mb: float


async def prepare(history: int) -> str:
    dsn = await fresh_database(DATABASE)
    connection = await asyncpg.connect(dsn)
    try:
        for kind in KINDS:
            await connection.execute(
                f"CREATE TABLE {kind.table} (id uuid PRIMARY KEY,"
                " created_at timestamptz NOT NULL, body text NOT NULL)"
            )
            past = kind.history(history)
            await connection.copy_records_to_table(
                kind.table, records=((made, datetime.now(UTC), "history") for made in past)
            )
            await connection.execute(f"VACUUM ANALYZE {kind.table}")
    finally:
        await connection.close()
    return dsn


async def insert_round(
    connection: asyncpg.Connection, kind: Ids, args: argparse.Namespace
) -> Round:
    statement = await connection.prepare(
        f"INSERT INTO {kind.table} (id, created_at, body)"
        " SELECT unnest($1::uuid[]), now(), 'a new row of about this size'"
    )
    await connection.execute("CHECKPOINT")
    backend = await connection.fetchval("SELECT pg_backend_pid()")
    wal_before = await connection.fetchval("SELECT pg_current_wal_insert_lsn()")
    cpu_before, began = cpu.cpu_seconds(backend), time.perf_counter()
    for _ in range(args.rows // args.batch):
        batch = [kind.make() for _ in range(args.batch)]
        async with connection.transaction():
            await statement.fetch(batch)
    wall = time.perf_counter() - began
    used = cpu.cpu_seconds(backend) - cpu_before
    wal = await connection.fetchval(
        "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1)", wal_before
    )
    index_bytes = await connection.fetchval(f"SELECT pg_relation_size('{kind.table}_pkey')")
    rows = args.rows // args.batch * args.batch
    return Round(kind.label, rows, used, int(wal), wall, index_bytes / 2**20)


async def run(args: argparse.Namespace) -> list[Round]:
    dsn = await prepare(args.history)
    connection = await asyncpg.connect(dsn)
    rounds = []
    try:
        for _ in range(args.rounds):
            for kind in KINDS:
                rounds.append(await insert_round(connection, kind, args))
    finally:
        await connection.close()
    return rounds


def report(rounds: list[Round], args: argparse.Namespace) -> None:
    print(
        f"\nids: {args.history:,} rows of history per table, {args.batch} rows a statement, "
        "a CHECKPOINT before each round; per row: the backend's CPU and the WAL written"
    )
    print(
        f"{'ids':26} {'rows':>7} {'CPU µs':>7} {'WAL bytes':>9} {'wall µs':>8} "
        f"{'index MB':>8}  vs baseline (CPU, WAL)"
    )
    baseline = [row for row in rounds if row.label == BASELINE.label]
    base_cpu = sum(row.cpu_s / row.rows for row in baseline) / len(baseline)
    base_wal = sum(row.wal_bytes / row.rows for row in baseline) / len(baseline)
    for row in rounds:
        cpu_us, wal = row.cpu_s / row.rows * 1e6, row.wal_bytes / row.rows
        # /proc counts CPU in ticks: a smoke run's rounds may show none.
        cpu_ratio = cpu_us / (base_cpu * 1e6) if base_cpu else float("nan")
        print(
            f"{row.label:26} {row.rows:7d} {cpu_us:7.1f} {wal:9.0f} {row.wall_s / row.rows * 1e6:8.1f} "
            f"{row.index_mb:8.1f}  {cpu_ratio:.2f}×, {wal / base_wal:.2f}×"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--history", type=int, default=2_000_000)
    parser.add_argument("--rows", type=int, default=48_000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.history, args.rows, args.rounds = 2_000, 480, 1
    report(asyncio.run(run(args)), args)


if __name__ == "__main__":
    main()
