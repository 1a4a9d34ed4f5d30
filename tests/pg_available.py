"""Exit 0 when the test PostgreSQL server answers, 1 otherwise (used by `make test`)."""

from __future__ import annotations

import asyncio
import os
import sys

import asyncpg

DSN = os.environ.get("TRADECAST_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


async def main() -> int:
    try:
        connection = await asyncpg.connect(DSN, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return 1
    await connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
