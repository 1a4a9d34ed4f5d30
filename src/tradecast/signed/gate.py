"""The last step of verifying a signed request: claim its nonce, then count it.

Only a request whose signature verified reaches the gate, and only a fresh
nonce is counted against the key's rate limit (SPEC §9, 20 per second): a
forger cannot burn a device's nonces, and replaying a captured request
cannot use up its budget.

Two implementations:

- ``NonceThenLimit``: the nonce store (database or Redis) and the rate
  limiter (memory or Redis), one after the other.
- ``RedisGate``, used when Redis holds both: the same two steps in one Lua
  script, so a signed request costs one Redis round trip instead of two. The
  script claims the nonce with ``SET NX EX`` and, only if it was fresh,
  applies the moving window as the ``limits`` library does (a list of the
  last ``amount`` timestamps per key). Redis not answering is a 503
  ``redis_unavailable``: an unchecked nonce might be a replay.
"""

from __future__ import annotations

import math
import time
import uuid
from datetime import datetime
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from tradecast.ratelimit import SIGNED, RateLimited, RateLimiter
from tradecast.sharedstate import RedisUnavailable
from tradecast.signed.errors import NonceReused
from tradecast.signed.nonces import NonceStore


class AdmissionGate(Protocol):
    async def admit(self, key_id: uuid.UUID, nonce: str, now: datetime) -> None:
        """Raise ``NonceReused`` or ``RateLimited``, or let the request in."""
        ...


class NonceThenLimit:
    def __init__(self, nonces: NonceStore, limiter: RateLimiter, nonce_ttl_s: int) -> None:
        self.nonces = nonces
        self.limiter = limiter
        self.nonce_ttl_s = nonce_ttl_s

    async def admit(self, key_id: uuid.UUID, nonce: str, now: datetime) -> None:
        if not await self.nonces.claim(key_id, nonce, now, self.nonce_ttl_s):
            raise NonceReused()
        await self.limiter.hit(SIGNED, str(key_id))


# KEYS: the nonce, the key's window. ARGV: nonce TTL, now (s), amount, window (s),
# count (1/0). Returns 0 for a used nonce, 1 when admitted, or the oldest counted
# timestamp (a string) when the window is full.
_ADMIT = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return 0
end
if ARGV[5] == '0' then
  return 1
end
local amount = tonumber(ARGV[3])
local oldest = redis.call('LINDEX', KEYS[2], amount - 1)
if oldest and tonumber(oldest) >= tonumber(ARGV[2]) - tonumber(ARGV[4]) then
  return oldest
end
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('LTRIM', KEYS[2], 0, amount - 1)
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
"""


class RedisGate:
    def __init__(
        self, client: Redis, prefix: str, *, nonce_ttl_s: int, rate_limits_enabled: bool
    ) -> None:
        self.prefix = prefix
        self.nonce_ttl_s = nonce_ttl_s
        self.count = "1" if rate_limits_enabled else "0"
        self.script = client.register_script(_ADMIT)

    async def admit(self, key_id: uuid.UUID, nonce: str, now: datetime) -> None:
        stamp = time.time()
        try:
            outcome = await self.script(
                keys=[
                    f"{self.prefix}:nonce:{key_id}:{nonce}",
                    f"{self.prefix}:signed:{key_id}",
                ],
                args=[self.nonce_ttl_s, repr(stamp), SIGNED.amount, SIGNED.per_s, self.count],
            )
        except RedisError as exc:
            raise RedisUnavailable() from exc
        if outcome == 0:
            raise NonceReused()
        if outcome == 1:
            return
        oldest = float(outcome.decode() if isinstance(outcome, bytes) else outcome)
        raise RateLimited(max(1, math.ceil(oldest + SIGNED.per_s - stamp)), SIGNED)
