"""Wake-ups for long-polling devices.

A new signal may be pending for every device; an approval only for the
approving user's devices. Waiters subscribe *before* they look for pending
signals, so a signal committed between the look and the wait still wakes them
(no lost wake-up). Notifications are sent after the unit of work commits —
a woken poll must find the signal in the database.

The hub lives in one process and is the only place waiters wait. With
``REDIS_URL`` set a relay (``delivery/fanout.py``) carries every notification
to the other server processes, whose relays hand it to their own hub; the
notifying process wakes its own waiters directly, so they never depend on a
round trip through Redis.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request

from tradecast.db import after_commit

if TYPE_CHECKING:
    from tradecast.delivery.fanout import Publisher

EVERYONE = "everyone"
USER_PREFIX = "user:"


class Generation:
    """One round of a wake-up: the futures of the polls waiting on it.

    Firing resolves every future and marks the generation spent; a poll that
    comes to wait on a spent generation returns at once (its subscription
    saw the notification). One future per waiting poll, resolved directly:
    no task per poll, nothing to cancel afterwards.
    """

    __slots__ = ("fired", "waiters")

    def __init__(self) -> None:
        self.fired = False
        self.waiters: set[asyncio.Future[bool]] = set()

    def fire(self) -> None:
        self.fired = True
        waiters, self.waiters = self.waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(True)


@dataclass(frozen=True)
class Subscription:
    user_id: uuid.UUID
    everyone: Generation
    owner: Generation


class WakeupHub:
    """Notifying fires the current generation and starts a new one.

    Waking N waiters costs N ``set_result`` calls and nothing per waiter
    besides; waiters share the generations instead of each holding a queue,
    so a held long poll costs little memory.
    """

    def __init__(self) -> None:
        self._everyone = Generation()
        self._per_user: dict[uuid.UUID, Generation] = {}
        self._subscribers: dict[uuid.UUID, int] = {}
        self.relay: Publisher | None = None

    @contextmanager
    def subscribe(self, user_id: uuid.UUID) -> Iterator[Subscription]:
        owner = self._per_user.get(user_id)
        if owner is None:
            owner = self._per_user[user_id] = Generation()
        self._subscribers[user_id] = self._subscribers.get(user_id, 0) + 1
        try:
            yield Subscription(user_id=user_id, everyone=self._everyone, owner=owner)
        finally:
            self._unsubscribe(user_id)

    def renew(self, subscription: Subscription) -> Subscription:
        """The generations to wait on after a wake-up: those of ``subscription`` fired.

        Call it before looking again, as ``subscribe`` is called before the first look.
        """
        user_id = subscription.user_id
        owner = self._per_user.get(user_id)
        if owner is None:  # pragma: no cover - present while the subscription is open
            owner = self._per_user[user_id] = Generation()
        return Subscription(user_id=user_id, everyone=self._everyone, owner=owner)

    def _unsubscribe(self, user_id: uuid.UUID) -> None:
        remaining = self._subscribers.get(user_id, 1) - 1
        if remaining > 0:
            self._subscribers[user_id] = remaining
            return
        # Forget users nobody waits for, so the map does not grow with every user ever seen.
        self._subscribers.pop(user_id, None)
        self._per_user.pop(user_id, None)

    @staticmethod
    async def wait(subscription: Subscription, seconds: float) -> bool:
        """True if woken before the timeout."""
        generations = (subscription.everyone, subscription.owner)
        if any(generation.fired for generation in generations):
            return True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        for generation in generations:
            generation.waiters.add(waiter)
        timer = loop.call_later(max(seconds, 0), _time_out, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()
            for generation in generations:
                generation.waiters.discard(waiter)

    def wake_everyone(self) -> None:
        self.wake_everyone_here()
        if self.relay is not None:
            self.relay.publish(EVERYONE)

    def wake_user(self, user_id: uuid.UUID) -> None:
        self.wake_user_here(user_id)
        if self.relay is not None:
            self.relay.publish(f"{USER_PREFIX}{user_id}")

    def receive(self, message: str) -> None:
        """A notification relayed from another process: wake the waiters here."""
        if message == EVERYONE:
            self.wake_everyone_here()
        elif message.startswith(USER_PREFIX):
            try:
                user_id = uuid.UUID(message.removeprefix(USER_PREFIX))
            except ValueError:
                return  # not ours to understand; nothing waits on it
            self.wake_user_here(user_id)

    def resync(self) -> None:
        """Relayed wake-ups may have been lost: every waiter here looks again."""
        self.wake_everyone_here()

    def wake_everyone_here(self) -> None:
        current, self._everyone = self._everyone, Generation()
        current.fire()

    def wake_user_here(self, user_id: uuid.UUID) -> None:
        current = self._per_user.get(user_id)
        if current is not None:
            # The next subscriber of this user starts on a fresh generation.
            self._per_user[user_id] = Generation()
            current.fire()

    @property
    def waiting(self) -> int:
        return sum(self._subscribers.values())

    @property
    def held(self) -> int:
        """Polls waiting for a notification right now: past their first look, each
        holding one future on the current generation."""
        return len(self._everyone.waiters)


def _time_out(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


def hub_of(request: Request) -> WakeupHub:
    hub: WakeupHub = request.app.state.wakeups
    return hub


async def notify_signal_pending(request: Request, signal_id: uuid.UUID) -> None:
    """A new signal was published: wake every waiting device once this request commits."""
    hub = hub_of(request)
    after_commit(request, hub.wake_everyone)


async def notify_signal_approved(request: Request, user_id: uuid.UUID) -> None:
    """A user approved a signal: wake that user's devices once this request commits."""
    hub = hub_of(request)
    after_commit(request, lambda: hub.wake_user(user_id))
