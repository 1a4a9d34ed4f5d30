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

  The requests admitted in one turn of the event loop go to Redis together,
  as one pipeline of script calls: one connection taken from the pool, one
  write, one read. Each call is still its own script run, atomic on its own,
  so two copies of a nonce in one pipeline are one admission and one
  ``nonce_reused``, exactly as on two connections. Under load the client's
  per-command work (pool, timeout, health check, packing) was the largest
  part of a signed request's Redis cost (``docs/PERFORMANCE.md``).
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

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


# The most script calls in one pipeline: a fleet reconnecting at once is sent in
# several pipelines, on several connections, rather than in one long one.
PIPELINE_MAX = 256


class RedisGate:
    def __init__(
        self, client: Redis, prefix: str, *, nonce_ttl_s: int, rate_limits_enabled: bool
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.nonce_ttl_s = nonce_ttl_s
        self.count = "1" if rate_limits_enabled else "0"
        self.sha = client.register_script(_ADMIT).sha
        # Calls of this turn of the event loop, not yet sent: keys, arguments, and
        # the future their outcome is given to.
        self._waiting: list[_Call] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def admit(self, key_id: uuid.UUID, nonce: str, now: datetime) -> None:
        stamp = time.time()
        call = _Call(
            (f"{self.prefix}:nonce:{key_id}:{nonce}", f"{self.prefix}:signed:{key_id}"),
            (self.nonce_ttl_s, repr(stamp), SIGNED.amount, SIGNED.per_s, self.count),
            asyncio.get_running_loop().create_future(),
        )
        if not self._waiting:
            call.outcome.get_loop().call_soon(self._send_waiting)
        self._waiting.append(call)
        outcome = await call.outcome
        if outcome == 0:
            raise NonceReused()
        if outcome == 1:
            return
        oldest = float(outcome.decode() if isinstance(outcome, bytes) else outcome)
        raise RateLimited(max(1, math.ceil(oldest + SIGNED.per_s - stamp)), SIGNED)

    def _send_waiting(self) -> None:
        waiting, self._waiting = self._waiting, []
        for first in range(0, len(waiting), PIPELINE_MAX):
            # A task of its own: a request cancelled while it waits (its client hung
            # up) takes none of the others' outcomes with it.
            task = asyncio.ensure_future(self._send(waiting[first : first + PIPELINE_MAX]))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, calls: Sequence[_Call]) -> None:
        try:
            # A connection error is retried once by the client (sharedstate.connect).
            outcomes = await self._pipeline(calls)
            # Redis forgot the script (a restart, SCRIPT FLUSH): those calls ran
            # nothing, so they are sent again once it is loaded.
            unloaded = [
                i for i, outcome in enumerate(outcomes) if isinstance(outcome, NoScriptError)
            ]
            if unloaded:
                self.sha = await self.client.script_load(_ADMIT)
                again = await self._pipeline([calls[i] for i in unloaded])
                for i, outcome in zip(unloaded, again, strict=True):
                    outcomes[i] = outcome
        except RedisError as exc:  # not answering: every call of the pipeline fails closed
            outcomes = [exc] * len(calls)
        except asyncio.CancelledError:
            for call in calls:
                call.outcome.cancel()
            raise
        except Exception as exc:  # a defect: each request answers 500, none waits forever
            outcomes = [exc] * len(calls)
        for call, outcome in zip(calls, outcomes, strict=True):
            if call.outcome.done():  # its request was cancelled
                continue
            if isinstance(outcome, RedisError):
                unavailable = RedisUnavailable()
                unavailable.__cause__ = outcome  # as `raise ... from` would, for the log
                call.outcome.set_exception(unavailable)
            elif isinstance(outcome, Exception):
                call.outcome.set_exception(outcome)
            else:
                call.outcome.set_result(outcome)

    async def _pipeline(self, calls: Sequence[_Call]) -> list[Any]:
        async with self.client.pipeline(transaction=False) as pipeline:
            for call in calls:
                pipeline.evalsha(self.sha, len(call.keys), *call.keys, *call.args)
            return list(await pipeline.execute(raise_on_error=False))


class _Call:
    __slots__ = ("args", "keys", "outcome")

    def __init__(
        self, keys: tuple[str, str], args: tuple[Any, ...], outcome: asyncio.Future[Any]
    ) -> None:
        self.keys = keys
        self.args = args
        self.outcome = outcome
