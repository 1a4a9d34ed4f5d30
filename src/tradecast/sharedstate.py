"""Redis, when ``REDIS_URL`` is set: the state several server processes must share.

Three things live there — used nonces, rate-limit counters and long-poll
wake-ups — so that N processes behind a load balancer behave as one. Without
``REDIS_URL`` each lives in the process (wake-ups, rate limits) or in the
database (nonces), which is right for a single process.

Every key and the wake-up channel start with ``REDIS_PREFIX``: pub/sub channels
ignore Redis database numbers, so the prefix is what keeps two deployments (or
two test runs) sharing one Redis apart.
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from tradecast.config import Settings
from tradecast.errors import ServiceUnavailable

# How long a client should wait before retrying while Redis is down: a restart or a
# failover usually takes a few seconds, and sooner would only add load.
REDIS_RETRY_AFTER_S = 2
# Connections per server process, and how long a request waits for one of them.
REDIS_POOL_SIZE = 32
REDIS_POOL_WAIT_S = 5.0


class RedisUnavailable(ServiceUnavailable):
    """Redis is configured but does not answer.

    Signed requests fail closed with this 503 rather than accepting a nonce
    nobody could check: a replayed request must never be executed twice.
    """

    code = "redis_unavailable"
    title = "Shared state unavailable"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(
            detail or "Redis is unreachable; retry shortly",
            headers={"Retry-After": str(REDIS_RETRY_AFTER_S)},
        )


def connect(settings: Settings) -> Redis:
    """A client with a connection pool; connections are made lazily, so a Redis that is
    down at start-up does not keep the server from starting (requests answer 503).

    A pooled connection can outlive the Redis it was made to (a restart) and fail on
    its first use, before the new server saw anything: a command or pipeline that
    meets a connection error is sent once more, on a new connection. Only then: a
    timed-out command may have run, and is not repeated. (A connection lost after
    Redis ran a nonce's claim would make the second sending find the nonce used:
    refused, never admitted twice.)
    """
    return _client(
        settings,
        REDIS_POOL_SIZE,
        Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )


def subscriber(settings: Settings) -> Redis:
    """A client for the relay's subscription (``delivery/fanout.py``), which retries
    nothing: a subscription that was lost must be seen to be lost, since what was
    published meanwhile is gone and every waiting poll has to look again."""
    return _client(settings, 2, Retry(NoBackoff(), 0))


def _client(settings: Settings, pool_size: int, retry: Retry) -> Redis:
    if not settings.redis_url:
        raise ValueError("connect() needs TRADECAST_REDIS_URL")
    # A bounded pool that makes a request wait for a free connection: an unbounded
    # one opens a connection per concurrent request, and a burst (every terminal
    # reconnecting at once) then spends itself connecting, timing out into 503s.
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=pool_size,
        timeout=REDIS_POOL_WAIT_S,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        health_check_interval=30,
        retry=retry,
        # Named, so `CLIENT LIST` on a shared Redis tells which deployment a connection serves.
        client_name=f"{settings.redis_prefix}-server",
    )
    client: Redis = Redis.from_pool(pool)  # the client closes the pool with itself
    return client


def key(settings: Settings, *parts: str) -> str:
    return ":".join((settings.redis_prefix, *parts))
