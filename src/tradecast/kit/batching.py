"""Work gathered over a turn of the event loop and done in batches.

Used where many requests of one process ask the database the same kind of
thing at once (woken long polls, fill reports): each request submits an item
with a future to await; the first item schedules the gathering for the next
turn of the loop, so the items submitted meanwhile join it. At most
``concurrency`` batches run at once; items submitted while they all run wait,
and the next batch takes every one waiting, up to ``batch_size``.
"""

from __future__ import annotations

import asyncio
import contextvars
from abc import ABC, abstractmethod
from collections.abc import Coroutine
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")


class TurnBatcher(ABC, Generic[Item]):
    """Subclasses say how a batch is done (``run``) and what becomes of the items
    still waiting if the gathering is cancelled, the app stopping (``abandon``)."""

    def __init__(self, *, batch_size: int, concurrency: int) -> None:
        self.batch_size = batch_size
        self._waiting: list[Item] = []
        self._slots = asyncio.Semaphore(concurrency)
        self._running: set[asyncio.Task[None]] = set()
        self._gathering = False

    def submit(self, item: Item) -> None:
        self._waiting.append(item)
        if not self._gathering:
            self._gathering = True
            self._start(self._gather())

    @abstractmethod
    async def run(self, batch: list[Item]) -> None:
        """Do one batch, answering each of its items."""

    @abstractmethod
    def abandon(self, items: list[Item]) -> None:
        """Answer the items that never made it into a batch."""

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        # A context of its own: a batch belongs to none of the requests in it.
        task = asyncio.create_task(work, context=contextvars.Context())
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _gather(self) -> None:
        try:
            await asyncio.sleep(0)
            while self._waiting:
                await self._slots.acquire()
                batch = self._waiting[: self.batch_size]
                del self._waiting[: self.batch_size]
                self._start(self._in_slot(batch))
        finally:
            self._gathering = False
            waiting, self._waiting = self._waiting, []
            if waiting:
                self.abandon(waiting)

    async def _in_slot(self, batch: list[Item]) -> None:
        try:
            await self.run(batch)
        finally:
            self._slots.release()

    async def stop(self) -> None:
        if self._running:
            await asyncio.wait(self._running, timeout=5)
