"""Opened device signing keys, kept in the process between requests.

A device polls every few seconds all day; looking its key up (a transaction
of its own) and opening the sealed secret for every request cost more than
the rest of the verification. Decisions:

- **What is cached**: the opened secret, the active flag and the owner, per
  key id. Unknown key ids are not cached, so random ids cannot fill memory or
  hide a device registered a moment later.
- **Invalidation**: rotating a secret or deleting a device forgets the entry
  once the change commits, in this process directly and in every other
  process through the Redis relay (``delivery/fanout.py``, message
  ``key:<id>``). A relay that lost its subscription forgets the whole cache
  when it reconnects, since invalidations sent meanwhile are gone.
- **A bound on staleness regardless**: entries expire after
  ``DEVICE_KEY_CACHE_TTL_S`` (0 turns the cache off).
- **No stale write-back**: a lookup that started before an invalidation
  does not store what it read (the ``epoch`` check), so a request racing a
  rotation cannot put the old secret back.
- **Bounded**: at most ``max_entries`` keys; past that the oldest entries go.
- Endpoints that act on the device still read its row in their unit of
  work, so a key served from the cache never acts on a deleted device.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from tradecast.signed.verification import SigningKey

if TYPE_CHECKING:
    from tradecast.delivery.fanout import Publisher

KEY_PREFIX = "key:"


class KeyCache:
    def __init__(
        self,
        ttl_s: float,
        *,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[uuid.UUID, tuple[float, SigningKey]] = OrderedDict()
        self._epoch = 0
        self.relay: Publisher | None = None

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    @property
    def epoch(self) -> int:
        """Changes with every invalidation; read it before a lookup, hand it to ``put``."""
        return self._epoch

    def get(self, key_id: uuid.UUID) -> SigningKey | None:
        entry = self._entries.get(key_id)
        if entry is None:
            return None
        expires, key = entry
        if self._clock() >= expires:
            del self._entries[key_id]
            return None
        return key

    def put(self, key: SigningKey, *, epoch: int) -> None:
        """Keep ``key`` unless something was invalidated since ``epoch`` was read."""
        if not self.enabled or epoch != self._epoch:
            return
        self._entries[key.key_id] = (self._clock() + self.ttl_s, key)
        self._entries.move_to_end(key.key_id)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget_here(self, key_id: uuid.UUID) -> None:
        self._epoch += 1
        self._entries.pop(key_id, None)

    def forget(self, key_id: uuid.UUID) -> None:
        """The key changed (rotated, deleted): forget it here and in every other process."""
        self.forget_here(key_id)
        if self.relay is not None:
            self.relay.publish(f"{KEY_PREFIX}{key_id}")

    def clear(self) -> None:
        self._epoch += 1
        self._entries.clear()

    def resync(self) -> None:
        """Relayed invalidations may have been lost: forget every key."""
        self.clear()

    def receive(self, message: str) -> None:
        """An invalidation relayed from another process."""
        if not message.startswith(KEY_PREFIX):
            return
        try:
            key_id = uuid.UUID(message.removeprefix(KEY_PREFIX))
        except ValueError:
            return
        self.forget_here(key_id)

    def __len__(self) -> int:
        return len(self._entries)
