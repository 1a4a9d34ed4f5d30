"""Redis for tests: reachable or not, and a key prefix of our own per test run.

Pub/sub channels ignore Redis database numbers, so isolation between parallel
workers (and other people's runs on the same Redis) comes from the prefix.
"""

from __future__ import annotations

import os
import uuid

import pytest
import redis

REDIS_URL = os.environ.get("TRADECAST_TEST_REDIS", "redis://127.0.0.1:6379/0")


def redis_reachable() -> bool:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


needs_redis = pytest.mark.skipif(
    not redis_reachable(), reason=f"Redis is not reachable at {REDIS_URL}"
)


def unique_prefix() -> str:
    return f"tctest_{os.getpid()}_{uuid.uuid4().hex[:8]}"


def forget(prefix: str) -> None:
    """Delete every key a test run made under its prefix."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
