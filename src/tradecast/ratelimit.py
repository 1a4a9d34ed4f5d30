"""Rate limits of SPEC §9, counted in Redis when ``REDIS_URL`` is set.

Decisions where the SPEC is silent:

- **Moving window** (the ``limits`` library's exact strategy): "10 per minute"
  means at most 10 in *any* 60 seconds. A fixed window would let 20 logins
  through across a minute boundary; the moving window costs a list of at
  most ``amount`` timestamps per key, and our amounts are small (≤ 20).
- Counters live in memory without Redis and in Redis with it, so N processes
  share one budget. With Redis, the signed-request limit is counted by the
  same Lua script that claims the request's nonce (``signed/gate.py``): one
  round trip for both.
- **Fail open**: when Redis does not answer, the request is let through and a
  warning is logged. Every limit here guards capacity or slows guessing; the
  rules that protect money and replays hold without it (the database guards
  payouts, argon2 still costs every password guess, and signed requests fail
  closed on the nonce store anyway). Refusing logins because a cache is down
  would turn a Redis outage into a full outage.
- ``Retry-After`` is whole seconds, at least 1: when the oldest counted request
  leaves the window.
- Personal data never becomes a Redis key: emails are hashed first.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tradecast.config import Settings
from tradecast.errors import AppError
from tradecast.kit.request_context import current

logger = logging.getLogger("tradecast.ratelimit")


class RateLimited(AppError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, retry_after_s: int, limit: RateLimit) -> None:
        super().__init__(
            f"More than {limit.amount} {limit.name} requests in {limit.per_s} s; "
            f"retry in {retry_after_s} s",
            headers={"Retry-After": str(retry_after_s)},
        )


@dataclass(frozen=True)
class RateLimit:
    name: str
    amount: int
    per_s: int

    @property
    def item(self) -> RateLimitItem:
        return RateLimitItemPerSecond(self.amount, self.per_s, namespace=self.name)


# SPEC §9.
LOGIN = RateLimit("login", amount=10, per_s=60)
PAYOUT = RateLimit("payout", amount=1, per_s=10)
SIGNED = RateLimit("signed", amount=20, per_s=1)


def redis_storage_uri(redis_url: str) -> str:
    """``limits`` names its asyncio Redis storage ``async+redis://`` (``rediss``, ``unix``)."""
    scheme, sep, rest = redis_url.partition("://")
    mapped = {"redis": "async+redis", "rediss": "async+rediss", "unix": "async+redis+unix"}
    return f"{mapped.get(scheme, scheme)}{sep}{rest}"


def personal(value: str) -> str:
    """An identifier derived from personal data (an email) without storing it."""
    return hashlib.sha256(value.strip().lower().encode("utf-8")).hexdigest()[:32]


class RateLimiter:
    def __init__(self, settings: Settings, redis: Redis | None = None) -> None:
        self.enabled = settings.rate_limits_enabled
        storage: Storage
        if redis is not None and settings.redis_url:
            # The process's one Redis pool (owned and closed by the app), not a second one.
            pool: Any = redis.connection_pool
            storage = RedisStorage(
                redis_storage_uri(settings.redis_url),
                implementation="redispy",
                key_prefix=f"{settings.redis_prefix}:limits",
                wrap_exceptions=True,
                connection_pool=pool,
            )
        else:
            storage = MemoryStorage()
        self.strategy = MovingWindowRateLimiter(storage)

    async def hit(self, limit: RateLimit, *identifiers: str) -> None:
        """Count one request; raises ``RateLimited`` when it is over the limit."""
        if not self.enabled:
            return
        item = limit.item
        try:
            if await self.strategy.hit(item, *identifiers):
                return
            stats = await self.strategy.get_window_stats(item, *identifiers)
        except (StorageError, RedisError, OSError) as exc:
            logger.warning(
                "rate limit not checked: storage unavailable; request let through",
                extra={"limit": limit.name, "error": type(exc).__name__},
            )
            return
        raise RateLimited(max(1, math.ceil(stats.reset_time - time.time())), limit)


# Dependencies are async: FastAPI runs a plain function in the thread pool, a hop per request.
async def rate_limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter


AppRateLimiter = Annotated[RateLimiter, Depends(rate_limiter)]


def rate_limited(
    limit: RateLimit, *, key: Callable[..., Awaitable[str] | str]
) -> Callable[..., Awaitable[None]]:
    """A dependency that counts each request against ``limit`` under the identifier
    that ``key`` — itself a dependency, e.g. one taking ``CurrentUser`` — returns.

    ``key`` is resolved by FastAPI with the rest of the request's dependencies
    (and cached with them), so a limit keyed by the signed-in user costs no
    second lookup: ``dependencies=[Depends(rate_limited(PAYOUT, key=user_key))]``.
    """

    # A default rather than ``Annotated``: with postponed annotations FastAPI resolves
    # names in module globals, where this closure's ``key`` does not live.
    async def check(limiter: AppRateLimiter, identifier: str = Depends(key)) -> None:
        await limiter.hit(limit, identifier)

    return check


async def client_ip_key(request: Request) -> str:
    """The client's address as resolved from ``TRUSTED_PROXIES`` (a dependency)."""
    context = current()
    address = context.client_ip if context is not None else None
    return address or (request.client.host if request.client else "unknown")
