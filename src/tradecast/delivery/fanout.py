"""Notifications carried between server processes over Redis pub/sub.

Two kinds travel on one channel: long-poll wake-ups (for the ``WakeupHub``)
and device-key invalidations (for the ``KeyCache``). Each process publishes
its notifications on the channel and runs one subscriber that hands the
other processes' notifications to its local receivers. Decisions:

- The notifying process acts on its own notifications directly and ignores
  its own messages when they come back (each message carries the sender's origin id):
  local waiters never wait on a Redis round trip, and a failed publish costs
  only the *other* processes' promptness.
- Pub/sub is fire and forget. When a publish fails, or the subscriber is
  disconnected when a message goes out, the polls held elsewhere still end at
  their own timeout (at most 30 s) with one last look at the database, so a
  signal is late, never lost.
  An invalidation that is lost leaves a cached key at most until its TTL.
- A dropped subscriber reconnects with exponential backoff and jitter; once it
  is back each receiver resynchronises, because whatever was published while
  it was away is gone: every local waiter is woken once (a woken poll simply
  queries again) and the key cache is emptied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger("tradecast.delivery.fanout")

RECONNECT_BASE_S = 0.5
RECONNECT_CAP_S = 10.0
# How long the subscriber blocks for a message before it loops (and so notices
# cancellation); the client's health checks detect a dead connection meanwhile.
LISTEN_TIMEOUT_S = 5.0


class Publisher(Protocol):
    """What a receiver sends its own notifications through (the running relay)."""

    def publish(self, message: str) -> None:
        """Send ``message`` to the other server processes, without waiting."""
        ...


class Receiver(Protocol):
    # Set while the relay runs: the receiver publishes its own notifications through it.
    relay: Any

    def receive(self, message: str) -> None:
        """A notification from another process; ignore what is not addressed to you."""
        ...

    def resync(self) -> None:
        """Notifications may have been lost: act as if everything changed."""
        ...


class RedisRelay:
    def __init__(
        self,
        client: Redis,
        channel: str,
        receivers: Sequence[Receiver],
        *,
        subscriber: Redis | None = None,
    ) -> None:
        """``client`` publishes; ``subscriber`` (``sharedstate.subscriber``, ``client``
        if not given) holds the subscription and must not retry behind our back."""
        self.client = client
        self.subscriber = subscriber or client
        self.channel = channel
        self.receivers = tuple(receivers)
        self.origin = uuid.uuid4().hex
        self.subscribed = asyncio.Event()
        self._publishing: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Task[None] | None = None

    def start(self) -> None:
        for receiver in self.receivers:
            receiver.relay = self
        self._listener = asyncio.create_task(self._listen(), name="redis_relay")

    async def stop(self) -> None:
        for receiver in self.receivers:
            receiver.relay = None
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
            self._listener = None
        if self._publishing:
            # Let notifications already on their way leave, but never hold up shutdown.
            await asyncio.wait(self._publishing, timeout=1.0)

    def publish(self, message: str) -> None:
        # Called from an after-commit hook, which cannot await: the publish runs as a
        # task, kept referenced until done so it is not collected half-way.
        task = asyncio.create_task(self._publish(message))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _publish(self, message: str) -> None:
        try:
            await self.client.publish(self.channel, f"{self.origin} {message}")
        except RedisError as exc:
            logger.warning(
                "notification not relayed; other processes' long polls pick the change "
                "up at their timeout, their key caches at the entries' TTL",
                extra={"error": type(exc).__name__},
            )

    def _dispatch(self, data: bytes | str) -> None:
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        origin, _, message = text.partition(" ")
        if origin != self.origin:
            for receiver in self.receivers:
                receiver.receive(message)

    async def _listen(self) -> None:
        failures = 0
        while True:
            pubsub = self.subscriber.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.subscribed.set()
                if failures:
                    logger.info("relay reconnected")
                    for receiver in self.receivers:
                        receiver.resync()
                failures = 0
                while True:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=LISTEN_TIMEOUT_S
                    )
                    if message is not None and message.get("type") == "message":
                        self._dispatch(message["data"])
            except Exception as exc:
                # Anything, not only Redis errors: if this task died, wake-ups would quietly
                # stop crossing processes. Unexpected errors are logged with their traceback.
                self.subscribed.clear()
                failures += 1
                delay = random.uniform(0, min(RECONNECT_CAP_S, RECONNECT_BASE_S * 2**failures))  # noqa: S311 - jitter, not a secret
                logger.warning(
                    "relay disconnected; reconnecting",
                    extra={"error": type(exc).__name__, "retry_in_s": round(delay, 2)},
                    exc_info=not isinstance(exc, RedisError | OSError),
                )
                await asyncio.sleep(delay)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]  # unannotated upstream
