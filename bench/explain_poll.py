"""Show PostgreSQL's plan for the poll query on a large database.

    python -m bench.explain_poll [--dsn postgresql://postgres@127.0.0.1:5432/postgres]

Creates (and afterwards keeps) the database ``tradecast_bench_explain``,
migrates it, seeds 100,000 signals and 10,000 devices (``bench/seed.py``),
and prints EXPLAIN (ANALYZE, BUFFERS) of the exact statement the poll runs,
for a device in auto mode and one in approval mode, plus the generic plan
that a prepared statement falls back to.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from typing import Any

import asyncpg
from sqlalchemy.dialects import postgresql

from bench.fixtures import fresh_database
from bench.seed import Shape, device_id, seed, user_id
from tradecast import migrate
from tradecast.delivery.repository import pending_signals_query
from tradecast.kit import clock

DATABASE = "tradecast_bench_explain"


def poll_sql(device: str, owner: str, limit: int = 50) -> str:
    query = pending_signals_query(uuid.UUID(device), uuid.UUID(owner), clock.utcnow(), limit)
    compiled = query.compile(
        dialect=postgresql.dialect(),  # type: ignore[no-untyped-call]
        compile_kwargs={"literal_binds": True},
    )
    return str(compiled)


async def explain(connection: Any, sql: str) -> str:
    rows = await connection.fetch("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql)
    return "\n".join(row[0] for row in rows)


async def generic_plan(connection: Any, device: str, owner: str) -> str:
    query = pending_signals_query(uuid.UUID(device), uuid.UUID(owner), clock.utcnow(), 50)
    sql = str(query.compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]
    # Rewrite SQLAlchemy's %(name)s markers into $n for a server-side PREPARE.
    names: list[str] = []
    while "%(" in sql:
        start = sql.index("%(")
        end = sql.index(")s", start)
        names.append(sql[start + 2 : end])
        sql = sql[:start] + f"${len(names)}" + sql[end + 2 :]
    params = query.compile(dialect=postgresql.dialect()).params  # type: ignore[no-untyped-call]
    literals = [_literal(params[name]) for name in names]
    await connection.execute("SET plan_cache_mode = force_generic_plan")
    await connection.execute(f"PREPARE poll AS {sql}")
    rows = await connection.fetch(
        f"EXPLAIN (ANALYZE, COSTS OFF) EXECUTE poll({', '.join(literals)})"
    )
    await connection.execute("DEALLOCATE poll")
    return "\n".join(row[0] for row in rows)


def _literal(value: object) -> str:
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


async def main(dsn: str) -> None:
    target = await fresh_database(DATABASE, dsn)
    await asyncio.to_thread(
        migrate.upgrade, target.replace("postgresql://", "postgresql+asyncpg://", 1)
    )
    shape = Shape()
    await seed(target, shape)
    connection = await asyncpg.connect(target)
    try:
        counts = await connection.fetchrow(
            "SELECT (SELECT count(*) FROM signals) AS signals,"
            " (SELECT count(*) FROM signals WHERE status = 'open') AS open,"
            " (SELECT count(*) FROM devices) AS devices,"
            " (SELECT count(*) FROM deliveries) AS deliveries"
        )
        print(f"rows: {dict(counts)}\n")
        print("== device of an auto-mode user ==")
        print(await explain(connection, poll_sql(device_id(6), user_id(2))))
        print("\n== device of an approval-mode user ==")
        print(await explain(connection, poll_sql(device_id(50), user_id(10))))
        print("\n== generic plan (prepared statement) ==")
        print(await generic_plan(connection, device_id(6), user_id(2)))
    finally:
        await connection.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    asyncio.run(main(parser.parse_args().dsn))
